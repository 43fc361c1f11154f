"""The known-answer CLIP (tests/fixtures/known_answer_clip) and its calibrated threshold."""

import knownanswer
from knownanswer.runtime import int8_build, int8_guard_sample  # noqa: F401  (the tests' names for them)

KNOWN_ANSWER_MODEL = knownanswer.CHECKPOINT
METRICS = knownanswer.checkpoint_metrics()
# Calibrated on the model's held-out set by scripts/train_known_answer.py.
THRESHOLD = knownanswer.calibrated_threshold()


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
