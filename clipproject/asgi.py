"""ASGI entry point; like wsgi.py it loads the CLIP model before serving."""

import os

from django.core.asgi import get_asgi_application

from clipcheck.apps import freeze_startup_objects, mark_serving_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clipproject.settings")
mark_serving_process()
application = get_asgi_application()
# After the model has loaded (above): see freeze_startup_objects.
freeze_startup_objects()
