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


def prompt_ids(tokenizer, request: dict, chat: bool, system: Optional[str]) -> list[int]:
    """Token ids of one request, through the chat template unless --raw."""
    if "messages" in request:
        messages = list(request["messages"])
    else:
        messages = [{"role": "user", "content": request["prompt"]}]
    if system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    if chat and getattr(tokenizer, "chat_template", None):
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=False))
    text = "\n".join(m["content"] for m in messages)
    return list(tokenizer(text)["input_ids"])


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
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", "-n", min=1),
    temperature: float = typer.Option(0.0, "--temperature", "-t", min=0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0),
    top_k: int = typer.Option(0, "--top-k", min=0, help="0 = off."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", min=0.0),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed for sampling.", show_default=False),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable).", show_default=False),
    spec: str = typer.Option("tree", "--spec", help="tree: draft token trees; path: single paths; off: plain decoding."),
    max_spec_tokens: int = typer.Option(32, "--max-spec-tokens", min=0, help="Most draft nodes verified per step."),
    draft_mode: str = typer.Option("merged", "--draft-mode", help="merged: one tree from both trees and several match lengths (default); paper: the published algorithm."),
    spec_factor: Optional[float] = typer.Option(None, "--spec-factor", min=0.0, show_default=False,
                                                help="Draft at most factor x match length nodes (default: 1000 merged, 4 paper)."),
    min_token_prob: Optional[float] = typer.Option(None, "--min-token-prob", min=0.0, max=1.0, show_default=False,
                                                   help="Drop draft nodes whose estimated probability is lower (default: 0 merged, 0.1 paper)."),
    sizing: str = typer.Option("cost", "--sizing", help="cost: verify the part of each draft worth its forward cost (the cost measured at load, the draft's probabilities corrected by the acceptance observed so far); fixed: always up to --max-spec-tokens."),
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

    The output is exactly what plain decoding gives (greedy, or the same sampling
    distribution), in fewer steps. Each finished output is appended to the store (one
    small write) unless --no-learn, so the next request drafts from it. Text streams to
    the terminal as tokens are accepted; a summary line follows on standard error.
    """
    if spec not in ("tree", "path", "off"):
        raise common.fail("--spec must be tree, path or off", 2)
    if sizing not in ("cost", "fixed"):
        raise common.fail("--sizing must be cost or fixed", 2)
    if draft_mode not in ("merged", "paper"):
        raise common.fail("--draft-mode must be merged or paper", 2)
    if spec_factor is None:
        spec_factor = 1000.0 if draft_mode == "merged" else 4.0
    if min_token_prob is None:
        min_token_prob = 0.0 if draft_mode == "merged" else 0.1
    requests = read_prompts(prompt, prompts)
    budget = maintenance.budget_config(max_tokens, max_bytes, eviction)
    with common.clean_errors():
        if (max_tokens, max_bytes, eviction) != (None, None, None):
            from sufdec.store import Store

            Store.open(common.resolve_store(store), config=budget).close()  # records the budget
        from sufdec.engine.session import GenerationSession, SessionConfig

        session = GenerationSession.open(
            SessionConfig(
                model=model, gguf_file=gguf_file, store=store, device=device, dtype=dtype,
                device_map=device_map, spec=spec, max_spec_tokens=max_spec_tokens,
                spec_factor=spec_factor, min_token_prob=min_token_prob, learn=learn, draft_mode=draft_mode,
                sizing=sizing,
            ),
            say=common.say,
        )
        try:
            for request in requests:
                ids = prompt_ids(session.tokenizer, request, chat, system)
                gen_config = session.generation_config(
                    ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                    top_k=top_k, repetition_penalty=repetition_penalty, seed=seed, stop=tuple(stop),
                    say=common.say,
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
                        f"({summary['accepted_per_step']:.2f} per step), {summary['tokens_per_s']:.1f} tokens/s, "
                        f"spec {summary['spec']}{', learned' if summary.get('learned') else ''}[/]",
                        highlight=False,
                    )
        finally:
            session.close()
