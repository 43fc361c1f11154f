"""Authentication classes of the API (the project's DRF defaults).

* ``ThrottledTokenAuthentication``: DRF's token authentication with failed
  attempts counted per client; past ``CLIPCHECK["FAILED_AUTH_RATE"]`` every
  token request of that client gets 429 ``throttled`` (with Retry-After)
  until the window ends, so tokens cannot be guessed at request speed.
* ``CsrfSessionAuthentication``: DRF's session authentication whose CSRF
  refusals carry the documented code ``csrf_failed``.
"""

import logging
import time

from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication, get_authorization_header

from clipcheck.access import EndpointRateThrottle, fixed_window_count, parse_rate
from clipcheck.settings import clip_settings

logger = logging.getLogger(__name__)


class CsrfFailed(exceptions.PermissionDenied):
    default_code = "csrf_failed"


class CsrfSessionAuthentication(SessionAuthentication):
    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            raise CsrfFailed(exc.detail) from None


class ThrottledTokenAuthentication(TokenAuthentication):
    cache_format = "clipcheck:auth-failures:%(ident)s:%(window)s"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None  # no token offered: nothing to count
        rate = clip_settings.FAILED_AUTH_RATE
        if not rate:
            return super().authenticate(request)
        limit, period = parse_rate(rate)
        window = FailureWindow(self.cache_format, f"ip-{EndpointRateThrottle().get_ident(request)}", period)
        if window.failures() >= limit:
            raise exceptions.Throttled(
                wait=window.seconds_left(), detail="Too many failed authentication attempts; retry later."
            )
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            window.count_failure()
            raise


# The window clock (tests hold it still so a run never straddles two windows).
clock = time.time


class FailureWindow:
    """Failed attempts of one client in the current fixed window, in the throttle cache."""

    def __init__(self, key_format, ident, period):
        self.now = clock()
        self.period = period
        self.window = int(self.now // period)
        self.key = key_format % {"ident": ident, "window": self.window}

    def failures(self):
        try:
            return fixed_window_count(self.key, self.period, increment=False)
        except Exception:  # the counter store is down: let the attempt through
            logger.warning("Throttle cache unavailable; failed-authentication count not read.", exc_info=True)
            return 0

    def count_failure(self):
        try:
            fixed_window_count(self.key, self.period, increment=True)
        except Exception:
            logger.warning("Throttle cache unavailable; failed authentication not counted.", exc_info=True)

    def seconds_left(self):
        return max(1, int((self.window + 1) * self.period - self.now + 0.999))
