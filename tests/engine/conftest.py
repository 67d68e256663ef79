import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread(request):
    """Tiny models run fastest on one thread (and do not fight other jobs for the cores)."""
    if request.node.get_closest_marker("model"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
