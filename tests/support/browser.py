"""The system's Chromium for the browser tests (driven by Playwright, never downloaded)."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def require_chromium(path=CHROMIUM, environ=os.environ):
    """Fail under CI (env CI set) and skip elsewhere when Chromium is missing."""
    if not Path(path).exists():
        message = f"Browser tests need Chromium at {path}: apt-get install -y chromium."
        if environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
