"""Run `sufdec bench` on a machine kept busy by CPU hogs (a benchmark beside other work).

    python scripts/bench_busy.py --hogs 3 -- --workload sharegpt --methods vanilla,suffix-tree ...
    python scripts/bench_busy.py --hogs 3 --duty 2,2 -- ...   # bursts: 2 s busy, 2 s idle

Starts HOGS processes that spin on the CPU (a machine busy with other jobs), runs
``python -m sufdec bench`` with the arguments after ``--`` in this interpreter, and stops
the hogs however the run ends. ``--duty ON,OFF`` makes the load come and go: the hogs
spin for ON seconds, then pause for OFF seconds (SIGSTOP/SIGCONT), each period's lengths
drawn around those means (exponential, seeded), so a request meets load that changes
within it. The bench interleaves its methods prompt by prompt, so every method meets the
same load on average; its report gives the load average it ran under. Speculation must
not lose to plain decoding by more than a few percent whatever the machine is doing
(issue 18).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import threading


def _spin() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def _cycle(pids: list[int], on: float, off: float, stop: threading.Event) -> None:
    """Pause and resume the hogs: busy for ~``on`` seconds, idle for ~``off`` (exponential)."""
    rng = random.Random(0)
    while not stop.is_set():
        if stop.wait(rng.expovariate(1.0 / on)):
            return
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if stop.wait(rng.expovariate(1.0 / off)):
            return
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hogs", type=int, default=3, help="busy processes beside the bench (default 3)")
    ap.add_argument("--duty", default=None, help="ON,OFF: mean seconds the hogs spin, then pause (default: always on)")
    ap.add_argument("bench", nargs=argparse.REMAINDER, help="-- then `sufdec bench` arguments")
    args = ap.parse_args()
    bench = args.bench[1:] if args.bench[:1] == ["--"] else args.bench
    hogs = [mp.Process(target=_spin, daemon=True) for _ in range(max(0, args.hogs))]
    for h in hogs:
        h.start()
    stop = threading.Event()
    if args.duty:
        on, off = (float(x) for x in args.duty.split(","))
        threading.Thread(target=_cycle, args=([h.pid for h in hogs], on, off, stop), daemon=True).start()
    duty = f", duty {args.duty} s" if args.duty else ""
    print(f"bench_busy: {len(hogs)} CPU hog(s){duty} beside `sufdec bench {' '.join(bench)}`", flush=True)
    try:
        return subprocess.call([sys.executable, "-m", "sufdec", "bench", *bench])
    finally:
        stop.set()
        for h in hogs:
            if h.pid is not None:
                os.kill(h.pid, signal.SIGCONT)
        for h in hogs:
            h.terminate()
        for h in hogs:
            h.join(5)


if __name__ == "__main__":
    sys.exit(main())
