"""Opening a store: acquire its LMDB environment and check, create or migrate its meta.

An open refuses a foreign store, a newer format or another tokenizer; creates the meta
record of a new store; migrates an older format and records a first tokenizer and the
budget the config names (writable opens only). It also finishes a store whose creation
was interrupted by a kill (an environment with empty sufdec databases and no meta).
All of it happens before a ``Store`` object exists, so a ``Store`` is always usable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from . import failures, migrations
from . import meta as meta_mod
from .config import StoreConfig
from .env import DB_NAMES, StoreEnv, acquire
from .errors import MigrationRequiredError, NotAStoreError
from .evict import Budget
from .meta import TokenizerInfo


def open_env(
    where: Path,
    tokenizer: TokenizerInfo | None,
    cfg: StoreConfig,
    *,
    readonly: bool,
    create: bool,
    use_lock: bool = True,
) -> tuple[StoreEnv, bool]:
    """The environment of the store at ``where``, its meta checked (and, writable, set up);
    also whether the store must be used read-only. ``use_lock=False``: the caller holds
    ``sufdec.lock`` exclusively (compaction)."""
    cfg.validate()
    senv = acquire(where, cfg.map, readonly=readonly, create=create, wait_s=cfg.open_wait_s, use_lock=use_lock)
    if senv is None or (senv.readonly and _uninitialised(senv)):
        # A process killed while creating the store leaves an environment with no sufdec
        # databases or no meta yet: that is an empty store. Finish creating it with one
        # writable open (nothing else is in it), then open it as asked.
        if senv is not None:
            senv.close()
        if not _interrupted_creation(where):
            raise NotAStoreError(f"{where} holds an LMDB environment that is not a sufdec store")
        _finish_creation(where, cfg, use_lock)
        senv = acquire(where, cfg.map, readonly=readonly, create=create, wait_s=cfg.open_wait_s, use_lock=use_lock)
        if senv is None:
            raise NotAStoreError(f"{where} holds an LMDB environment that is not a sufdec store")
    readonly = readonly or senv.readonly
    try:
        init_meta(senv, tokenizer, cfg, readonly=readonly)
    except BaseException:
        senv.close()
        raise
    return senv, readonly


def _finish_creation(where: Path, cfg: StoreConfig, use_lock: bool) -> None:
    senv, _ = open_env(where, None, cfg, readonly=False, create=False, use_lock=use_lock)
    senv.close()


def init_meta(senv: StoreEnv, tokenizer: TokenizerInfo | None, cfg: StoreConfig, *, readonly: bool) -> None:
    """Check (and if needed create, migrate or complete) the meta record."""
    dbs, where = senv.dbs, str(senv.path)
    needs = senv.read(lambda txn: _meta_needs_write(txn, dbs, tokenizer, where, cfg))
    if not needs:
        return
    if not readonly:
        senv.write(lambda txn: _setup_meta(txn, dbs, tokenizer, cfg, where))
        return
    if needs == "budget":
        return  # a read-only open never writes, and never evicts either
    raw = senv.read(lambda txn: meta_mod.read_raw(txn, dbs.meta))
    if not raw:
        raise NotAStoreError(f"the store at {where} was never initialised")
    if int(raw["format_version"]) < meta_mod.FORMAT_VERSION:
        raise MigrationRequiredError(
            f"the store at {where} has format {raw['format_version']}; open it writable once to migrate it"
        )
    # else only a tokenizer to record, which a read-only open skips


def _meta_needs_write(txn: Any, dbs: Any, tokenizer: TokenizerInfo | None, where: str, cfg: StoreConfig) -> bool | str:
    """Refuse a foreign, too new or other-tokenizer store; truthy if meta must be written
    (``"budget"`` when only the budget the config names differs from the recorded one)."""
    if not meta_mod.read_raw(txn, dbs.meta):
        return True
    meta = meta_mod.read_meta(txn, dbs.meta)
    meta_mod.check_version(meta.format_version, where)
    if meta.format_version < meta_mod.FORMAT_VERSION:
        return True
    meta_mod.check_tokenizer(meta, tokenizer, where)
    if tokenizer is not None and meta.tokenizer is None:
        return True
    return "budget" if cfg.budget_over(Budget.of(meta)) != Budget.of(meta) else False


def _setup_meta(txn: Any, dbs: Any, tokenizer: TokenizerInfo | None, cfg: StoreConfig, where: str) -> None:
    """Create the meta record, or migrate it, record a first tokenizer and the budget the
    config names (one write txn). The budget is enforced at the next write."""
    raw = meta_mod.read_raw(txn, dbs.meta)
    if not raw:
        meta = meta_mod.initial_meta(tokenizer, cfg.max_depth)
        budget = cfg.budget_over(Budget.of(meta))
        meta = dataclasses.replace(
            meta, max_tokens=budget.max_tokens, max_bytes=budget.max_bytes, eviction=budget.eviction
        )
        meta_mod.write_meta(txn, dbs.meta, meta)
        return
    if raw.get("magic") != meta_mod.FORMAT_MAGIC:
        raise NotAStoreError(f"{where} is not a sufdec store (no format magic)")
    meta_mod.check_version(int(raw["format_version"]), where)
    if int(raw["format_version"]) < meta_mod.FORMAT_VERSION:
        migrations.migrate(txn, dbs, raw, meta_mod.FORMAT_VERSION)
        meta_mod.write_raw(txn, dbs.meta, raw)
    meta = meta_mod.read_meta(txn, dbs.meta)
    meta_mod.check_tokenizer(meta, tokenizer, where)
    new = meta
    if tokenizer is not None and meta.tokenizer is None:
        new = dataclasses.replace(new, tokenizer_name=tokenizer.name, tokenizer_fingerprint=tokenizer.fingerprint)
    budget = cfg.budget_over(Budget.of(meta))
    new = dataclasses.replace(new, max_tokens=budget.max_tokens, max_bytes=budget.max_bytes, eviction=budget.eviction)
    meta_mod.write_meta(txn, dbs.meta, new, old=meta)


def _uninitialised(senv: StoreEnv) -> bool:
    """True when the sufdec databases exist but the meta record was never written."""
    return not senv.read(lambda txn: meta_mod.read_raw(txn, senv.dbs.meta))


def _interrupted_creation(path: Path) -> bool:
    """True when the LMDB environment at ``path`` holds nothing but (some of) sufdec's empty
    databases and no meta: what a kill during ``Store.open``'s first creation leaves."""
    import lmdb

    try:
        env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(DB_NAMES) + 1, subdir=True)
        try:
            with env.begin() as txn:
                names = [bytes(k).decode("utf-8", "replace") for k, _ in txn.cursor()]
                if any(n not in DB_NAMES for n in names):
                    return False
                for n in names:
                    db = env.open_db(n.encode(), txn=txn, create=False)
                    if txn.stat(db)["entries"]:
                        return False
            return True
        finally:
            env.close()
    except lmdb.Error as exc:
        raise failures.translate(exc, path, writing=False) from None
