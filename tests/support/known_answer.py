"""The known-answer models (tests/fixtures/known_answer_clip, known_answer_siglip)
and the settings their tests use."""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import knownanswer
from knownanswer.runtime import int8_build, int8_guard_sample  # noqa: F401  (the tests' names for them)

KNOWN_ANSWER_MODEL = knownanswer.CHECKPOINT
METRICS = knownanswer.checkpoint_metrics()
# Calibrated on the model's held-out set by scripts/train_known_answer.py.
THRESHOLD = knownanswer.calibrated_threshold()


@dataclass(frozen=True)
class KnownAnswerModel:
    """One known-answer checkpoint and what its tests set for it."""

    family: str
    checkpoint: Path
    # A sigmoid-trained model's classify score is its own probability: no
    # classify threshold to set (CLIP: shape prompts sit lower than captions).
    shape_prompt_threshold: float | None
    # Photo-to-photo cosine between "same item" and "another item", read off
    # held-out renders (CLIP: docs/known_answer.md; SigLIP: its metrics.json).
    fixed_same_item_threshold: float | None = None

    @cached_property
    def metrics(self) -> dict:
        return knownanswer.checkpoint_metrics(self.checkpoint)

    @property
    def sigmoid(self) -> bool:
        return "classify" in self.metrics

    @property
    def threshold(self) -> float:
        return knownanswer.calibrated_threshold(self.checkpoint)

    @property
    def same_item_threshold(self) -> float:
        if self.fixed_same_item_threshold is not None:
            return self.fixed_same_item_threshold
        return self.metrics["photos_same_item"]["same_item_threshold"]["threshold"]

    def classify_settings(self) -> dict:
        """``CLIPCHECK`` keys for the shapes as the category catalogue."""
        if self.shape_prompt_threshold is None:
            return {}
        return {"CLASSIFY_THRESHOLD": self.shape_prompt_threshold}


KNOWN_ANSWER_MODELS = {
    "clip": KnownAnswerModel(
        "clip", knownanswer.CHECKPOINT, shape_prompt_threshold=knownanswer.SHAPE_PROMPT_THRESHOLD,
        fixed_same_item_threshold=0.72,
    ),
    "siglip": KnownAnswerModel("siglip", knownanswer.SIGLIP_CHECKPOINT, shape_prompt_threshold=None),
}


def clip_demo_settings():
    """``CLIPCHECK`` as ``manage.py clip_demo`` serves it over the current one (the
    known-answer model, its threshold, prompt wording and categories), read from
    the command itself: it prepares nothing and serves nothing here."""
    import io
    from unittest import mock

    from django.conf import settings
    from django.core.management import call_command

    from listings.management.commands.clip_demo import Command

    served = {}
    with mock.patch.object(Command, "prepare", lambda self, **kwargs: served.update(settings.CLIPCHECK)):
        call_command("clip_demo", "--no-serve", stdout=io.StringIO())
    assert served, "clip_demo no longer prepares its server in Command.prepare"
    return served
