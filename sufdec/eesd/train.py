"""Training the exit layer by self-distillation from the frozen target (``sufdec train-exit``).

1. Teacher pass, once: the training sequences are packed into chunks of ``chunk`` tokens
   and run through the frozen target with ``output_hidden_states``; for every position
   the layer-N hidden state (the exit layer's input) and the target's top-``top_k``
   next-token probabilities are kept in memory (hidden_size x 4 bytes + top_k x 8 bytes per
   token: 2.6 KB per token for the default model, about 100 MB for 40k tokens).
2. Student steps: only the exit layer trains. Its output goes through the target's frozen
   final norm and LM head restricted to the draft vocabulary (the most frequent tokens of
   the training data, see ``draft_vocab``); the loss is the cross-entropy against the
   teacher's top-k distribution renormalised over that vocabulary, i.e. the KL divergence
   from the teacher up to a constant.
3. Held-out chunks give the draft acceptance: how often the student's top token is the
   target's top token (what greedy verification accepts, position by position).

Sequences given with the index of their first output token (prompt + completion) are
learned, and measured, on output positions only: the exit layer drafts outputs, and
prompts (schemas, instructions) are easier text that inflated the held-out figure.

Ctrl-C saves the exit layer as it is (a checkpoint); running again resumes from it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

import torch

from sufdec.eesd.exit_model import (
    ExitLayerError,
    ExitLayerInfo,
    build_draft_model,
    check_state,
    exit_paths,
    model_fingerprint,
    new_exit_layer,
    save_exit_layer,
)
from sufdec.eesd.settings import TrainSettings


@dataclass
class Teacher:
    """What the frozen target says about the training chunks."""

    hidden: torch.Tensor  # [C, T, H] layer-N hidden states
    top_p: torch.Tensor  # [C, T, K] the target's top-k probabilities
    top_i: torch.Tensor  # [C, T, K] their token ids
    argmax: torch.Tensor  # [C, T] the target's top token
    loss_mask: torch.Tensor | None = None  # [C, T] positions the loss and the acceptance cover


Progress = Callable[[str, dict], None]
"""``progress(phase, figures)``: phase "teacher" (done, total) or "train" (step, steps, loss, tokens_per_s)."""


Text = Union[Sequence[int], tuple[Sequence[int], int]]
"""A training sequence: token ids, or (token ids, index of the first output token): the
loss then covers only the positions that predict output tokens, not a prompt's."""


