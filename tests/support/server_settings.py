"""Settings of gunicorn servers started by the tests: the project's settings,
plus fault injection, a worker id header, and access policies from the
environment (``CLIPCHECK_TEST_ACCESS``, JSON)."""

import json
import os

from clipproject.settings import *  # noqa: F403
from clipproject.settings import CLIPCHECK, INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "tests.support.faults.FaultInjectionConfig"]
MIDDLEWARE = ["tests.support.faults.WorkerPidMiddleware", *MIDDLEWARE]
# Merged into the project's policies, which carry its own views' scopes (upload).
CLIPCHECK = {**CLIPCHECK, "ACCESS": {**CLIPCHECK["ACCESS"], **json.loads(os.environ.get("CLIPCHECK_TEST_ACCESS", "{}"))}}
