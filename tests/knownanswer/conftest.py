"""The known-answer CLIP (tests/fixtures/known_answer_clip), loaded the
production way: a model that really knows its generated domain of coloured
shapes, so the tests can assert answers, not just plumbing."""

import pytest

from clipcheck.engine import reset_engine
from tests.support.known_answer import KNOWN_ANSWER_MODEL, THRESHOLD, int8_build
from tests.support.runtime import RUNTIME_CACHE_DIR


@pytest.fixture
def runtime(request):
    """The runtime under test: "torch" unless a test is parametrised over
    runtimes (``@pytest.mark.parametrize("runtime", EXACT_RUNTIMES, indirect=True)``,
    ``EXACT_RUNTIMES`` or ``RUNTIMES`` from ``tests.support.runtime``). For
    ``openvino-int8`` the model's int8 build must exist and have passed its guard."""
    name = getattr(request, "param", "torch")
    if name == "openvino-int8":
        guard = int8_build(RUNTIME_CACHE_DIR)
        assert guard["passed"], f"the known-answer model's int8 build failed its guard: {guard}"
    return name


@pytest.fixture(autouse=True)
def known_answer_model(settings, batch_root, runtime):
    settings.CLIPCHECK = {
        "MODEL": str(KNOWN_ANSWER_MODEL),
        "DEVICE": "cpu",
        "RUNTIME": runtime,
        "RUNTIME_CACHE_DIR": RUNTIME_CACHE_DIR,
        "THRESHOLD": THRESHOLD,
        "BATCH_ROOT": str(batch_root),
        "PROMPT_TEMPLATE": "a photo of a {}",
        # Hundreds of requests per test: no rate limits here.
        "ACCESS": {
            **settings.CLIPCHECK.get("ACCESS", {}),
            **{scope: {"rate": None, "cost_rate": None} for scope in ("analyze", "classify", "analyze-batch", "upload")},
        },
    }
    reset_engine()
    yield
    reset_engine()


@pytest.fixture
def float32(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "DTYPE": "float32"}
