"""Run `sufdec bench` on a machine kept busy by CPU hogs (a benchmark beside other work).

    python scripts/bench_busy.py --hogs 3 -- --workload sharegpt --methods vanilla,suffix-tree ...

Starts HOGS processes that spin on the CPU (a machine busy with other jobs), runs
``python -m sufdec bench`` with the arguments after ``--`` in this interpreter, and stops
the hogs however the run ends. The bench interleaves its methods prompt by prompt, so
every method meets the same load; its report gives the load average it ran under. Speculation must not lose to plain
decoding by more than a few percent whatever the machine is doing (issue 18).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys


def _spin() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hogs", type=int, default=3, help="busy processes beside the bench (default 3)")
    ap.add_argument("bench", nargs=argparse.REMAINDER, help="-- then `sufdec bench` arguments")
    args = ap.parse_args()
    bench = args.bench[1:] if args.bench[:1] == ["--"] else args.bench
    hogs = [mp.Process(target=_spin, daemon=True) for _ in range(max(0, args.hogs))]
    for h in hogs:
        h.start()
    print(f"bench_busy: {len(hogs)} CPU hog(s) running beside `sufdec bench {' '.join(bench)}`", flush=True)
    try:
        return subprocess.call([sys.executable, "-m", "sufdec", "bench", *bench])
    finally:
        for h in hogs:
            h.terminate()
        for h in hogs:
            h.join(5)


if __name__ == "__main__":
    sys.exit(main())
