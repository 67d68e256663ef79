"""A drafting service for a serving engine (``sufdec.drafters.serving``): the store opened
as well as it can be, learning in the background, the follower, closing in order."""

from __future__ import annotations

import time

import pytest

from sufdec.drafters.serving import open_serving, open_store
from sufdec.drafters.settings import DraftSettings
from sufdec.store import Store, StoreLockedError, TokenizerMismatchError
from sufdec.store.meta import TokenizerInfo

TOK = TokenizerInfo("tok", "f" * 32)


def test_open_store_creates_a_missing_one(tmp_path, caplog):
    caplog.set_level("INFO", logger="sufdec")
    store = open_store(tmp_path / "s", TOK)
    assert store is not None and not store.readonly and len(store) == 0
    store.close()
    assert "created an empty one" in caplog.text


def test_open_store_refuses_another_tokenizer(tmp_path):
    Store.open(tmp_path / "s", TokenizerInfo("other", "0" * 32)).close()
    with pytest.raises(TokenizerMismatchError):
        open_store(tmp_path / "s", TOK)


def test_open_store_read_only_drafts_without_learning(tmp_path, caplog):
    Store.open(tmp_path / "s", TOK).close()

    def opener(path, tok, create=True, readonly=False):
        if not readonly:  # what a store in a read-only directory answers (root ignores chmod)
            raise StoreLockedError(f"cannot write to the store at {path}: permission denied")
        return Store.open(path, tok, create=create, readonly=True)

    store = open_store(tmp_path / "s", TOK, open_fn=opener)
    assert store is not None and store.readonly
    store.close()
    assert caplog.text.count("without learning") == 1


def test_open_store_unusable_drafts_from_requests_only(tmp_path, caplog):
    (tmp_path / "file").write_text("not a store")
    assert open_store(tmp_path / "file", TOK) is None
    assert "own tokens only" in caplog.text


def test_a_serving_service_learns_in_the_background_and_closes_the_store(tmp_path):
    service = open_serving(
        tmp_path / "s",
        TOK,
        DraftSettings(spec="chain", sizing="fixed"),
        source={"from": "test"},
        refresh_s=0.05,
        price=0.0,
    )
    request = service.start([1, 2, 3])
    request.finish([4, 5, 6], finished=True)
    service.start([1]).finish([7], finished=False)  # cut short: not learned
    service.close()
    assert service.learner is None  # the queue was drained before the store closed
    with Store.open(tmp_path / "s", readonly=True) as s:
        assert [(x.tokens, x.source["from"]) for x in s.iter_sequences()] == [([4, 5, 6], "test")]


def test_a_serving_service_drafts_what_another_process_stored(tmp_path):
    service = open_serving(tmp_path / "s", TOK, DraftSettings(spec="chain", sizing="fixed"), refresh_s=0.05)
    request = service.start([9, 1, 2])
    with Store.open(tmp_path / "s", TOK) as other:  # another process learns
        other.append([1, 2, 3, 4], source={"from": "other"})
    deadline = time.time() + 10
    while len(service.store.tree) == 0 and time.time() < deadline:
        time.sleep(0.05)
    service.follow_tree()
    assert request.propose(4)[1].token_ids == [3, 4]
    service.close()


def test_a_read_only_store_serves_without_learning(tmp_path):
    Store.open(tmp_path / "s", TOK).close()

    def opener(path, tok, create=True, readonly=False):
        if not readonly:
            raise StoreLockedError("permission denied")
        return Store.open(path, tok, create=create, readonly=True)

    service = open_serving(tmp_path / "s", TOK, DraftSettings(), open_fn=opener, refresh_s=0)
    assert service.store.readonly and service.learn is None
    service.close()
    with pytest.raises(TokenizerMismatchError):
        open_serving(tmp_path / "s", TokenizerInfo("other", "0" * 32), DraftSettings(), refresh_s=0)