def pack(sequences: Sequence[Text], chunk: int, eos: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences joined (each followed by ``eos`` when given) and cut into ``[C, chunk]``
    token ids, with ``[C, chunk]`` bools: True where the position predicts an output token."""
    flat: list[int] = []
    loss_mask: list[bool] = []
    for item in sequences:
        seq, first = (item[0], int(item[1])) if isinstance(item, tuple) else (item, 0)
        flat.extend(int(t) for t in seq)
        loss_mask.extend(i + 1 >= first for i in range(len(seq)))  # position i predicts token i + 1
        if eos is not None:
            flat.append(int(eos))
            loss_mask.append(False)  # the separator predicts the next record's first token
    n = len(flat) // chunk
    if n == 0:
        raise ValueError(f"need at least {chunk} tokens of training data, got {len(flat)}")
    ids = torch.tensor(flat[: n * chunk], dtype=torch.long).view(n, chunk)
    return ids, torch.tensor(loss_mask[: n * chunk], dtype=torch.bool).view(n, chunk)


def draft_vocab(chunks: torch.Tensor, size: int, vocab_size: int, always: Sequence[int] = ()) -> torch.Tensor:
    """The ``size`` most frequent tokens of the data (plus ``always``), sorted; all when 0."""
    if size <= 0 or size >= vocab_size:
        return torch.arange(vocab_size)
    counts = Counter(chunks.reshape(-1).tolist())
    keep = {t for t, _ in counts.most_common(size)} | {int(a) for a in always}
    rest = (t for t in range(vocab_size) if t not in keep)
    while len(keep) < size:  # tiny data: fill with the lowest ids
        keep.add(next(rest))
    return torch.tensor(sorted(keep), dtype=torch.long)


@torch.no_grad()
def teacher_pass(
    model: torch.nn.Module,
    chunks: torch.Tensor,
    layer: int,
    top_k: int,
    progress: Progress | None = None,
    batch: int = 4,
) -> Teacher:
    """Run the frozen target once over every chunk (see the module docstring)."""
    device = model.get_input_embeddings().weight.device
    hidden, top_p, top_i, arg = [], [], [], []
    for start in range(0, len(chunks), batch):
        ids = chunks[start : start + batch].to(device)
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
        probs = torch.softmax(out.logits.float(), dim=-1)  # [b, T, V]
        p, i = probs.topk(top_k, dim=-1)  # [b, T, K]
        hidden.append(out.hidden_states[layer].float().cpu())  # [b, T, H]
        top_p.append(p.cpu())
        top_i.append(i.cpu())
        arg.append(i[..., 0].cpu())
        if progress is not None:
            progress("teacher", {"done": min(start + batch, len(chunks)), "total": len(chunks)})
    return Teacher(torch.cat(hidden), torch.cat(top_p), torch.cat(top_i), torch.cat(arg))


class Student(torch.nn.Module):
    """The exit layer fed layer-N hidden states, then the target's norm and a reduced head."""

    def __init__(self, model: torch.nn.Module, exit_layer: torch.nn.Module, vocab: torch.Tensor):
        super().__init__()
        self.exit_only = build_draft_model(model, exit_layer, 0)  # one layer: the exit layer
        head = model.get_output_embeddings().weight.detach()
        self.register_buffer("head", head[vocab.to(head.device)].clone())  # [V', H]
        self.vocab = vocab

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` [B, T, H] -> log-probabilities over the draft vocabulary [B, T, V']."""
        T = hidden.shape[1]
        pos = torch.arange(T, device=hidden.device)[None].expand(hidden.shape[0], -1)
        out = self.exit_only.model(inputs_embeds=hidden.to(self.head.dtype), position_ids=pos, use_cache=False)
        logits = out.last_hidden_state @ self.head.T  # [B, T, V']
        return torch.log_softmax(logits.float(), dim=-1)


def loss_of(student: Student, teacher: Teacher, idx: torch.Tensor, remap: torch.Tensor) -> torch.Tensor:
    """KL divergence from the teacher, up to its constant entropy, on the teacher's top-k
    tokens plus one bucket for all the rest: -sum p_i log q_i - p_rest log q_rest. Its
    minimum is the teacher itself (no sharpening towards the top-k), and it needs the
    student's probabilities only at k + 1 places. Top-k tokens outside the draft
    vocabulary count in the rest on the teacher's side; the student cannot draft them."""
    logq = student(teacher.hidden[idx].to(student.head.device))  # [b, T, V']
    pos = remap[teacher.top_i[idx]].to(logq.device)  # [b, T, K], -1 outside
    inside = pos >= 0
    p_top = teacher.top_p[idx].to(logq.device) * inside  # [b, T, K]
    logq_top = logq.gather(-1, pos.clamp_min(0))  # [b, T, K]
    q_rest = (1 - (logq_top.exp() * inside).sum(-1)).clamp_min(1e-6)  # [b, T]
    p_rest = (1 - p_top.sum(-1)).clamp_min(0)  # [b, T]
    loss = -((p_top * logq_top).sum(-1) + p_rest * q_rest.log())  # [b, T]
    if teacher.loss_mask is None:
        return loss.mean()
    mask = teacher.loss_mask[idx].to(loss.device)
    return (loss * mask).sum() / mask.sum().clamp_min(1)


BRANCH_RATIO = 0.5  # "the top-2 are close": the runner-up has at least this share of the top's probability
DEPTHS = 6


@torch.no_grad()
def held_out_figures(student: Student, teacher: Teacher, idx: torch.Tensor) -> dict:
    """How the student's greedy drafts would fare against the target, position by position
    (teacher forcing: the context is always the target's own text, as after an accepted
    draft). ``top1``: its top token is the target's; ``top2``: one of its top two is;
    ``chain``: for d = 1..6, the share of positions where a d-token greedy chain would be
    accepted whole; ``close``: the share of positions where the runner-up's probability is
    at least ``BRANCH_RATIO`` of the top's, and ``close_second_right`` how often the
    runner-up is then the target's token (what a sibling in a draft tree would win)."""
    if len(idx) == 0:
        return {}
    top1 = top2 = close = close_right = total = 0
    runs = torch.zeros(DEPTHS, dtype=torch.long)
    spans = torch.zeros(DEPTHS, dtype=torch.long)
    for i in idx.split(4):
        logq = student(teacher.hidden[i].to(student.head.device)).cpu()  # [b, T, V']
        q, j = logq.exp().topk(2, dim=-1)  # [b, T, 2]
        first, second = student.vocab[j[..., 0]], student.vocab[j[..., 1]]
        target = teacher.argmax[i]
        mask = teacher.loss_mask[i] if teacher.loss_mask is not None else torch.ones_like(target, dtype=torch.bool)
        hit1 = (first == target) & mask
        near = (q[..., 1] >= BRANCH_RATIO * q[..., 0]) & mask
        top1 += int(hit1.sum())
        top2 += int((hit1 | ((second == target) & mask)).sum())
        close += int(near.sum())
        close_right += int((near & (second == target)).sum())
        total += int(mask.sum())
        run, span = hit1.clone(), mask.clone()
        for d in range(DEPTHS):  # run[t]: positions t..t+d all agree; span[t]: all are outputs
            if d:
                run = run[:, :-1] & hit1[:, d:]
                span = span[:, :-1] & mask[:, d:]
            runs[d] += int(run.sum())
            spans[d] += int(span.sum())
    if not total:
        return {}
    return {
        "positions": total,
        "top1": round(top1 / total, 4),
        "top2": round(top2 / total, 4),
        "chain": [round(int(r) / int(s), 4) if s else None for r, s in zip(runs, spans)],
        "close": round(close / total, 4),
        "close_second_right": round(close_right / close, 4) if close else None,
    }


def _finite(layer: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in layer.parameters())


def _resumed(exit_layer: torch.nn.Module, info: ExitLayerInfo, weights: Path, meta: Path) -> ExitLayerInfo:
    """The saved run's info with its weights loaded into ``exit_layer`` (``info`` as it was
    when the saved layer is another model's or start's); a damaged or poisoned file is one
    ExitLayerError that says to start over."""
    from safetensors.torch import load_file

    try:
        old = ExitLayerInfo.from_json(meta.read_text())
        if old.fingerprint != info.fingerprint or old.init_from != info.init_from:
            return info
        state = load_file(str(weights))
        check_state(exit_layer, state)  # every tensor, of its shape, floating point, finite
        exit_layer.load_state_dict(state)
    except Exception as exc:  # safetensors, json and torch raise many kinds; one line for all
        raise ExitLayerError(
            f"the saved exit layer {weights} is damaged ({type(exc).__name__}: "
            f"{str(exc)[:200]}); start over with --fresh"
        ) from None
    return old


def _split(n_chunks: int, settings: TrainSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out and training chunk indices (seeded; with one chunk it trains on it and
    holds none out)."""
    n_held = max(1, int(n_chunks * settings.held_out)) if n_chunks > 1 else 0
    perm = torch.randperm(n_chunks, generator=torch.Generator().manual_seed(settings.seed))
    held, train = perm[:n_held], perm[n_held:]
    return held, (train if len(train) else held)


def _optimizer_step(opt: torch.optim.Optimizer, lr: float, loss: torch.Tensor, layer: torch.nn.Module) -> float:
    """One step at learning rate ``lr`` (gradients clipped to norm 1); the loss as a float."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(layer.parameters(), 1.0)
    opt.step()
    return float(loss.detach())


def train_exit_layer(
    model: torch.nn.Module,
    sequences: Sequence[Text],
    settings: TrainSettings,
    out_dir: Path,
    *,
    eos: int | None = None,
    model_name: str = "",
    progress: Progress | None = None,
    resume: bool = True,
) -> ExitLayerInfo:
    """Train (or resume training) the exit layer at ``settings.layer`` and save it in ``out_dir``."""
    t_start = time.perf_counter()
    torch.manual_seed(settings.seed)
    model.requires_grad_(False)
    fingerprint = model_fingerprint(model)
    exit_layer = new_exit_layer(model, settings.layer, settings.init_from)
    info = ExitLayerInfo(fingerprint, settings.layer, exit_layer.sufdec_init_from, len(model.model.layers), model_name)
    weights, meta = exit_paths(out_dir, settings.layer)
    if resume and weights.is_file() and meta.is_file():
        info = _resumed(exit_layer, info, weights, meta)
    exit_layer.requires_grad_(True).train()
    chunks, loss_mask = pack(sequences, settings.chunk, eos)
    held, train = _split(len(chunks), settings)
    vocab_size = model.get_output_embeddings().weight.shape[0]
    vocab = draft_vocab(chunks[train], settings.draft_vocab, vocab_size, [eos] if eos is not None else [])
    remap = torch.full((vocab_size,), -1, dtype=torch.long)
    remap[vocab] = torch.arange(len(vocab))
    teacher = teacher_pass(model, chunks, settings.layer, settings.top_k, progress)
    teacher.loss_mask = loss_mask
    student = Student(model, exit_layer, vocab)
    opt = torch.optim.AdamW(exit_layer.parameters(), lr=settings.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(settings.seed + 1)
    step, loss_value = info.steps, info.final_loss

    def save(steps_done: int, loss: float | None, figures: dict | None = None) -> ExitLayerInfo:
        if not _finite(exit_layer) or (loss is not None and not math.isfinite(loss)):
            raise ExitLayerError(
                f"training diverged by step {steps_done} (non-finite loss or weights): nothing "
                f"was saved to {weights}; lower --lr"
            )
        extra = {"draft_vocab": vocab.tolist(), "chunk": settings.chunk, "lr": settings.lr}
        if figures:
            extra["held_out"] = figures
        done = replace(
            info,
            steps=steps_done,
            final_loss=loss,
            held_out_acceptance=figures.get("top1") if figures else None,
            data_sequences=len(sequences),
            data_tokens=int(chunks.numel()),
            train_seconds=round(info.train_seconds + time.perf_counter() - t_start, 1),
            extra=extra,
        )
        save_exit_layer(exit_layer, done, out_dir)
        return done

    try:
        t0, seen = time.perf_counter(), 0
        while step < settings.steps:
            lr = settings.lr * 0.5 * (1 + math.cos(math.pi * step / max(settings.steps, 1)))
            idx = train[torch.randint(len(train), (min(settings.batch, len(train)),), generator=gen)]
            loss_value = _optimizer_step(opt, lr, loss_of(student, teacher, idx, remap), exit_layer)
            step += 1
            seen += idx.numel() * settings.chunk
            if progress is not None:
                progress(
                    "train",
                    {
                        "step": step,
                        "steps": settings.steps,
                        "loss": loss_value,
                        "tokens_per_s": seen / max(time.perf_counter() - t0, 1e-9),
                    },
                )
            if settings.checkpoint_every and step % settings.checkpoint_every == 0:
                save(step, loss_value)
    except KeyboardInterrupt:
        save(step, loss_value)
        raise
    exit_layer.eval()
    return save(step, loss_value, held_out_figures(student, teacher, held if len(held) else train))
