"""The known-answer CLIP (tests/fixtures/known_answer_clip) and its calibrated threshold."""

import knownanswer

KNOWN_ANSWER_MODEL = knownanswer.CHECKPOINT
METRICS = knownanswer.checkpoint_metrics()
# Calibrated on the model's held-out set by scripts/train_known_answer.py.
THRESHOLD = knownanswer.calibrated_threshold()


def int8_guard_sample():
    """The int8 guard's sample: the model's held-out pictures, each with its
    caption and with another's."""
    from clipcheck.engine.calibration_set import calibration_set_build
    from knownanswer import domain

    items = domain.heldout_items(per_pair=2)
    return calibration_set_build(
        checkpoint=str(KNOWN_ANSWER_MODEL),
        images=[domain.render(shape, colour, seed=seed, size=size) for shape, colour, seed, size in items],
        texts=[domain.caption(shape, colour, seed % len(domain.FULL_TEMPLATES)) for shape, colour, seed, _ in items],
        source="known-answer held-out", threshold=THRESHOLD,
    )


def int8_build(cache_dir):
    """The known-answer model's int8 build (calibrated on the shipped generic
    set, guarded on ``int8_guard_sample``), made once per cache; its guard record."""
    from clipcheck.engine import openvino_runtime

    return openvino_runtime.runtime_build(
        checkpoint=str(KNOWN_ANSWER_MODEL), cache_dir=cache_dir, sample=int8_guard_sample(), threshold=THRESHOLD
    )


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
