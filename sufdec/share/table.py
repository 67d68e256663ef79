"""The shared table in PostgreSQL: the log of outputs every host appends to and follows.

One row per output: its token ids (int32, little-endian, as the store keeps them), their
content hash, the tokenizer fingerprint (stores of different tokenizers share a database
and never see each other's rows), the host that published it, its source and the time.
``(tokenizer, digest)`` is unique, so a second copy of an output is a no-op.

Writers take one advisory lock for the length of their transaction, so row ids become
visible in id order and a follower's cursor (the last id it applied) never passes a row
that commits later. Each publishing transaction ends with ``NOTIFY sufdec_shared``
(payload: the tokenizer fingerprint), which followers ``LISTEN`` to; they poll as well.

The table's retention (``Retention``: outputs of the last N days, the newest N of each
tokenizer) is a setting kept in the database itself (``sufdec_shared_settings``), set once
by ``sufdec share retention`` and applied by whichever host syncs when it is due
(``apply_retention``), so no host needs a job of its own. A follower's cursor never points
at a deleted row in a way that matters: it reads ids above it.

psycopg (3.x) is imported here only, when a table is opened.
"""

from __future__ import annotations

import json
import math
import select
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TABLE = "sufdec_shared"
SETTINGS = "sufdec_shared_settings"
CHANNEL = "sufdec_shared"
_LOCK = 0x5F_DEC5  # the advisory lock every writer takes (an arbitrary, fixed number)
# A connection to a host that went silent (a network cut, the database's machine paused)
# fails within about 20 s instead of waiting forever: TCP keepalives probe an idle one,
# and data unacknowledged for 15 s ends it (libpq's settings; Linux honours both).
_LIVENESS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # milliseconds
}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    tokenizer text NOT NULL,
    digest bytea NOT NULL,
    tokens bytea NOT NULL,
    host text NOT NULL,
    source jsonb NOT NULL DEFAULT '{{}}',
    created timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tokenizer, digest)
)
"""
_SCHEMA_MORE = (
    # a follower's pull reads one tokenizer's rows above its cursor; retention deletes by age
    f"CREATE INDEX IF NOT EXISTS {TABLE}_tokenizer_id ON {TABLE} (tokenizer, id)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (created)",
    f"CREATE TABLE IF NOT EXISTS {SETTINGS} (name text PRIMARY KEY, value double precision NOT NULL)",
)


class ShareError(Exception):
    """The shared table cannot be reached or used (the message says why, in one line)."""


@dataclass(frozen=True)
class SharedRow:
    """One output as the table holds it."""

    id: int
    tokens: bytes
    digest: bytes
    host: str
    source: dict[str, Any]
    created: float


@dataclass(frozen=True)
class Retention:
    """What the shared table keeps: outputs published in the last ``keep_days`` days and, of
    each tokenizer, the newest ``keep_rows``; None: no limit of that kind."""

    keep_days: float | None = None
    keep_rows: int | None = None

    def __post_init__(self) -> None:
        if self.keep_days is not None and not (math.isfinite(self.keep_days) and self.keep_days >= 0):
            raise ValueError(f"keep_days must be a number of days >= 0, not {self.keep_days}")
        if self.keep_rows is not None and self.keep_rows < 0:
            raise ValueError(f"keep_rows must be >= 0, not {self.keep_rows}")

    @property
    def off(self) -> bool:
        return self.keep_days is None and self.keep_rows is None

    def __str__(self) -> str:
        if self.off:
            return "everything (no retention set)"
        parts = [f"the last {self.keep_days:g} days"] if self.keep_days is not None else []
        if self.keep_rows is not None:
            parts.append(f"the newest {self.keep_rows:,} outputs of each tokenizer")
        return " and ".join(parts)


@dataclass(frozen=True)
class TableSummary:
    """What the table holds for one tokenizer: rows, the newest id and time, rows per host."""

    rows: int
    newest_id: int
    newest_time: float | None
    hosts: dict[str, int]


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ShareError('sharing needs psycopg: pip install "psycopg[binary]" (or "sufdec[share]")') from None
    return psycopg


def shown_url(url: str) -> str:
    """The URL with its password hidden (for messages and logs)."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    who, where = rest.rsplit("@", 1)
    user = who.split(":", 1)[0]
    return f"{scheme}://{user}:***@{where}" if ":" in who else url


