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
scored, and the answer says so (``text_truncated``).
"""

import re
from dataclasses import dataclass

SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\s*\n\s*")
WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Passage:
    index: int
    start: int  # character span in the text
    end: int
    text: str

    def evidence(self):
        return {"index": self.index, "start": self.start, "end": self.end}


def _sentence_spans(text):
    spans, start = [], 0
    for separator in SENTENCE_END.finditer(text):
        if separator.start() > start:
            spans.append((start, separator.start()))
        start = separator.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _fit(text, spans, count_tokens, max_tokens):
    """Spans whose text fits ``max_tokens``; longer ones cut into word windows."""
    lengths = count_tokens([text[s:e] for s, e in spans])
    fitted = []
    for (start, end), length in zip(spans, lengths):
        if length <= max_tokens:
            fitted.append((start, end))
            continue
        words = [(start + m.start(), start + m.end()) for m in WORD.finditer(text[start:end])]
        window_start = 0
        while window_start < len(words):
            # Largest window from window_start that fits: binary search on the word count.
            low, high = 1, len(words) - window_start
            while low < high:
                middle = (low + high + 1) // 2
                s, e = words[window_start][0], words[window_start + middle - 1][1]
                if count_tokens([text[s:e]])[0] <= max_tokens:
                    low = middle
                else:
                    high = middle - 1
            s, e = words[window_start][0], words[window_start + low - 1][1]
            fitted.append((s, e))
            window_start += low
    return fitted


def _pack(text, spans, count_tokens, max_tokens, max_passages):
    """Merge neighbouring spans while they fit, until at most ``max_passages`` remain (if possible)."""
    packed = list(spans)
    while len(packed) > max_passages:
        merged, index, changed = [], 0, False
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


def text_passages(text, *, count_tokens, max_tokens, max_passages):
    """``(passages, covered)``: the text's passages and whether they cover all of it.

    ``count_tokens(list of str) -> list of int`` counts tokens with the
    model's tokenizer (special tokens included); ``max_tokens`` is the
    model's context.
    """
    spans = _fit(text, _sentence_spans(text), count_tokens, max_tokens)
    spans = _pack(text, spans, count_tokens, max_tokens, max_passages)
    covered = len(spans) <= max_passages
    spans = spans[:max_passages]
    passages = [Passage(index=i, start=s, end=e, text=text[s:e]) for i, (s, e) in enumerate(spans)]
    return passages, covered
