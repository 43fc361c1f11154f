"""Changing the ``CLIPCHECK`` settings in a test."""


def set_clip_settings(settings, **overrides):
    """Override some ``CLIPCHECK`` keys through pytest-django's ``settings`` (the rest stay)."""
    settings.CLIPCHECK = {**settings.CLIPCHECK, **overrides}
