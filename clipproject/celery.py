"""The Celery app of the project: ``celery -A clipproject worker -Q clip``.

Configured from Django's settings (the ``CELERY_*`` names in
``clipproject/settings.py``). The CLIP model is not loaded when a worker
starts: each worker process loads it on its first task and keeps it.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clipproject.settings")

app = Celery("clipproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
