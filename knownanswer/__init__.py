"""The known-answer domain and models: coloured shapes whose right captions are known.

``knownanswer.domain`` renders the pictures and spells the captions; the
trainer (``scripts/train_known_answer.py``), the tests and the demo catalogue
(``listings.demo``) all draw from it. ``CHECKPOINT`` is the small CLIP trained
on it and ``SIGLIP_CHECKPOINT`` the small SigLIP (sigmoid loss, captions in
English, German, French and Spanish), both committed with the repository; each
one's mismatch threshold was calibrated by the trainer on held-out pictures.
"""

import json
from functools import lru_cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
CHECKPOINT = FIXTURES / "known_answer_clip"
SIGLIP_CHECKPOINT = FIXTURES / "known_answer_siglip"
CHECKPOINTS = {"clip": CHECKPOINT, "siglip": SIGLIP_CHECKPOINT}


@lru_cache(maxsize=len(CHECKPOINTS))
def checkpoint_metrics(checkpoint: Path = CHECKPOINT) -> dict:
    """The held-out figures the trainer wrote beside a checkpoint."""
    return json.loads((Path(checkpoint) / "metrics.json").read_text())


def is_checkpoint(model, checkpoint: Path | None = None) -> bool:
    """Whether ``model`` (a ``CLIPCHECK["MODEL"]`` value: a hub id or a directory,
    relative to the working directory) is ``checkpoint``, or with none given,
    either known-answer checkpoint."""
    if not model:
        return False
    try:
        resolved = Path(str(model)).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return resolved in ((checkpoint,) if checkpoint else tuple(CHECKPOINTS.values()))


def calibrated_threshold(checkpoint: Path = CHECKPOINT) -> float:
    """A checkpoint's calibrated mismatch threshold on the cosine (the CLIP's: 0.7121)."""
    return checkpoint_metrics(checkpoint)["threshold"]["threshold"]


# Shape prompts ("a photo of a circle") sit lower than full captions: the
# right shape's cosine is above 0.40 in 98% of held-out pictures and a wrong
# shape's in 0.4% (docs/known_answer.md). With the shapes as the category
# catalogue, this is the CLIP's CLASSIFY_THRESHOLD at which a category scores
# 0.5; the SigLIP needs none (its own probability is above 0.5 for the right shape).
SHAPE_PROMPT_THRESHOLD = 0.40
