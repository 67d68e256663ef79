"""One host's side of sharing: publish what this store learned, follow what others did.

A ``Replica`` joins a local store to the shared table (``sufdec.share.table``). Its state
lives in the store itself (``Store.share_state``): the host id (made once per store), and
per shared database the last local sequence id it looked at for publishing (``pushed``) and
the last table row it applied (``pulled``). So the queue of outputs waiting for PostgreSQL
is the store's own records beyond ``pushed``: bounded by the store's budget, kept across
restarts, published when PostgreSQL is back. A host killed at any moment loses nothing it
acknowledged (the store has it, the cursor was not moved past it) and duplicates nothing
(the table and the store both drop a second copy by content hash).

``sync`` pushes, then pulls until caught up; ``start`` keeps doing so in a thread, woken by
the table's notifications or every ``poll_s``, and never lets a PostgreSQL failure reach
the caller: it is logged once, and the next round tries again (backing off to 30 s).
Records pulled from the table carry ``{"from": "share", "host": ...}`` and are never
published again. When sharing is first turned on for a store, its history is not
published (``push_history`` does that, ``sufdec share push``): ``pushed`` starts at its end.
A round also applies the table's retention setting when it is due (every ``retain_every_s``
across all hosts, looked at no more than once a minute by each).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sufdec.share.table import SharedTable, ShareError, shown_url
from sufdec.store import SequenceRecord, Store, decode_tokens, encode_tokens

_LOG = logging.getLogger("sufdec.share")
FROM_SHARE = "share"  # the source "from" of records pulled from the table
BATCH = 500
RETAIN_EVERY_S = 600.0  # the table's retention is applied this often (by whichever host syncs)
RETAIN_LOOK_S = 60.0  # how often one replica asks whether it is due


def database_key(url: str) -> str:
    """A short, stable name for the shared database behind ``url`` (its password left out)."""
    return hashlib.sha256(shown_url(url).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SyncSummary:
    pushed: int = 0  # outputs this host published that the table did not have
    pulled: int = 0  # outputs of other hosts added to the local store
    seen: int = 0  # table rows applied (duplicates and this host's own included)
    trimmed: int = 0  # rows the table's retention deleted in this round

    def __add__(self, other: "SyncSummary") -> "SyncSummary":
        return SyncSummary(
            self.pushed + other.pushed,
            self.pulled + other.pulled,
            self.seen + other.seen,
            self.trimmed + other.trimmed,
        )


class Replica:
    """The local ``store`` shared through the table at ``url`` (see the module)."""

    def __init__(
        self,
        store: Store,
        url: str,
        *,
        poll_s: float = 1.0,
        retain_every_s: float = RETAIN_EVERY_S,
        connect: Callable[[str], SharedTable] = SharedTable,
        log: logging.Logger = _LOG,
    ) -> None:
        fingerprint = store.meta().tokenizer_fingerprint
        if not fingerprint:
            raise ShareError(f"the store at {store.path} has no tokenizer yet: index or generate into it first")
        self.store, self.url, self.poll_s, self.log = store, url, poll_s, log
        self.tokenizer = fingerprint
        self.key = database_key(url)
        self.retain_every_s = retain_every_s
        self._retain_looked = -math.inf
        self._connect = connect
        self.table: SharedTable | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # kick() writes a byte: the follower wakes at once
        os.set_blocking(self._wake_r, False)
        self.last_error: str | None = None
        self.first_round = threading.Event()  # set once the follower's first round ended (either way)
        self.host = self._host_id()

    # ------------------------------------------------------------------ state in the store
    def _host_id(self) -> str:
        state = self.store.share_state()
        host = state.get("host")
        if not isinstance(host, str) or not host:
            host = f"{socket.gethostname()}-{secrets.token_hex(3)}"
            start = self.store.meta().next_seq_id - 1  # history stays local until `share push`
            self.store.set_share_state({"host": host, f"{self.key}.pushed": start})
        elif f"{self.key}.pushed" not in state:
            self.store.set_share_state({f"{self.key}.pushed": self.store.meta().next_seq_id - 1})
        return host

    def cursors(self) -> tuple[int, int]:
        """(last local id looked at for publishing, last table row applied)."""
        state = self.store.share_state()
        return int(state.get(f"{self.key}.pushed", -1)), int(state.get(f"{self.key}.pulled", 0))

    def queued(self) -> int:
        """Local outputs waiting to be published."""
        pushed, _ = self.cursors()
        return sum(1 for s in self.store.iter_sequences(pushed + 1) if s.source.get("from") != FROM_SHARE)

    # ------------------------------------------------------------------ one round
    def _open(self) -> SharedTable:
        if self.table is None:
            self.table = self._connect(self.url)
        return self.table

    def sync(self, on_pull: Callable[[int, int], None] | None = None) -> SyncSummary:
        """Publish what is queued, then apply what other hosts published, until caught up
        (``on_pull(rows applied, rows to apply)`` after each batch: a progress bar for a new
        host replaying a large table). Raises ShareError when PostgreSQL cannot be reached
        (nothing local is lost)."""
        try:
            return self._push() + self._pull(on_pull) + self._retain()
        except ShareError:
            self.close_table()
            raise

    def _push(self, start: int | None = None) -> SyncSummary:
        table = self._open()
        pushed, _ = self.cursors()
        first = pushed + 1 if start is None else start
        new = 0
        batch: list[tuple[bytes, bytes, dict]] = []
        last = pushed
        for seq in self.store.iter_sequences(first):
            if seq.source.get("from") != FROM_SHARE:
                batch.append((encode_tokens(seq.tokens), seq.content_hash, _json_safe(seq.source)))
            last = max(last, seq.seq_id)
            if len(batch) >= BATCH:
                new += table.publish(self.tokenizer, self.host, batch)
                batch = []
                self.store.set_share_state({f"{self.key}.pushed": last})
        if batch:
            new += table.publish(self.tokenizer, self.host, batch)
        if last != pushed:
            self.store.set_share_state({f"{self.key}.pushed": last})
        return SyncSummary(pushed=new)

    def push_history(self) -> SyncSummary:
        """Publish every output the store holds (not only those learned since sharing began)."""
        try:
            return self._push(start=0)
        except ShareError:
            self.close_table()
            raise

    def _pull(self, on_pull: Callable[[int, int], None] | None = None) -> SyncSummary:
        table = self._open()
        total = SyncSummary()
        behind = table.rows_after(self.tokenizer, self.cursors()[1]) if on_pull is not None else 0
        while True:
            _, pulled = self.cursors()
            rows = table.pull(self.tokenizer, pulled, BATCH)
            if not rows:
                return total
            records = [self._record(r) for r in rows if r.host != self.host]
            records = [r for r in records if r is not None]
            added = self.store.add_many(records).added if records else 0
            self.store.set_share_state({f"{self.key}.pulled": rows[-1].id})
            total += SyncSummary(pulled=added, seen=len(rows))
            if on_pull is not None:
                on_pull(total.seen, max(behind, total.seen))

    def _retain(self) -> SyncSummary:
        """Apply the table's retention if it is due (asked at most every RETAIN_LOOK_S)."""
        now = time.monotonic()
        if now - self._retain_looked < RETAIN_LOOK_S:
            return SyncSummary()
        self._retain_looked = now
        gone = self._open().apply_retention(every_s=self.retain_every_s)
        if gone:
            self.log.info("sharing: the table's retention deleted %d old outputs", gone)
        return SyncSummary(trimmed=gone or 0)

    def _record(self, row: Any) -> SequenceRecord | None:
        """A table row as a local record (None: a damaged row, skipped and logged)."""
        try:
            tokens = decode_tokens(row.tokens)
        except ValueError as exc:
            self.log.warning("sharing: skipped shared row %d from %s: %s", row.id, row.host, exc)
            return None
        if not tokens:
            return None
        return SequenceRecord(tokens, {"from": FROM_SHARE, "host": row.host, "shared_id": row.id, "time": row.created})

    # ------------------------------------------------------------------ following
    def start(self) -> "Replica":
        """Keep syncing in a background thread until ``stop``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sufdec-share", daemon=True)
            self._thread.start()
        return self

    def kick(self) -> None:
        """Something was learned here: publish it without waiting for the next poll."""
        try:
            os.write(self._wake_w, b"k")
        except (BlockingIOError, OSError):  # a full pipe wakes it already; a closed one is gone
            pass

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                try:
                    self.sync()
                finally:
                    self.first_round.set()
                if self.last_error is not None:
                    self.log.warning("sharing through %s works again", shown_url(self.url))
                self.last_error, backoff = None, 1.0
                self._wait_for_news()
            except ShareError as exc:
                if self.last_error is None:
                    self.log.warning("sharing paused: %s; outputs stay queued in the store", exc)
                self.last_error = str(exc)
                self._stop.wait(backoff)
                backoff = min(30.0, backoff * 2)
            except Exception as exc:  # noqa: BLE001 - the store closing under us, a damaged row: keep serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.log.warning("sharing stopped a round: %s", self.last_error)
                self._stop.wait(backoff)
                backoff = min(30.0, backoff * 2)

    def _wait_for_news(self) -> None:
        """Until another host publishes, this host learns something (``kick``), ``stop`` is
        called, or ``poll_s`` passes."""
        self._open().wait(self.poll_s, self._wake_r)
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop following (after a last round that publishes what is queued, if it can)."""
        if self._thread is not None:
            self._stop.set()
            self.kick()
            self._thread.join(timeout_s)
            stuck, self._thread = self._thread.is_alive(), None
            if stuck:  # inside a call PostgreSQL does not answer: its connection is left to it
                self.log.warning(
                    "sharing: PostgreSQL at %s does not answer; what is not published stays queued in the store",
                    shown_url(self.url),
                )
                self.table = None
                return
            try:
                self._push()
            except Exception as exc:  # noqa: BLE001 - what is not published stays queued in the store
                self.log.warning("sharing: not published at exit (queued in the store): %s", exc)
        self.close_table()

    def close_table(self) -> None:
        if self.table is not None:
            self.table.close()
            self.table = None

    def close(self) -> None:
        """Stop following, close the connections and the wake-up pipe."""
        self.stop()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1


def _json_safe(source: dict[str, Any]) -> dict[str, Any]:
    """A store source as JSON can hold it (bytes and odd values as text)."""
    out: dict[str, Any] = {}
    for k, v in source.items():
        out[str(k)] = v if isinstance(v, (str, int, float, bool)) or v is None else repr(v)
    return out
