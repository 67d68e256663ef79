"""When to stop inside an accepted path: EOS ids, stop strings, max_new_tokens."""

from __future__ import annotations

from collections.abc import Sequence


class StopStrings:
    """Stops at the first token whose text completes one of ``stops``.

    Like transformers' StopStringCriteria, a stop string counts only when it overlaps the
    last token: checking after every token, the first overlap is the first occurrence.
    Only a short tail of tokens is decoded each time.
    """

    def __init__(self, tokenizer, stops: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)
        self.window = max((len(s) for s in self.stops), default=0) + 4

    def __bool__(self) -> bool:
        return bool(self.stops)

    def hit(self, generated: Sequence[int]) -> bool:
        if not self.stops or not generated:
            return False
        tail = self.tokenizer.decode(list(generated[-self.window :]), skip_special_tokens=False)
        last = self.tokenizer.decode([generated[-1]], skip_special_tokens=False)
        # the match must reach into the last token's text: look at the tail's end only
        for s in self.stops:
            pos = tail.rfind(s)
            if pos >= 0 and pos + len(s) > len(tail) - max(len(last), 1):
                return True
        return False


def eos_ids_of(model, tokenizer) -> tuple[int, ...]:
    """The EOS ids ``generate()`` would stop on: the model's generation config first."""
    for src in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        eos = getattr(src, "eos_token_id", None) if src is not None else None
        if eos is None:
            continue
        return tuple(int(e) for e in eos) if isinstance(eos, (list, tuple)) else (int(eos),)
    return ()
