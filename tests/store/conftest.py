from __future__ import annotations

import pytest

from .helpers import use_fake_tree_if_needed


@pytest.fixture(autouse=True)
def _suffix_index(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_tree_if_needed(monkeypatch)
