"""Long texts as passages that fit the model's context.

CLIP reads at most 77 tokens; a longer description would be judged on its
first ~50 words. Instead it is split into passages, each within the
context, and every passage is scored (``clipcheck.verdicts``).

The split is deterministic and sentence-aware: the text is cut into
sentences (after ``.``, ``!``, ``?`` or ``;`` followed by a space, and at
line breaks); a sentence longer than the context is cut at word boundaries
into windows that fit. Each sentence is a passage of its own, so a matching
sentence is never diluted by boilerplate around it. When that gives more
than ``MAX_PASSAGES`` passages, neighbouring passages are packed together
while they fit; what is still beyond ``MAX_PASSAGES`` passages is not
scored, and the answer says so (``text_truncated``). Text beyond what
``MAX_PASSAGES`` contexts can hold is not even split: the cost of planning is
bounded by what can be scored, not by the text's length.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\s*\n\s*")
WORD = re.compile(r"\S+")

# Tokens of each text, special tokens included (the engine's ``count_tokens``).
TokenCounter = Callable[[list[str]], Sequence[int]]
Span = tuple[int, int]


@dataclass(frozen=True)
class Passage:
    index: int
    start: int  # character span in the text
    end: int
    text: str

    def evidence(self) -> dict[str, int]:
        return {"index": self.index, "start": self.start, "end": self.end}


def _sentence_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    start = 0
    for separator in SENTENCE_END.finditer(text):
        if separator.start() > start:
            spans.append((start, separator.start()))
        start = separator.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _fit(
    text: str, spans: Sequence[Span], count_tokens: TokenCounter, max_tokens: int, *, special: int, max_content: int
) -> tuple[list[Span], bool]:
    """``(spans whose text fits max_tokens, whether all of the text was reached)``;
    longer spans are cut into word windows.

    Planning stops once the spans hold ``max_content`` tokens (``special``,
    the start and end markers every count includes, left out), as many as
    the passages that can be scored: the rest of a long text costs no tokenizing.
    """
    lengths = count_tokens([text[s:e] for s, e in spans])
    fitted: list[Span] = []
    content = 0
    for (start, end), length in zip(spans, lengths, strict=True):
        if content >= max_content:
            return fitted, False
        if length <= max_tokens:
            fitted.append((start, end))
            content += length - special
            continue
        words = [(start + m.start(), start + m.end()) for m in WORD.finditer(text[start:end])]
        window_start = 0
        while window_start < len(words):
            if content >= max_content:
                return fitted, False
            # Largest window from window_start that fits: binary search on the word count. A word is at
            # least one token, so no window holds more words than the context has tokens.
            low, high, low_length = 1, min(len(words) - window_start, max_tokens - special), None
            while low < high:
                middle = (low + high + 1) // 2
                s, e = words[window_start][0], words[window_start + middle - 1][1]
                length = count_tokens([text[s:e]])[0]
                if length <= max_tokens:
                    low, low_length = middle, length
                else:
                    high = middle - 1
            s, e = words[window_start][0], words[window_start + low - 1][1]
            fitted.append((s, e))
            content += (low_length if low_length is not None else count_tokens([text[s:e]])[0]) - special
            window_start += low
    return fitted, True


def _pack(
    text: str, spans: Sequence[Span], count_tokens: TokenCounter, max_tokens: int, max_passages: int
) -> list[Span]:
    """Merge neighbouring spans while they fit, until at most ``max_passages`` remain (if possible)."""
    packed = list(spans)
    while len(packed) > max_passages:
        merged: list[Span] = []
        index, changed = 0, False
        while index < len(packed):
            if index + 1 < len(packed):
                start, end = packed[index][0], packed[index + 1][1]
                if count_tokens([text[start:end]])[0] <= max_tokens:
                    merged.append((start, end))
                    index += 2
                    changed = True
                    continue
            merged.append(packed[index])
            index += 1
        packed = merged
        if not changed:
            break
    return packed


def text_passages(
    text: str, *, count_tokens: TokenCounter, max_tokens: int, max_passages: int
) -> tuple[list[Passage], bool]:
    """``(passages, covered)``: the text's passages and whether they cover all of it.

    ``count_tokens(list of str) -> list of int`` counts tokens with the
    model's tokenizer (special tokens included); ``max_tokens`` is the
    model's context. The work is bounded by what can be scored, whatever the
    text's length: planning stops at ``max_passages`` contexts' worth of tokens.
    """
    special = count_tokens([""])[0]
    spans, reached_end = _fit(
        text, _sentence_spans(text), count_tokens, max_tokens,
        special=special, max_content=max_passages * (max_tokens - special),
    )
    spans = _pack(text, spans, count_tokens, max_tokens, max_passages)
    covered = reached_end and len(spans) <= max_passages
    spans = spans[:max_passages]
    passages = [Passage(index=i, start=s, end=e, text=text[s:e]) for i, (s, e) in enumerate(spans)]
    return passages, covered
