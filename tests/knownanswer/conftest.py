"""The known-answer CLIP (tests/fixtures/known_answer_clip), loaded the
production way: a model that really knows its generated domain of coloured
shapes, so the tests can assert answers, not just plumbing."""

import pytest

from clipcheck.engine import reset_engine
from tests.support.known_answer import KNOWN_ANSWER_MODEL, THRESHOLD


@pytest.fixture(autouse=True)
def known_answer_model(settings, batch_root):
    settings.CLIPCHECK = {
        "MODEL": str(KNOWN_ANSWER_MODEL),
        "DEVICE": "cpu",
        "THRESHOLD": THRESHOLD,
        "BATCH_ROOT": str(batch_root),
        "PROMPT_TEMPLATE": "a photo of a {}",
        # Hundreds of requests per test: no rate limits here.
        "ACCESS": {
            **settings.CLIPCHECK.get("ACCESS", {}), **{scope: {"rate": None} for scope in ("analyze", "classify", "analyze-batch", "upload")}
        },
    }
    reset_engine()
    yield
    reset_engine()


@pytest.fixture
def float32(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "DTYPE": "float32"}
