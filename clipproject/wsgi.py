"""WSGI entry point. Importing it marks the process as a server, so the CLIP
model loads here (once per worker, after gunicorn forks) before the first
request."""

import os

from django.core.wsgi import get_wsgi_application

from clipcheck.apps import freeze_startup_objects, mark_serving_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clipproject.settings")
mark_serving_process()
application = get_wsgi_application()
# After the model has loaded (above): see freeze_startup_objects.
freeze_startup_objects()
