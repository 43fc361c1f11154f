import gc
import logging
import os
import sys

from django.apps import AppConfig

logger = logging.getLogger(__name__)

_serving_process = False

# Set by gunicorn.conf.py in the arbiter: torch must never be initialised
# there (forked workers would inherit its thread pools and CUDA state).
GUNICORN_ARBITER_PID_ENV = "CLIPCHECK_GUNICORN_ARBITER_PID"


def mark_serving_process():
    """Called by the WSGI/ASGI entry points: this process will answer requests."""
    global _serving_process
    _serving_process = True


def freeze_startup_objects():
    """Exempt everything loaded at start-up from garbage collection.

    A serving process holds some 400,000 long-lived objects (Django, torch,
    transformers, the model). CPython runs a full collection only when the
    objects promoted since the last one reach a quarter of that count, so
    the reference cycles every DRF request leaves behind (request <-> view
    <-> parser context) pile up between collections: tens of MB per minute
    under load. Frozen start-up objects no longer count, full collections
    happen often and stay cheap, and memory stays flat.
    """
    gc.collect()
    gc.freeze()
    # Resets the collector's notion of "long-lived" to what is left.
    gc.collect()


def is_serving_process(argv=None, environ=None):
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if environ.get(GUNICORN_ARBITER_PID_ENV) == str(os.getpid()):
        return False
    if _serving_process:
        return True
    # runserver: the autoreloader's child serves; the watching parent doesn't.
    if argv[1:2] == ["runserver"]:
        return environ.get("RUN_MAIN") == "true" or "--noreload" in argv
    return False


class ClipcheckConfig(AppConfig):
    name = "clipcheck"
    verbose_name = "CLIP check"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_migrate, post_save

        from clipcheck import (
            checks,  # noqa: F401  (registers the system checks)
            vectors,
        )
        from clipcheck.models import ImageEmbedding
        from clipcheck.settings import clip_settings

        # The vector table follows the stored embeddings through loaddata, flush and migrate.
        post_save.connect(vectors.vectors_loaded, sender=ImageEmbedding, dispatch_uid="clipcheck.vectors_loaded")
        post_migrate.connect(vectors.vectors_after_migrate, sender=self, dispatch_uid="clipcheck.vectors_after_migrate")

        # Only serving processes pay for the model, and they pay before their
        # first request; migrate, check, shell and test collection never do.
        if clip_settings.LOAD_ON_STARTUP and is_serving_process():
            from clipcheck.engine import warm_up
            from clipcheck.services.analyses import vocabulary_warm_up

            warm_up()
            vocabulary_warm_up()
