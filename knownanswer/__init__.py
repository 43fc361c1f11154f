"""The known-answer domain and model: coloured shapes whose right captions are known.

``knownanswer.domain`` renders the pictures and spells the captions; the
trainer (``scripts/train_known_answer.py``), the tests and the demo catalogue
(``listings.demo``) all draw from it. ``CHECKPOINT`` is the small CLIP trained
on it and committed with the repository; ``THRESHOLD`` is the mismatch
threshold the trainer calibrated on held-out pictures.
"""

import json
from functools import lru_cache
from pathlib import Path

CHECKPOINT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "known_answer_clip"


@lru_cache(maxsize=1)
def checkpoint_metrics():
    """The held-out figures the trainer wrote beside the checkpoint."""
    return json.loads((CHECKPOINT / "metrics.json").read_text())


def is_checkpoint(model) -> bool:
    """Whether ``model`` (a ``CLIPCHECK["MODEL"]`` value: a hub id or a directory,
    relative to the working directory) is this checkpoint."""
    if not model:
        return False
    try:
        return Path(str(model)).expanduser().resolve() == CHECKPOINT
    except (OSError, RuntimeError, ValueError):
        return False


def calibrated_threshold():
    """The checkpoint's calibrated mismatch threshold (0.7121)."""
    return checkpoint_metrics()["threshold"]["threshold"]


# Shape prompts ("a photo of a circle") sit lower than full captions: the
# right shape's cosine is above 0.40 in 98% of held-out pictures and a wrong
# shape's in 0.4% (docs/known_answer.md). With the shapes as the category
# catalogue, this is the CLASSIFY_THRESHOLD at which a category scores 0.5.
SHAPE_PROMPT_THRESHOLD = 0.40
