"""The known-answer CLIP (tests/fixtures/known_answer_clip), loaded the
production way: a model that really knows its generated domain of coloured
shapes, so the tests can assert answers, not just plumbing."""

import json
from pathlib import Path

import pytest

from clipcheck.engine import reset_engine

KNOWN_ANSWER_MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "known_answer_clip"
METRICS = json.loads((KNOWN_ANSWER_MODEL / "metrics.json").read_text())
# Calibrated on the model's held-out set by scripts/train_known_answer.py.
THRESHOLD = METRICS["threshold"]["threshold"]


@pytest.fixture(autouse=True)
def known_answer_model(settings, batch_root):
    settings.CLIPCHECK = {
        "MODEL": str(KNOWN_ANSWER_MODEL),
        "DEVICE": "cpu",
        "THRESHOLD": THRESHOLD,
        "BATCH_ROOT": str(batch_root),
        "PROMPT_TEMPLATE": "a photo of a {}",
        # Hundreds of requests per test: no rate limits here.
        "ACCESS": {scope: {"rate": None} for scope in ("analyze", "classify", "analyze-batch", "upload")},
    }
    reset_engine()
    yield
    reset_engine()


@pytest.fixture
def float32(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "DTYPE": "float32"}
