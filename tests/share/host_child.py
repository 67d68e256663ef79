"""One "host" of the sharing tests, in its own process:

    python host_child.py STORE URL FIRST COUNT FOLLOW_S EXPECT

Opens (or creates) the store at STORE, appends COUNT outputs numbered from FIRST (one
small transaction each, as generation learns them), and shares it through URL: with
FOLLOW_S > 0 a following replica runs until the store holds EXPECT outputs or FOLLOW_S
seconds pass; with FOLLOW_S == 0 it only syncs once. Prints one JSON line: the store's
sequence count. A SIGKILL may end it anywhere (the kill tests).
"""

from __future__ import annotations

import json
import sys
import time

from sufdec.share import Replica
from sufdec.store import Store, TokenizerInfo


def output(n: int) -> list[int]:
    return [n % 1000, n // 1000 + 1, 7, 8, 9, n % 7 + 10, n]


def main() -> None:
    path, url, first, count, follow_s, expect = sys.argv[1:7]
    store = Store.open(path, TokenizerInfo("toy", "fp-toy"))
    replica = Replica(store, url, poll_s=0.2)
    if float(follow_s) > 0:
        replica.start()
    for n in range(int(first), int(first) + int(count)):
        store.append(output(n), {"from": "generate"})
    print("learned", flush=True)
    if float(follow_s) > 0:
        deadline = time.monotonic() + float(follow_s)
        while len(store) < int(expect) and time.monotonic() < deadline:
            time.sleep(0.05)
        replica.stop()
    else:
        replica.sync()
    print(json.dumps({"sequences": len(store)}), flush=True)
    store.close()


if __name__ == "__main__":
    main()
