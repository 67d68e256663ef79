"""When to stop inside an accepted path: EOS ids and stop strings.

Stop strings follow transformers' ``StopStringCriteria``: after each new token, a stop
string counts when it occurs in the decoded text of the whole sequence (prompt included)
and reaches into that last token's text; it may start in earlier tokens, even in the
prompt, and the last token may run past its end. Checking after every token, the first
such token is where the stop string first appears.

Only a tail of tokens is decoded each time, long enough in *bytes*: every token stands for
at least one byte, so a tail of (longest stop string in UTF-8 bytes + a margin) tokens
holds any occurrence that reaches the last token, multi-byte characters split over
byte-level tokens included. The last token's text begins where decoding the tail with it
and without it first differ: that keeps a leading space that SentencePiece decoders drop
when a token is decoded alone, and counts a character the last token completes (a
partial character decodes as a replacement character before it).
"""

from __future__ import annotations

from collections.abc import Sequence

_MARGIN = 8  # extra tokens decoded before the stop string's bytes (a partial character, an overhang)


class StopStrings:
    """Stops at the first token whose text completes one of ``stops``."""

    def __init__(self, tokenizer, stops: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)
        if self.stops and tokenizer is None:
            raise ValueError("stop strings need a tokenizer to decode the generated tokens")
        self.window = max((len(s.encode("utf-8")) for s in self.stops), default=0) + _MARGIN

    def __bool__(self) -> bool:
        return bool(self.stops)

    def hit(self, ids: Sequence[int]) -> bool:
        """Whether a stop string reaches into the last token of ``ids`` (the whole sequence
        so far, or at least its last ``window`` tokens)."""
        if not self.stops or not ids:
            return False
        tail = list(ids[-self.window :])
        text = self.tokenizer.decode(tail, skip_special_tokens=False)
        before = self.tokenizer.decode(tail[:-1], skip_special_tokens=False) if len(tail) > 1 else ""
        start_of_last = _common_prefix(text, before)  # where the last token's text begins
        if start_of_last >= len(text):
            return False  # the last token added no text: nothing new can match
        for s in self.stops:
            pos = text.rfind(s)
            if pos >= 0 and pos + len(s) > start_of_last:
                return True
        return False


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def eos_ids_of(model, tokenizer) -> tuple[int, ...]:
    """The EOS ids ``generate()`` would stop on: its generation config's (none when that
    names none, as generate() then runs to the length limit). Only an object without a
    generation config falls back to its config's, then the tokenizer's."""
    gen_cfg = getattr(model, "generation_config", None)
    sources = (gen_cfg,) if gen_cfg is not None else (getattr(model, "config", None), tokenizer)
    for src in sources:
        eos = getattr(src, "eos_token_id", None) if src is not None else None
        if eos is None:
            continue
        return tuple(int(e) for e in eos) if isinstance(eos, (list, tuple)) else (int(eos),)
    return ()
