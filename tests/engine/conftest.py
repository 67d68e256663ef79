import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: tiny models run fastest so, and on a shared 2-core machine two
    spinning threads slow even the real model down badly when other jobs run."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
