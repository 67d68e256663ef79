"""A process killed while creating a store leaves an empty environment: it must open as an empty store."""

import lmdb
import pytest
from typer.testing import CliRunner

from sufdec.cli.app import app
from sufdec.store import NotAStoreError, Store


def _partial_env(path, names):
    env = lmdb.open(str(path), max_dbs=8)
    for n in names:
        env.open_db(n.encode(), create=True)
    env.close()


@pytest.mark.parametrize("names", [(), ("meta",), ("meta", "sequences", "hashes", "snapshot", "log")])
def test_interrupted_creation_opens_empty_and_verifies(tmp_path, names):
    store = tmp_path / "store"
    _partial_env(store, names)
    with Store.open(store, readonly=True, create=False) as st:
        assert len(st) == 0
    res = CliRunner().invoke(app, ["verify", "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output


def test_foreign_environment_is_still_refused(tmp_path):
    store = tmp_path / "store"
    env = lmdb.open(str(store), max_dbs=8)
    db = env.open_db(b"other", create=True)
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v", db=db)
    env.close()
    with pytest.raises(NotAStoreError):
        Store.open(store, readonly=True, create=False)
