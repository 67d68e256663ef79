"""``sufdec generate``: speculative generation that learns from its own outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from sufdec.cli import checks, common, maintenance
from sufdec.cli import share as share_cli
from sufdec.drafters.settings import DraftSettings
from sufdec.suffix.settings import preset_default


def read_prompts(prompt: Optional[str], prompts: Optional[Path]) -> list[dict]:
    """Requests as dicts with "prompt" or "messages" (and an optional "id")."""
    if prompt is not None and prompts is not None:
        raise common.fail("give either --prompt or --prompts, not both", 2)
    if prompt is not None:
        checks.text(prompt, "--prompt")
        return [{"prompt": prompt}]
    if prompts is not None:
        from sufdec.jsonl import read_objects

        checks.readable_stream(prompts, f"--prompts {checks.shown(prompts)}")  # a file, a FIFO or `<(cmd)`

        def skipped(n: int, why: str, too_long: bool) -> None:
            if not too_long:  # a prompt file with a broken line is refused whole
                raise ValueError(f"{checks.shown(prompts)}:{n}: {why}")
            common.say(f"{checks.shown(prompts)}:{n}: skipped: {why}")

        try:
            lines = list(
                read_objects(
                    prompts,
                    lambda r: isinstance(r.get("prompt"), str) or isinstance(r.get("messages"), list),
                    'an object with "prompt" (text) or "messages" (list)',
                    skipped=skipped,
                )
            )
        except ValueError as exc:
            raise common.fail(str(exc), 2) from None
        if not lines:
            raise common.fail(f"{checks.shown(prompts)} holds no prompts", 2)
        for n, rec in lines:
            for text in _texts(rec):
                checks.text(text, f"{checks.shown(prompts)}:{n}:")
        return [rec for _, rec in lines]
    if sys.stdin is None or sys.stdin.isatty():
        raise common.fail("no prompt: use --prompt TEXT, --prompts FILE.jsonl, or pipe text on standard input", 2)
    text = sys.stdin.read()
    if not text.strip():
        raise common.fail("standard input was empty", 2)
    return [{"prompt": text}]


def _texts(request: dict) -> list[str]:
    """The strings of a request that reach the tokenizer."""
    found = [request.get("prompt")] + [m.get("content") for m in request.get("messages", []) if isinstance(m, dict)]
    return [t for t in found if isinstance(t, str)]


def _check_settings(
    *,
    max_new_tokens,
    temperature,
    top_p,
    top_k,
    min_p,
    repetition_penalty,
    seed,
    system,
    stop,
) -> None:
    """Every numeric option in its range and every text UTF-8, before anything loads."""
    big = checks.INT32_MAX
    checks.in_range(max_new_tokens, "--max-new-tokens", low=1, high=big)
    checks.in_range(temperature, "--temperature", low=0.0, note=" (0 = greedy)")
    checks.in_range(top_p, "--top-p", low=0.0, high=1.0, low_open=True, note=" (1.0 = off)")
    checks.in_range(top_k, "--top-k", low=0, high=big, note=" (0 = off)")
    checks.in_range(min_p, "--min-p", low=0.0, high=1.0)
    checks.in_range(repetition_penalty, "--repetition-penalty", low=0.0, low_open=True, note=" (1.0 = off)")
    checks.in_range(seed, "--seed", low=0, high=checks.SEED_MAX)
    checks.text(system, "--system")
    for s in stop:
        checks.text(s, "--stop")


def generate(
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="The prompt text.", show_default=False),
    prompts: Optional[Path] = typer.Option(
        None, "--prompts", help='JSONL file, one {"prompt"} or {"messages"} per line.', show_default=False
    ),
    model: Optional[str] = common.ModelOption,
    trust_remote_code: bool = common.TrustRemoteCodeOption,
    gguf_file: Optional[str] = typer.Option(
        None, "--gguf-file", help="GGUF file inside a --model folder.", show_default=False
    ),
    store: Optional[Path] = common.StoreOption,
    chat: bool = typer.Option(True, "--chat/--raw", help="Apply the model's chat template (default) or send raw text."),
    system: Optional[str] = typer.Option(None, "--system", help="System message (chat mode).", show_default=False),
    max_new_tokens: Optional[int] = typer.Option(
        None,
        "--max-new-tokens",
        "-n",
        show_default=False,
        help="Most tokens to generate, 1 to 2,147,483,647 (capped to the model's context). "
        "Default: the model's generation_config max_new_tokens, else 256.",
    ),
    temperature: Optional[float] = typer.Option(
        None,
        "--temperature",
        "-t",
        show_default=False,
        help=">= 0: 0 = greedy, > 0 = sample. Default: the model's own (greedy unless its generation_config samples).",
    ),
    top_p: Optional[float] = typer.Option(
        None, "--top-p", show_default=False, help="Nucleus sampling, in (0, 1]. Default: the model's (1.0 = off)."
    ),
    top_k: Optional[int] = typer.Option(
        None,
        "--top-k",
        show_default=False,
        help="Top-k sampling, >= 0 (0 = off). Default: the model's (transformers' 50 if it names none).",
    ),
    min_p: Optional[float] = typer.Option(
        None, "--min-p", show_default=False, help="Min-p sampling, in [0, 1]. Default: the model's (off)."
    ),
    repetition_penalty: Optional[float] = typer.Option(
        None,
        "--repetition-penalty",
        show_default=False,
        help="> 0 (1.0 = off). Default: the model's, applied greedy or sampling, as generate() does.",
    ),
    seed: Optional[int] = typer.Option(
        None, "--seed", show_default=False, help="Random seed for sampling, 0 to 2**64-1 (default: a fresh one)."
    ),
    stop: list[str] = typer.Option(
        [], "--stop", help="Stop string (repeatable; default: the model's stop_strings).", show_default=False
    ),
    spec: str = typer.Option("tree", "--spec", help=common.spec_help()),
    preset: str = common.setting(DraftSettings, "mode", "--draft-mode"),
    max_spec_tokens: Optional[int] = common.setting(
        DraftSettings, "max_spec_tokens", "--max-spec-tokens", default=None
    ),
    spec_factor: Optional[float] = common.setting(
        DraftSettings, "max_spec_factor", "--spec-factor", default=None, shown=preset_default("max_spec_factor")
    ),
    min_token_prob: Optional[float] = common.setting(
        DraftSettings, "min_token_prob", "--min-token-prob", default=None, shown=preset_default("min_token_prob")
    ),
    sizing: str = common.setting(DraftSettings, "sizing", "--sizing"),
    exit_layer: Optional[int] = common.setting(DraftSettings, "exit_layer", "--exit-layer", prefix="--spec eesd: "),
    exit_min_prob: Optional[float] = common.setting(
        DraftSettings, "exit_min_prob", "--exit-min-prob", default=None, prefix="--spec eesd: "
    ),
    exit_branch: Optional[float] = common.setting(
        DraftSettings, "exit_branch", "--exit-branch", default=None, prefix="--spec eesd/hybrid: "
    ),
    learn: bool = typer.Option(True, "--learn/--no-learn", help="Append each finished output to the store."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option(
        "auto", "--dtype", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16."
    ),
    device_map: Optional[str] = typer.Option(
        None, "--device-map", help="auto: spread a large model over devices (accelerate).", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per prompt instead of streamed text."),
    max_tokens: Optional[int] = maintenance.MaxTokensOption,
    max_bytes: Optional[str] = maintenance.MaxBytesOption,
    eviction: Optional[str] = maintenance.EvictionOption,
    share: Optional[str] = share_cli.ShareOption,
) -> None:
    """Generate with speculation: drafts from past outputs, verified in one forward pass.

    The output is exactly what plain decoding with model.generate() gives (greedy, or
    the same sampling distribution), in fewer steps. Sampling settings left out take the
    model's own generation_config, as generate() does (for example a repetition penalty
    the model ships). Each finished output is appended to the store (one small write)
    unless --no-learn, so the next request drafts from it. Text streams to the terminal
    as tokens are accepted; a summary line follows on standard error.
    """
    _check_settings(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
        system=system,
        stop=stop,
    )
    try:
        from sufdec.drafters.registry import kind_of

        draft = DraftSettings.preset(
            preset,
            spec=spec,
            sizing=sizing,
            max_spec_tokens=max_spec_tokens,
            max_spec_factor=spec_factor,
            min_token_prob=min_token_prob,
            exit_layer=exit_layer,
            exit_min_prob=exit_min_prob,
            exit_branch=exit_branch,
        )
        kind = kind_of(draft.spec)
    except ValueError as exc:
        raise common.fail(f"bad drafting option (--spec, --draft-mode, --sizing): {exc}", 2) from None
    requests = read_prompts(prompt, prompts)
    share_url = share_cli.resolve(share)
    if not chat and not system and any(not "".join(_texts(r)) for r in requests):
        raise common.fail(
            "the prompt is empty: in --raw mode there is nothing to condition on; give some text "
            "(--chat wraps even an empty message in the model's chat template)",
            2,
        )
    budget = maintenance.budget_config(max_tokens, max_bytes, eviction)
    checks.dtype(dtype)
    checks.device(device)
    with common.clean_errors():
        from sufdec.models import check_gguf_model
        from sufdec.store import check_store_reachable

        if learn or kind.store:  # the store the session will open, before the model loads
            check_store_reachable(common.resolve_store(store))
        if model is not None:
            check_gguf_model(model, gguf_file)
        if (max_tokens, max_bytes, eviction) != (None, None, None):
            from sufdec.store import Store

            Store.open(common.resolve_store(store), config=budget).close()  # records the budget
        from sufdec.session import GenerationSession, SessionConfig

        session = GenerationSession.open(
            SessionConfig(
                model=model,
                gguf_file=gguf_file,
                store=common.resolve_store(store),
                cache_root=common.cache_root(),
                device=device,
                dtype=dtype,
                device_map=device_map,
                draft=draft,
                learn=learn,
                trust_remote_code=trust_remote_code,
            ),
            say=common.say,
        )
        settings = {"chat": chat, "system": system, "as_json": as_json, "stop": stop}
        settings["sampling"] = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "min_p": min_p,
            "repetition_penalty": repetition_penalty,
            "seed": seed,
        }
        try:
            if session.store is None:
                _answer(session, requests, settings)
            else:
                with share_cli.joined(session.store, share_url, follow=True) as replica:
                    _answer(session, requests, settings, learned=replica.kick if replica else None)
        finally:
            session.close()


def _answer(session, requests: list[dict], o: dict, learned=None) -> None:
    """Generate for each request in turn: streamed text, or one JSON object each (``o``: the
    command's output and sampling options; ``learned``: called after each output, which the
    store may have learned: sharing publishes it then)."""
    chat, system, as_json, stop = o["chat"], o["system"], o["as_json"], o["stop"]
    for request in requests:
        ids = session.encode(request, chat=chat, system=system)
        if not ids:
            raise common.fail(
                "the prompt encodes to no tokens: there is nothing to condition on; give some text, or use --chat",
                2,
            )
        gen_config = session.generation_config(ids, **o["sampling"], stop=tuple(stop), say=common.say)
        streamer = None if as_json else session.text_streamer()
        result = session.generate(ids, gen_config, streamer=streamer)
        summary = session.summary(result)
        if learned is not None:
            learned()
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
