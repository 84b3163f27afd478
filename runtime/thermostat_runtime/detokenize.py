"""Incremental detokenization with stop strings, for streamed and whole responses.

Decoding the whole generated prefix each time (rather than token by token) keeps multi-byte characters
split across tokens intact: text ending in U+FFFD is held back until the rest of the character arrives.
With stop strings, the last ``len(longest stop) - 1`` characters are held back too, so a stop string
split over several tokens is never half-sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class TextStream:
    """Feed token ids, get the text that is safe to send; ``stopped`` once a stop string appeared."""

    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = list(stop)
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self._ids: list[int] = []
        self._sent = 0
        self.text = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add one token; returns the new text to send (possibly empty)."""
        if self.stopped:
            return ""
        self._ids.append(token_id)
        text = self._decode(self._ids)
        if text.endswith("\ufffd"):
            return ""
        cuts = [i for i in (text.find(s) for s in self._stop) if i >= 0]
        if cuts:
            self.stopped = True
            self.text = text[: min(cuts)]
            return self._advance(len(self.text))
        self.text = text
        return self._advance(len(text) - self._hold)

    def flush(self) -> str:
        """Everything not yet sent, at the end of generation."""
        return self._advance(len(self.text))

    def _advance(self, upto: int) -> str:
        if upto <= self._sent:
            return ""
        delta = self.text[self._sent : upto]
        self._sent = upto
        return delta
