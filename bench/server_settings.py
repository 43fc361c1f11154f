"""Settings of the benchmark's gunicorn: the project's, without rate limits
(the benchmark sends hundreds of requests a minute from one address)."""

from clipproject.settings import *  # noqa: F401,F403
from clipproject.settings import CLIPCHECK

# Merged into the project's policies, which carry its own views' scopes (upload).
CLIPCHECK = {
    **CLIPCHECK,
    "ACCESS": {
        **CLIPCHECK["ACCESS"],
        **{scope: {"rate": None, "cost_rate": None} for scope in ("analyze", "classify", "health")},
    },
}
