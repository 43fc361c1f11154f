"""Per-endpoint access policies: who may call a view and how often.

A view names its policy with ``access_scope = "analyze"``; the policy is the
scope's entry in ``CLIPCHECK["ACCESS"]`` (defaults in ``clipcheck.settings``; a
project adds the scopes of its own views)::

    {"anonymous": True, "permissions": [], "rate": "60/minute", "user_rate": None,
     "cost_rate": "180/minute", "user_cost_rate": None}

``EndpointPolicyPermission`` and ``EndpointRateThrottle`` enforce it; the
cost rate counts rows of model work (``clipcheck.costs``) instead of
requests, charged by the view once the request is planned (``cost_charge``). They are
the project's DRF defaults, so a new view only needs an ``access_scope`` and
a table entry. A routed view guarded by them without a policy is reported
by the system check ``clipcheck.E012``; at run time the permission refuses
it (fail closed) and the throttle leaves it alone.
"""

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from rest_framework.exceptions import Throttled
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

from clipcheck.settings import DEFAULTS, clip_settings
from clipcheck.settings_table import parse_rate

if TYPE_CHECKING:  # rest_framework.views imports the API's authentication, which imports this module
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

POLICY_KEYS = ("anonymous", "permissions", "rate", "user_rate", "cost_rate", "user_cost_rate")
# A scope that the defaults don't know starts closed: authenticated, no limit.
BASE_POLICY = {
    "anonymous": False, "permissions": [], "rate": None, "user_rate": None, "cost_rate": None, "user_cost_rate": None,
}


# A scope's policy: the POLICY_KEYS and their values.
Policy = dict[str, Any]


def access_table() -> dict[str, Policy]:
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


def view_policy(view: "APIView") -> Policy | None:
    """The policy of the view's ``access_scope``; None when the view has no
    scope or the scope no policy (a configuration error, clipcheck.E012)."""
    scope = getattr(view, "access_scope", None)
    return access_table().get(scope) if scope else None


class EndpointPolicyPermission(BasePermission):
    """Anonymous clients where the policy allows them; otherwise an
    authenticated user holding every listed permission.

    Returning False for a client without credentials makes DRF answer 401
    with ``WWW-Authenticate`` (from the first authentication class); for an
    authenticated user it answers 403.
    """

    message = "You do not have permission to call this endpoint."

    def has_permission(self, request: "Request", view: "APIView") -> bool:
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

    A client that has spent its cost rate (rows of model work, charged by
    ``cost_charge``) in the current window is refused here too, before its
    request is parsed.

    If the cache cannot be reached the request is let through and logged:
    an outage of the counter store must not take the API down.
    """

    cache_format = "clipcheck:throttle:%(scope)s:%(ident)s:%(window)s"

    def __init__(self) -> None:
        # SimpleRateThrottle reads a class-level rate; ours depends on the view.
        self.wait_seconds: int | None = None

    def allow_request(self, request: "Request", view: "APIView") -> bool:
        policy = view_policy(view)
        if policy is None:  # not opted in; the permission and clipcheck.E012 report it
            return True
        authenticated = bool(request.user and request.user.is_authenticated)
        rate = (policy["user_rate"] or policy["rate"]) if authenticated else policy["rate"]
        ident = client_ident(self, request)
        if rate and not self._within(rate, key_format=self.cache_format, scope=view.access_scope, ident=ident):
            return False
        cost_rate = cost_rate_of(policy, authenticated=authenticated)
        if cost_rate and not self._within(
            cost_rate, key_format=COST_KEY_FORMAT, scope=view.access_scope, ident=ident, increment=False,
        ):
            return False
        return True

    def _within(self, rate: str, *, key_format: str, scope: str, ident: str, increment: bool = True) -> bool:
        """Whether the client is within ``rate`` in this window (counting this request when ``increment``)."""
        limit, period = parse_rate(rate)
        now = self.timer()  # SimpleRateThrottle.timer: time.time
        window = int(now // period)
        key = key_format % {"scope": scope, "ident": ident, "window": window}
        try:
            count = self._count(key, period) if increment else fixed_window_count(key, period, increment=False)
        except Exception:
            logger.warning("Throttle cache unavailable; request %s not counted.", key, exc_info=True)
            return True
        if count is None or (count <= limit if increment else count < limit):
            return True
        self.wait_seconds = _seconds_left(window, period, now)
        return False

    @staticmethod
    def _count(key: str, period: int) -> int:
        return fixed_window_count(key, period)

    def wait(self) -> int | None:
        return self.wait_seconds


COST_KEY_FORMAT = "clipcheck:cost:%(scope)s:%(ident)s:%(window)s"


def client_ident(throttle: SimpleRateThrottle, request: "Request") -> str:
    """Who a request is counted for: its user, else its address."""
    if request.user and request.user.is_authenticated:
        return f"user-{request.user.pk}"
    return f"ip-{throttle.get_ident(request)}"


def cost_rate_of(policy: Policy, *, authenticated: bool) -> str | None:
    return (policy["user_cost_rate"] or policy["cost_rate"]) if authenticated else policy["cost_rate"]


def _seconds_left(window: int, period: int, now: float) -> int:
    return max(1, int((window + 1) * period - now + 0.999))


def cost_charge(request: "Request", view: "APIView") -> Callable[[int], None] | None:
    """``charge(rows)`` for a view's request: debits the rows of model work it
    is about to cost from its client's cost rate (``cost_rate``, or
    ``user_cost_rate`` for users) in the current window; None when its scope
    has no cost rate for this client.

    A request that finds the window's allowance spent is refused with 429
    ``throttled`` before any model work, its rows refunded; one that finds
    some left may take more than is left (no request is too big to ever be
    served), and the client waits for the next window.
    """
    policy = view_policy(view)
    if policy is None:
        return None
    authenticated = bool(request.user and request.user.is_authenticated)
    rate = cost_rate_of(policy, authenticated=authenticated)
    if not rate:
        return None
    limit, period = parse_rate(rate)
    throttle = EndpointRateThrottle()
    ident = client_ident(throttle, request)

    def charge(rows: int) -> None:
        now = throttle.timer()
        window = int(now // period)
        key = COST_KEY_FORMAT % {"scope": view.access_scope, "ident": ident, "window": window}
        try:
            spent = fixed_window_count(key, period, amount=rows)
        except Exception:
            logger.warning("Throttle cache unavailable; %s rows of %s not charged.", rows, key, exc_info=True)
            return
        if spent - rows >= limit:
            fixed_window_count(key, period, amount=-rows)
            raise Throttled(wait=_seconds_left(window, period, now))

    return charge


def fixed_window_count(key: str, period: int, *, increment: bool = True, amount: int = 1) -> int:
    """The counter ``key`` of a fixed window of ``period`` seconds in the
    throttle cache, advanced by ``amount`` (one) first unless ``increment`` is false."""
    cache = caches[clip_settings.THROTTLE_CACHE]
    if not increment:
        return int(cache.get(key) or 0)
    # add() is a no-op when the window's counter exists; the counter
    # outlives its window by a little so a slow incr never resurrects it.
    cache.add(key, 0, timeout=period + 5)
    try:
        return cache.incr(key, amount)
    except ValueError:  # evicted between add and incr
        cache.add(key, max(amount, 0), timeout=period + 5)
        return max(amount, 0)
