"""Start-up of the entry points (manage.py, gunicorn): settings first.

A settings module that cannot load (production settings without
DJANGO_SECRET_KEY, say) ends the process with its message on one line,
instead of a traceback through Django's internals, or a gunicorn worker
that fails to boot over and over.
"""

import os
import sys

from django.core.exceptions import ImproperlyConfigured


def settings_or_exit(default_module="clipproject.settings"):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", default_module)
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # imports the settings module
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Error: {exc}\n")
        raise SystemExit(1) from None
