"""generate through typer's CliRunner with a tiny random model built in the test."""

import json

from typer.testing import CliRunner

from sufdec.cli.app import app

runner = CliRunner()
KEYS = ("text", "new_tokens", "steps", "tokens_per_step", "tokens_per_s", "elapsed_s", "spec")


def _gen(model_dir, store, *extra, prompt="SELECT name FROM singer WHERE"):
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(model_dir),
            "--store",
            str(store),
            "--prompt",
            prompt,
            "--max-new-tokens",
            "24",
            "--json",
            "--sizing",
            "fixed",
            *extra,
        ],
    )
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def test_generate_json_learns_and_then_drafts_from_what_it_learned(tmp_path, tiny_model_dir):
    store = tmp_path / "store"
    plain = _gen(tiny_model_dir, store, "--spec", "off", "--no-learn")[0]
    for key in KEYS:
        assert key in plain
    assert plain["new_tokens"] == plain["steps"]  # plain decoding: one token per step
    first = _gen(tiny_model_dir, store)[0]
    assert first["text"] == plain["text"]  # lossless greedy
    assert first["learned"] is True
    second = _gen(tiny_model_dir, store)[0]
    assert second["text"] == plain["text"]
    assert second["steps"] < plain["steps"]  # the learned output is drafted and accepted
    assert second["tokens_per_step"] > 1.5
    stats = json.loads(runner.invoke(app, ["stats", "--store", str(store), "--json"]).stdout)
    assert stats["sequences"] == 1  # the same output is stored once


def test_generate_prompts_file_and_chain_mode(tmp_path, tiny_model_dir):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        '{"id": "a", "prompt": "SELECT name"}\n{"messages": [{"role": "user", "content": "count(*) FROM"}]}\n'
    )
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--store",
            str(tmp_path / "s"),
            "--prompts",
            str(prompts),
            "--max-new-tokens",
            "8",
            "--json",
            "--spec",
            "chain",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 2 and rows[0]["id"] == "a" and rows[1]["spec"] == "chain"
    for row in rows:  # issue 20 item 14: drafts rejected and drafts never verified told apart
        assert row["drafted"] >= row["verified"] >= row["accepted"] >= 0
    # the name before 0.1 was never released: refused, with the kinds there are
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--store",
            str(tmp_path / "s"),
            "--prompt",
            "SELECT",
            "--max-new-tokens",
            "4",
            "--json",
            "--spec",
            "path",
        ],
    )
    assert res.exit_code == 2 and "tree, chain, eesd, hybrid, off" in res.output


def test_generate_streams_text_and_prints_a_summary(tmp_path, tiny_model_dir):
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--store",
            str(tmp_path / "s"),
            "--prompt",
            "SELECT",
            "--max-new-tokens",
            "6",
            "--no-learn",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "tokens in" in res.output and "per step" in res.output


def test_generate_refuses_bad_options(tmp_path, tiny_model_dir):
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--store",
            str(tmp_path / "s"),
            "--prompt",
            "x",
            "--spec",
            "sideways",
        ],
    )
    assert res.exit_code == 2 and "--spec" in res.output
    res = runner.invoke(
        app, ["generate", "--model", str(tmp_path / "missing"), "--store", str(tmp_path / "s"), "--prompt", "x"]
    )
    assert res.exit_code == 1 and "error" in res.output


def test_plain_decoding_still_learns_unless_told_not_to(tmp_path, tiny_model_dir):
    store = tmp_path / "store"
    assert _gen(tiny_model_dir, store, "--spec", "off")[0]["learned"] is True
    again = _gen(tiny_model_dir, store)[0]  # speculation now drafts what plain decoding wrote
    assert again["tokens_per_step"] > 1.5


def test_generate_uses_the_models_own_generation_config(tmp_path, tiny_model_dir):
    """A model that ships a repetition penalty and a max_new_tokens: `sufdec generate` with no
    sampling flags decodes as model.generate() does, speculation on or off; a flag overrides."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model_dir = tmp_path / "penalised"
    shutil.copytree(tiny_model_dir, model_dir)
    GenerationConfig(repetition_penalty=1.8, max_new_tokens=12, eos_token_id=None).save_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = "SELECT name FROM singer WHERE"
    ids = torch.tensor([tok(prompt)["input_ids"]])
    want = tok.decode(
        model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False)[0, ids.shape[1] :],
        skip_special_tokens=True,
    )
    unpenalised = tok.decode(
        model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, repetition_penalty=1.0)[
            0, ids.shape[1] :
        ],
        skip_special_tokens=True,
    )
    assert want != unpenalised  # the penalty changes this output, so the check below means something

    def run(*extra):
        res = runner.invoke(
            app,
            [
                "generate",
                "--model",
                str(model_dir),
                "--store",
                str(tmp_path / "s"),
                "--raw",
                "--prompt",
                prompt,
                "--json",
                *extra,
            ],
        )
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout.splitlines()[-1])

    off = run("--spec", "off")
    assert off["text"] == want and off["new_tokens"] == 12
    assert run()["text"] == want  # speculation, drafting from what plain decoding learned
    assert run("--repetition-penalty", "1.0", "--spec", "off", "--no-learn")["text"] == unpenalised
