"""``sufdec generate``: speculative generation that learns from its own outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from sufdec.cli import common, maintenance


def read_prompts(prompt: Optional[str], prompts: Optional[Path]) -> list[dict]:
    """Requests as dicts with "prompt" or "messages" (and an optional "id")."""
    if prompt is not None and prompts is not None:
        raise common.fail("give either --prompt or --prompts, not both", 2)
    if prompt is not None:
        return [{"prompt": prompt}]
    if prompts is not None:
        from sufdec.jsonl import read_objects

        try:
            out = [rec for _, rec in read_objects(
                prompts, lambda r: isinstance(r.get("prompt"), str) or isinstance(r.get("messages"), list),
                'an object with "prompt" (text) or "messages" (list)')]
        except ValueError as exc:
            raise common.fail(str(exc), 2) from None
        if not out:
            raise common.fail(f"{prompts} holds no prompts", 2)
        return out
    if sys.stdin is None or sys.stdin.isatty():
        raise common.fail("no prompt: use --prompt TEXT, --prompts FILE.jsonl, or pipe text on standard input", 2)
    text = sys.stdin.read()
    if not text.strip():
        raise common.fail("standard input was empty", 2)
    return [{"prompt": text}]


def generate(
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="The prompt text.", show_default=False),
    prompts: Optional[Path] = typer.Option(
        None, "--prompts", help='JSONL file, one {"prompt"} or {"messages"} per line.', exists=True,
        dir_okay=False, show_default=False),
    model: Optional[str] = common.ModelOption,
    gguf_file: Optional[str] = typer.Option(None, "--gguf-file", help="GGUF file inside a --model folder.", show_default=False),
    store: Optional[Path] = common.StoreOption,
    chat: bool = typer.Option(True, "--chat/--raw", help="Apply the model's chat template (default) or send raw text."),
    system: Optional[str] = typer.Option(None, "--system", help="System message (chat mode).", show_default=False),
    max_new_tokens: Optional[int] = typer.Option(
        None, "--max-new-tokens", "-n", min=1, show_default=False,
        help="Most tokens to generate. Default: the model's generation_config max_new_tokens, else 256."),
    temperature: Optional[float] = typer.Option(
        None, "--temperature", "-t", min=0.0, show_default=False,
        help="0 = greedy, > 0 = sample. Default: the model's own (greedy unless its generation_config samples)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", min=0.0, max=1.0, show_default=False,
                                          help="Nucleus sampling. Default: the model's (1.0 = off)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=0, show_default=False,
                                        help="Top-k sampling, 0 = off. Default: the model's (transformers' 50 if it names none)."),
    min_p: Optional[float] = typer.Option(None, "--min-p", min=0.0, max=1.0, show_default=False,
                                          help="Min-p sampling. Default: the model's (off)."),
    repetition_penalty: Optional[float] = typer.Option(
        None, "--repetition-penalty", min=0.0, show_default=False,
        help="Default: the model's (1.0 = off), applied greedy or sampling, as generate() does."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed for sampling (default: a fresh one).", show_default=False),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable; default: the model's stop_strings).", show_default=False),
    spec: str = typer.Option("tree", "--spec", help="tree: verify draft trees from past outputs; chain: only each draft's most probable path; eesd: chains from the model's own early-exit layer (train it with `sufdec train-exit`); off: plain decoding."),
    preset: str = typer.Option("merged", "--draft-mode", help="merged: one tree from both trees and several match lengths (default); paper: the published algorithm (factor 4, min probability 0.1)."),
    max_spec_tokens: Optional[int] = typer.Option(None, "--max-spec-tokens", min=0, show_default=False,
                                                  help="Most draft nodes verified per step (default 32)."),
    spec_factor: Optional[float] = typer.Option(None, "--spec-factor", min=0.0, show_default=False,
                                                help="Draft at most factor x match length nodes (default: 1000 merged, 4 paper)."),
    min_token_prob: Optional[float] = typer.Option(None, "--min-token-prob", min=0.0, max=1.0, show_default=False,
                                                   help="Drop draft nodes whose estimated probability is lower (default: 0 merged, 0.1 paper)."),
    sizing: str = typer.Option("cost", "--sizing", help="cost: verify the part of each draft worth its forward cost (the cost measured at load, the draft's probabilities corrected by the acceptance observed so far); fixed: always up to --max-spec-tokens."),
    exit_layer: Optional[int] = typer.Option(None, "--exit-layer", min=1, show_default=False,
                                             help="--spec eesd: the exit layer after layer N (default: the newest trained)."),
    exit_min_prob: Optional[float] = typer.Option(None, "--exit-min-prob", min=0.0, max=1.0, show_default=False,
                                                  help="--spec eesd: stop a chain when its probability falls below this (default 0.3)."),
    learn: bool = typer.Option(True, "--learn/--no-learn", help="Append each finished output to the store."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16."),
    device_map: Optional[str] = typer.Option(None, "--device-map", help="auto: spread a large model over devices (accelerate).", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per prompt instead of streamed text."),
    max_tokens: Optional[int] = maintenance.MaxTokensOption,
    max_bytes: Optional[str] = maintenance.MaxBytesOption,
    eviction: Optional[str] = maintenance.EvictionOption,
) -> None:
    """Generate with speculation: drafts from past outputs, verified in one forward pass.

    The output is exactly what plain decoding with model.generate() gives (greedy, or
    the same sampling distribution), in fewer steps. Sampling settings left out take the
    model's own generation_config, as generate() does (for example a repetition penalty
    the model ships). Each finished output is appended to the store (one small write)
    unless --no-learn, so the next request drafts from it. Text streams to the terminal
    as tokens are accepted; a summary line follows on standard error.
    """
    if spec == "path":  # the name before 0.2
        common.say("--spec path is now called --spec chain")
        spec = "chain"
    try:
        from sufdec.suffix.settings import DraftSettings

        draft = DraftSettings.preset(preset, spec=spec, sizing=sizing, max_spec_tokens=max_spec_tokens,
                                     max_spec_factor=spec_factor, min_token_prob=min_token_prob,
                                     exit_layer=exit_layer, exit_min_prob=exit_min_prob)
    except ValueError as exc:
        raise common.fail(f"bad drafting option (--spec, --draft-mode, --sizing): {exc}", 2) from None
    requests = read_prompts(prompt, prompts)
    budget = maintenance.budget_config(max_tokens, max_bytes, eviction)
    with common.clean_errors():
        if (max_tokens, max_bytes, eviction) != (None, None, None):
            from sufdec.store import Store

            Store.open(common.resolve_store(store), config=budget).close()  # records the budget
        from sufdec.session import GenerationSession, SessionConfig

        session = GenerationSession.open(
            SessionConfig(
                model=model, gguf_file=gguf_file, store=common.resolve_store(store),
                cache_root=common.cache_root(), device=device, dtype=dtype, device_map=device_map,
                draft=draft, learn=learn,
            ),
            say=common.say,
        )
        try:
            for request in requests:
                ids = session.encode(request, chat=chat, system=system)
                gen_config = session.generation_config(
                    ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                    top_k=top_k, min_p=min_p, repetition_penalty=repetition_penalty, seed=seed,
                    stop=tuple(stop), say=common.say,
                )
                streamer = None if as_json else session.text_streamer()
                result = session.generate(ids, gen_config, streamer=streamer)
                summary = session.summary(result)
                if as_json:
                    if "id" in request:
                        summary = {"id": request["id"], **summary}
                    print(json.dumps(summary), flush=True)
                else:
                    common.err_console.print(
                        f"[dim]{summary['new_tokens']} tokens in {summary['steps']} steps "
                        f"({summary['tokens_per_step']:.2f} per step), {summary['tokens_per_s']:.1f} tokens/s, "
                        f"spec {summary['spec']}{', learned' if summary.get('learned') else ''}[/]",
                        highlight=False,
                    )
        finally:
            session.close()
