import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from clipcheck.checks import check_clipcheck_settings
from clipcheck.settings import clip_settings


def ids_for(settings, **overrides):
    settings.CLIPCHECK = {**settings.CLIPCHECK, **overrides}
    return [message.id for message in check_clipcheck_settings()]


def test_default_configuration_passes(settings):
    assert ids_for(settings) == []


@pytest.mark.parametrize(
    ("overrides", "expected_id"),
    [
        ({"THRESHOLDD": 0.3}, "clipcheck.E001"),
        ({"DEVICE": "tpu"}, "clipcheck.E002"),
        ({"DEVICE": "cuda:x"}, "clipcheck.E002"),
        ({"THRESHOLD": 1.5}, "clipcheck.E003"),
        ({"THRESHOLD": -0.1}, "clipcheck.E003"),
        ({"THRESHOLD": "abc"}, "clipcheck.E003"),
        ({"THRESHOLD": float("nan")}, "clipcheck.E003"),
        ({"BATCH_SIZE": 0}, "clipcheck.E004"),
        ({"BATCH_SIZE": "32x"}, "clipcheck.E004"),
        ({"QUALITY_BANDS": {"good": 0.3}}, "clipcheck.E005"),
        ({"CONFIDENCE_MARGINS": {"HIGH": 0.01, "MEDIUM": 0.05}}, "clipcheck.E006"),
        ({"CATEGORIES": []}, "clipcheck.E007"),
        ({"PROMPT_TEMPLATE": "a photo"}, "clipcheck.E008"),
        ({"ALLOWED_IMAGE_FORMATS": ["JPEG", "EPS"]}, "clipcheck.E009"),
        ({"DTYPE": "int8"}, "clipcheck.E010"),
        ({"MAX_QUEUE": 0}, "clipcheck.E004"),
        ({"BATCH_WAIT_MS": -1}, "clipcheck.E014"),
        ({"INFERENCE_TIMEOUT_SECONDS": "soon"}, "clipcheck.E014"),
        ({"BATCH_ROOT": "/nonexistent/batch/root"}, "clipcheck.W001"),
        ({"CONCURRENT_ENCODERS": "yes"}, "clipcheck.E019"),
        ({"RUNTIME_CACHE_DIR": " "}, "clipcheck.E017"),
        ({"DECODE_MEMORY_BUDGET_BYTES": 0}, "clipcheck.E004"),
        ({"DECODE_MEMORY_BUDGET_BYTES": "512MB"}, "clipcheck.E004"),
        ({"DECODE_MEMORY_BUDGET_BYTES": 64 * 1024 * 1024}, "clipcheck.W004"),
        ({"DECODE_WAIT_MS": -1}, "clipcheck.E014"),
        ({"ANALYSIS_RETENTION_DAYS": 0}, "clipcheck.E004"),
        ({"ANALYSIS_RETENTION_DAYS": "30"}, "clipcheck.E004"),
        ({"FAILED_AUTH_RATE": "20 per minute"}, "clipcheck.E018"),
        ({"FAILED_LOGIN_RATE_PER_USERNAME": "ten an hour"}, "clipcheck.E018"),
        ({"FAILED_LOGIN_RATE_PER_ADDRESS": 30}, "clipcheck.E018"),
    ],
)
def test_bad_settings_are_reported_with_stable_ids(settings, overrides, expected_id):
    assert expected_id in ids_for(settings, **overrides)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "CUDA:0"])
def test_valid_devices_pass(settings, device):
    assert "clipcheck.E002" not in ids_for(settings, DEVICE=device)


def test_check_command_fails_on_bad_threshold(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 2}
    with pytest.raises(SystemCheckError, match="clipcheck.E003"):
        call_command("check")


def test_settings_object_reloads_when_overridden(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 0.31}
    assert clip_settings.THRESHOLD == 0.31
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 0.12}
    assert clip_settings.THRESHOLD == 0.12


def test_unset_keys_fall_back_to_defaults(settings):
    settings.CLIPCHECK = {}
    assert clip_settings.THRESHOLD == 0.25
    assert clip_settings.MODEL == "openai/clip-vit-base-patch32"
    assert clip_settings.BATCH_SIZE == 32
    assert len(clip_settings.CATEGORIES) >= 40


def test_unknown_attribute_is_an_error():
    with pytest.raises(AttributeError):
        clip_settings.NOT_A_SETTING


@pytest.mark.parametrize(
    ("overrides", "expected_id"),
    [
        ({"ATTRIBUTES": ["red", "blue"]}, "clipcheck.E030"),
        ({"ATTRIBUTES": {"colour": ["red"]}}, "clipcheck.E030"),
        ({"ATTRIBUTES": {"colour": ["red", "Red"]}}, "clipcheck.E030"),
        ({"ATTRIBUTES": {"colour": ["red", " "]}}, "clipcheck.E030"),
        ({"ATTRIBUTES": {"colour": [["rot", "rote"], ["blau", "Rote"]]}}, "clipcheck.E030"),  # a form of two values
        ({"ATTRIBUTES": {"colour": [[], "blue"]}}, "clipcheck.E030"),
        ({"ATTRIBUTES_BY_LANGUAGE": {"en": {"colour": ["red", "blue"]}}}, "clipcheck.E032"),  # that is ATTRIBUTES
        ({"ATTRIBUTES_BY_LANGUAGE": {"German": {"colour": ["rot", "blau"]}}}, "clipcheck.E032"),
        ({"ATTRIBUTES_BY_LANGUAGE": {"de": {"colour": ["rot"]}}}, "clipcheck.E032"),
        ({"ATTRIBUTES_BY_LANGUAGE": [["de", {}]]}, "clipcheck.E032"),
        ({"ATTRIBUTE_MARGIN": -0.1}, "clipcheck.E031"),
        ({"QUALITY_BANDS_THRESHOLD": 0}, "clipcheck.E031"),
        ({"MAX_PASSAGES": 0}, "clipcheck.E004"),
        ({"MAX_REWRITES": "many"}, "clipcheck.E004"),
    ],
)
def test_bad_verdict_settings_are_reported(settings, overrides, expected_id):
    from clipcheck.checks import check_verdict_settings

    settings.CLIPCHECK = {**settings.CLIPCHECK, **overrides}
    ids = [message.id for message in check_clipcheck_settings() + check_verdict_settings()]
    assert expected_id in ids


def test_values_with_forms_and_other_languages_vocabularies_are_valid(settings):
    from clipcheck.checks import check_verdict_settings

    settings.CLIPCHECK = {
        **settings.CLIPCHECK, "ATTRIBUTES": {"colour": ["red", ["blue", "blues"]]},
        "ATTRIBUTES_BY_LANGUAGE": {"it": {"colore": [["rosso", "rossa"], ["blu", "blu"]]}},
    }
    assert check_verdict_settings() == []


def test_default_verdict_settings_pass_and_hold_the_known_answer_colours(settings):
    from clipcheck.checks import check_verdict_settings
    from knownanswer.domain import COLOURS

    assert check_verdict_settings() == []
    assert set(COLOURS) <= set(clip_settings.ATTRIBUTES["colour"])