class SharedTable:
    """A connection to the shared table at ``url`` (a PostgreSQL connection URL)."""

    def __init__(self, url: str, *, connect_timeout: float = 3.0) -> None:
        self.url = url
        psycopg = _driver()
        self._errors = (psycopg.Error,)
        self._connect_args = {"autocommit": True, "connect_timeout": max(1, int(connect_timeout)), **_LIVENESS}
        try:
            self.conn = psycopg.connect(url, **self._connect_args)
        except psycopg.Error as exc:
            raise ShareError(f"cannot reach PostgreSQL at {shown_url(url)}: {_first_line(exc)}") from None
        self._listener: Any = None
        self._call(self._ensure_schema)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise ShareError(f"PostgreSQL at {shown_url(self.url)}: {_first_line(exc)}") from None

    def _ensure_schema(self) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            self.conn.execute(_SCHEMA)
            for statement in _SCHEMA_MORE:
                self.conn.execute(statement)

    def publish(self, tokenizer: str, host: str, rows: Iterable[tuple[bytes, bytes, dict[str, Any]]]) -> int:
        """Append (token bytes, digest, source) rows in one transaction; returns how many
        were new (the others were in the table already)."""
        batch = [(tokenizer, digest, tokens, host, json.dumps(source)) for tokens, digest, source in rows]
        if not batch:
            return 0
        return self._call(self._publish, tokenizer, batch)

    def _publish(self, tokenizer: str, batch: list[tuple]) -> int:
        new = 0
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            with self.conn.cursor() as cur:
                for row in batch:
                    cur.execute(
                        f"INSERT INTO {TABLE} (tokenizer, digest, tokens, host, source) "
                        "VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT (tokenizer, digest) DO NOTHING",
                        row,
                    )
                    new += cur.rowcount
            if new:
                self.conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, tokenizer))
        return new

    def pull(self, tokenizer: str, after: int, limit: int = 1000) -> list[SharedRow]:
        """The rows of ``tokenizer`` with ids above ``after``, oldest first, at most ``limit``."""
        return self._call(self._pull, tokenizer, after, limit)

    def _pull(self, tokenizer: str, after: int, limit: int) -> list[SharedRow]:
        cur = self.conn.execute(
            f"SELECT id, tokens, digest, host, source, extract(epoch FROM created) FROM {TABLE} "
            "WHERE tokenizer = %s AND id > %s ORDER BY id LIMIT %s",
            (tokenizer, after, limit),
        )
        return [SharedRow(int(i), bytes(t), bytes(d), h, s or {}, float(c)) for i, t, d, h, s, c in cur.fetchall()]

    def summary(self, tokenizer: str) -> TableSummary:
        return self._call(self._summary, tokenizer)

    def _summary(self, tokenizer: str) -> TableSummary:
        rows = self.conn.execute(
            f"SELECT host, count(*), max(id), extract(epoch FROM max(created)) FROM {TABLE} "
            "WHERE tokenizer = %s GROUP BY host",
            (tokenizer,),
        ).fetchall()
        hosts = {h: int(n) for h, n, _, _ in rows}
        newest = max((int(i) for _, _, i, _ in rows), default=0)
        newest_time = max((float(t) for _, _, _, t in rows), default=None)
        return TableSummary(sum(hosts.values()), newest, newest_time, hosts)

    def rows_after(self, tokenizer: str, after: int) -> int:
        """How many rows of ``tokenizer`` lie beyond ``after`` (a follower's lag)."""
        return self._call(
            lambda: int(
                self.conn.execute(
                    f"SELECT count(*) FROM {TABLE} WHERE tokenizer = %s AND id > %s", (tokenizer, after)
                ).fetchone()[0]
            )
        )

    def created_at(self, row_id: int) -> float | None:
        """When row ``row_id`` was published (None: no such row)."""
        found = self._call(
            lambda: self.conn.execute(
                f"SELECT extract(epoch FROM created) FROM {TABLE} WHERE id = %s", (row_id,)
            ).fetchone()
        )
        return float(found[0]) if found else None

    def trim(self, keep: Retention) -> int:
        """Delete, once, the rows ``keep`` does not keep (``sufdec share trim``); returns how
        many. The setting (``set_retention``) is left as it is."""
        return self._call(self._trim, keep)

    def _trim(self, keep: Retention) -> int:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            return self._delete_beyond(keep)

    def _delete_beyond(self, keep: Retention) -> int:
        """Delete what ``keep`` does not keep, inside the caller's transaction."""
        gone = 0
        if keep.keep_days is not None:
            gone += self.conn.execute(
                f"DELETE FROM {TABLE} WHERE created < now() - make_interval(secs => %s)", (keep.keep_days * 86400.0,)
            ).rowcount
        if keep.keep_rows is not None:
            gone += self.conn.execute(
                f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
                f"(PARTITION BY tokenizer ORDER BY id DESC) AS newer FROM {TABLE}) ranked WHERE newer > %s)",
                (keep.keep_rows,),
            ).rowcount
        return gone

    def retention(self) -> Retention:
        """The table's retention setting."""
        return self._call(self._retention)

    def _retention(self) -> Retention:
        got = dict(
            self.conn.execute(f"SELECT name, value FROM {SETTINGS} WHERE name IN ('keep_days', 'keep_rows')").fetchall()
        )
        rows = got.get("keep_rows")
        return Retention(got.get("keep_days"), int(rows) if rows is not None else None)

    def set_retention(self, retention: Retention) -> None:
        """Record ``retention`` as the table's setting (every host applies it from now on)."""
        self._call(self._set_retention, retention)

    def _set_retention(self, retention: Retention) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            self.conn.execute(f"DELETE FROM {SETTINGS} WHERE name IN ('keep_days', 'keep_rows')")
            for name, value in (("keep_days", retention.keep_days), ("keep_rows", retention.keep_rows)):
                if value is not None:
                    self.conn.execute(f"INSERT INTO {SETTINGS} (name, value) VALUES (%s, %s)", (name, float(value)))

    def apply_retention(self, every_s: float | None = None) -> int | None:
        """Delete what the retention setting does not keep; returns how many rows went, or
        None when it was not due (applied by some host less than ``every_s`` seconds ago)."""
        return self._call(self._apply_retention, every_s)

    def _apply_retention(self, every_s: float | None) -> int | None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            if every_s is not None:
                last = self.conn.execute(
                    f"SELECT extract(epoch FROM now()) - value FROM {SETTINGS} WHERE name = 'applied_at'"
                ).fetchone()
                if last is not None and float(last[0]) < every_s:
                    return None
            gone = self._delete_beyond(self._retention())
            self.conn.execute(
                f"INSERT INTO {SETTINGS} (name, value) VALUES ('applied_at', extract(epoch FROM now())) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
            )
        return gone

    def wait(self, timeout_s: float, wake_fd: int | None = None) -> bool:
        """Block until another host publishes (a NOTIFY), ``wake_fd`` becomes readable or
        ``timeout_s`` passes; True when woken. The first call starts listening."""
        return self._call(self._wait, timeout_s, wake_fd)

    def _wait(self, timeout_s: float, wake_fd: int | None) -> bool:
        if self._listener is None:
            psycopg = _driver()
            self._listener = psycopg.connect(self.url, **self._connect_args)
            self._listener.execute(f"LISTEN {CHANNEL}")
        fds = [self._listener.fileno()] + ([wake_fd] if wake_fd is not None else [])
        ready, _, _ = select.select(fds, [], [], max(0.0, timeout_s))
        got = bool(ready)
        if self._listener.fileno() in ready:  # drain what arrived (or notice a dropped connection)
            for _ in self._listener.notifies(timeout=0.0):
                pass
        return got

    def close(self) -> None:
        for conn in (self._listener, self.conn):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a broken connection must not raise
                    pass
        self._listener = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
