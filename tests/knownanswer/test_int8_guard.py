"""The int8 runtime's guard on the known-answer model: int8 scores against
float32 on held-out pictures with right and wrong captions, and the service
serves int8 only where the guard passed."""

import pytest
from rest_framework.test import APIClient

from clipcheck.engine import engine_status, get_engine, openvino_runtime
from clipcheck.engine.calibration_set import calibration_set_build
from knownanswer import domain
from tests.support.known_answer import KNOWN_ANSWER_MODEL, THRESHOLD
from tests.support.runtime import RUNTIME_CACHE_DIR

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def guard():
    """Calibrated on the shipped generic set (no catalogue), checked on the
    model's held-out pictures: each with its caption and with another's."""
    items = domain.heldout_items(per_pair=2)
    sample = calibration_set_build(
        checkpoint=str(KNOWN_ANSWER_MODEL),
        images=[domain.render(shape, colour, seed=seed, size=size) for shape, colour, seed, size in items],
        texts=[domain.caption(shape, colour, seed % len(domain.FULL_TEMPLATES)) for shape, colour, seed, _ in items],
        source="known-answer held-out", threshold=THRESHOLD,
    )
    return openvino_runtime.build_int8(
        checkpoint=str(KNOWN_ANSWER_MODEL), cache_dir=RUNTIME_CACHE_DIR, sample=sample, threshold=THRESHOLD
    )


def test_the_guard_measures_int8_against_float32_on_known_answers(guard, capsys):
    with capsys.disabled():
        print(f"\n[int8 guard, known-answer model] verdict agreement {guard['agreement']:.2%} over "
              f"{guard['pairs']} pairs, max score gap {guard['max_score_gap']:.4f}, passed {guard['passed']}")
    assert guard["pairs"] == 2 * len(domain.heldout_items(per_pair=2))
    assert guard["threshold"] == THRESHOLD
    assert guard["passed"] == (guard["agreement"] >= 0.995 and guard["max_score_gap"] <= 0.01)


def test_the_service_serves_int8_only_where_the_guard_passed(guard, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "RUNTIME": "auto"}
    assert get_engine().runtime_name == ("openvino-int8" if guard["passed"] else "openvino")

    from clipcheck.engine import reset_engine

    reset_engine()
    settings.CLIPCHECK = {**settings.CLIPCHECK, "RUNTIME": "openvino-int8"}
    health = APIClient().get("/clip/health")
    if guard["passed"]:
        assert (health.status_code, health.json()["runtime"]) == (200, "openvino-int8")
    else:
        assert health.status_code == 503
        # The reason is for the log and staff; clients get the generic message.
        assert "failed its guard" in engine_status()["reason"]
