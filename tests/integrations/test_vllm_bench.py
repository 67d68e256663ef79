"""The vLLM benchmark's planning and report, without vLLM: the jobs each engine gets, the
figures of a cell, the output check against plain vLLM and the targets."""

from __future__ import annotations

from pathlib import Path

from sufdec.bench.corpus import digest
from sufdec.bench.vllm import plan, report


def _row(method, phase, c, tps, outputs, accepted=0, drafts=0, drafted=0):
    tokens = sum(map(len, outputs))
    return {
        "workload": "w",
        "method": method,
        "label": method,
        "phase": phase,
        "concurrency": c,
        "tokens": tokens,
        "wall_s": tokens / tps,
        "tokens_per_s": tps,
        "engine_steps": 10,
        "spec": {"num_drafts": drafts, "num_draft_tokens": drafted, "num_accepted_tokens": accepted},
        "propose_calls": 10 if drafts else 0,
        "propose_s": 0.01 if drafts else 0.0,
        "outputs": outputs,
    }


def test_jobs_follow_the_protocol(tmp_path):
    settings = plan.Settings(model=str(tmp_path), out=tmp_path, cache=tmp_path, concurrencies=(1, 8))
    wl = plan.Workload("w", train=[[1, 2], [3, 4]], eval=[[5, 6]], skipped=0)
    corpus = {digest([1, 2]): [7, 2]}
    plain = plan.job(settings, wl, "plain", tmp_path / "r", tmp_path / "c.jsonl", corpus)
    kinds = [t["kind"] for t in plain["tasks"]]
    assert kinds == ["corpus", "warmup", "cell", "cell"]
    assert plain["tasks"][0]["prompts"] == [[3, 4]]  # only what the cache lacks
    corpus[digest([3, 4])] = [8, 2]
    suffix = plan.job(settings, wl, "suffix", tmp_path / "r", tmp_path / "c.jsonl", corpus)
    cells = [(t["phase"], t["concurrency"], bool(t.get("inject"))) for t in suffix["tasks"] if t["kind"] == "cell"]
    assert cells == [("a", 1, True), ("b", 1, False), ("a", 8, True), ("b", 8, False)]
    assert suffix["corpus"] == [[[1, 2], [7, 2]], [[3, 4], [8, 2]]]
    assert suffix["speculative_config"]["method"] == "suffix"
    ours = plan.job(settings, wl, "sufdec", tmp_path / "r", tmp_path / "c.jsonl", corpus)
    assert ours["worker_cls"] == "sufdec.integrations.vllm.Worker"
    assert {t.get("phase") for t in ours["tasks"] if t["kind"] == "cell"} == {"ab"}


def test_report_figures_mismatches_and_targets(tmp_path: Path):
    outs = [[1, 2, 3, 4], [5, 6]]
    rows = [
        _row("plain", "-", 1, 10.0, outs),
        _row("suffix", "a", 1, 15.0, outs, accepted=2, drafts=2, drafted=4),
        _row("suffix", "b", 1, 12.0, outs, accepted=1, drafts=2, drafted=4),
        _row("sufdec", "ab", 1, 20.0, [[1, 2, 9, 4], [5, 6]], accepted=3, drafts=2, drafted=4),
    ]
    summary = {s["method"]: s for s in report.summarize(rows)}
    ours = summary["sufdec (ab)"]
    assert ours["vs_plain"] == 2.0
    assert ours["tokens_per_step"] == round(6 / 3, 3) and ours["mean_acceptance_length"] == 2.5
    assert ours["acceptance_rate"] == 0.75
    assert (ours["mismatches"], ours["first_mismatch"]) == (1, [0, 2])
    assert summary["suffix (a)"]["mismatches"] == 0
    met = {(t["target"][:3]): t for t in report.targets(list(summary.values()))}
    assert met["(a)"]["ratio"] == round(20 / 15, 3) and met["(a)"]["met"]
    assert met["(b)"]["ratio"] == round(20 / 12, 3) and met["(b)"]["met"]
    assert "sufdec (ab)" in report.table(list(summary.values()))
