"""Per-endpoint access policies: who may call a view and how often.

A view names its policy with ``access_scope = "analyze"``; the policy is the
scope's entry in ``CLIPCHECK["ACCESS"]`` (defaults in ``clipcheck.settings``; a
project adds the scopes of its own views)::

    {"anonymous": True, "permissions": [], "rate": "60/minute", "user_rate": None}

``EndpointPolicyPermission`` and ``EndpointRateThrottle`` enforce it. They are
the project's DRF defaults, so a new view only needs an ``access_scope`` and
a table entry. A routed view guarded by them without a policy is reported
by the system check ``clipcheck.E012``; at run time the permission refuses
it (fail closed) and the throttle leaves it alone.
"""

import logging

from django.core.cache import caches
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

from clipcheck.settings import DEFAULTS, clip_settings

logger = logging.getLogger(__name__)

POLICY_KEYS = ("anonymous", "permissions", "rate", "user_rate")
# A scope that the defaults don't know starts closed: authenticated, no limit.
BASE_POLICY = {"anonymous": False, "permissions": [], "rate": None, "user_rate": None}
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def access_table():
    """The effective policy of every scope: defaults merged with the project's."""
    table = {}
    configured = clip_settings.ACCESS if isinstance(clip_settings.ACCESS, dict) else {}
    for scope in dict.fromkeys([*DEFAULTS["ACCESS"], *configured]):
        overrides = configured.get(scope)
        table[scope] = {
            **BASE_POLICY,
            **DEFAULTS["ACCESS"].get(scope, {}),
            **(overrides if isinstance(overrides, dict) else {}),
        }
    return table


def view_policy(view):
    """The policy of the view's ``access_scope``; None when the view has no
    scope or the scope no policy (a configuration error, clipcheck.E012)."""
    scope = getattr(view, "access_scope", None)
    return access_table().get(scope) if scope else None


def parse_rate(rate):
    """``"60/minute"`` → ``(60, 60)``: requests allowed per period in seconds.

    Raises ``ValueError`` for anything else (reported by clipcheck.E011).
    """
    count, _, period = str(rate).partition("/")
    period = period.strip().lower()
    if not period or period[0] not in PERIODS or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"{rate!r} is not a rate like '60/minute'.")
    return int(count), PERIODS[period[0]]


class EndpointPolicyPermission(BasePermission):
    """Anonymous clients where the policy allows them; otherwise an
    authenticated user holding every listed permission.

    Returning False for a client without credentials makes DRF answer 401
    with ``WWW-Authenticate`` (from the first authentication class); for an
    authenticated user it answers 403.
    """

    message = "You do not have permission to call this endpoint."

    def has_permission(self, request, view):
        policy = view_policy(view)
        if policy is None:  # fail closed
            logger.error("%s has no access policy (access_scope %r); refusing.",
                         view.__class__.__name__, getattr(view, "access_scope", None))
            return False
        user = request.user
        authenticated = bool(user and user.is_authenticated)
        if not authenticated:
            return bool(policy["anonymous"]) and not policy["permissions"]
        return user.has_perms(policy["permissions"])


class EndpointRateThrottle(SimpleRateThrottle):
    """Fixed-window request counting per scope and client, in a shared cache.

    DRF's own throttles keep a history list that each process reads and
    writes back, so concurrent workers overwrite each other's counts. Here a
    window is one counter advanced with the cache's atomic ``incr``
    (Redis INCR), so limits hold across gunicorn workers and hosts.
    Clients are users when authenticated, else IP addresses
    (``REST_FRAMEWORK["NUM_PROXIES"]`` decides how X-Forwarded-For counts).

    If the cache cannot be reached the request is let through and logged:
    an outage of the counter store must not take the API down.
    """

    cache_format = "clipcheck:throttle:%(scope)s:%(ident)s:%(window)s"

    def __init__(self):
        # SimpleRateThrottle reads a class-level rate; ours depends on the view.
        self.wait_seconds = None

    def allow_request(self, request, view):
        policy = view_policy(view)
        if policy is None:  # not opted in; the permission and clipcheck.E012 report it
            return True
        authenticated = bool(request.user and request.user.is_authenticated)
        rate = (policy["user_rate"] or policy["rate"]) if authenticated else policy["rate"]
        if not rate:
            return True
        limit, period = parse_rate(rate)
        now = self.timer()  # SimpleRateThrottle.timer: time.time
        window = int(now // period)
        ident = f"user-{request.user.pk}" if authenticated else f"ip-{self.get_ident(request)}"
        key = self.cache_format % {"scope": view.access_scope, "ident": ident, "window": window}
        try:
            count = self._count(key, period)
        except Exception:
            logger.warning("Throttle cache unavailable; request %s not counted.", key, exc_info=True)
            return True
        if count is None or count <= limit:
            return True
        self.wait_seconds = max(1, int((window + 1) * period - now + 0.999))
        return False

    @staticmethod
    def _count(key, period):
        return fixed_window_count(key, period)

    def wait(self):
        return self.wait_seconds


def fixed_window_count(key, period, *, increment=True):
    """The counter ``key`` of a fixed window of ``period`` seconds in the
    throttle cache, advanced by one first unless ``increment`` is false."""
    cache = caches[clip_settings.THROTTLE_CACHE]
    if not increment:
        return int(cache.get(key) or 0)
    # add() is a no-op when the window's counter exists; the counter
    # outlives its window by a little so a slow incr never resurrects it.
    cache.add(key, 0, timeout=period + 5)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.add(key, 1, timeout=period + 5)
        return 1
