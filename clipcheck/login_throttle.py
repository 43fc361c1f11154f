"""Failed admin logins, throttled per username and per client address.

Django's admin accepts any number of wrong passwords. ``ThrottledAdminLoginForm``
(the project sets it as ``admin.site.login_form``) counts failed logins in
the throttle cache, in fixed windows, once per username
(``CLIPCHECK["FAILED_LOGIN_RATE_PER_USERNAME"]``) and once per client address
(``CLIPCHECK["FAILED_LOGIN_RATE_PER_ADDRESS"]``, the address as the API's
throttles see it). Past either limit the login is refused until the window
ends, the right password included (a refusal says nothing about the
password), with a message saying when to retry.

The per-address limit stops one client trying many accounts; the per-username
limit stops many clients trying one account, and is the lower of the two. A
successful login does not reset them: an attacker who owns an account could
otherwise clear their count with it. When the cache is down, logins go
through (logged), as for the API's throttles.
"""

import hashlib
import logging
import math
from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from clipcheck.access import EndpointRateThrottle, parse_rate
from clipcheck.api.authentication import FailureWindow
from clipcheck.settings import clip_settings

logger = logging.getLogger(__name__)

KEY_FORMAT = "clipcheck:login-failures:%(ident)s:%(window)s"


def login_failure_windows(*, request: HttpRequest, username: str) -> list[tuple[int, FailureWindow]]:
    """``[(limit, FailureWindow)]``: the windows a login attempt counts in, its
    username's and its address's (those whose rate is set)."""
    # Hashed: a username is any text, and cache keys are not.
    user_key = hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    address = EndpointRateThrottle().get_ident(request)
    windows = []
    for rate, ident in (
        (clip_settings.FAILED_LOGIN_RATE_PER_USERNAME, f"user-{user_key}"),
        (clip_settings.FAILED_LOGIN_RATE_PER_ADDRESS, f"ip-{address}"),
    ):
        if rate:
            limit, period = parse_rate(rate)
            windows.append((limit, FailureWindow(KEY_FORMAT, ident, period)))
    return windows


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": (
            "Too many failed logins for this account or from this address. "
            "Try again in %(minutes)d minute(s)."
        ),
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        windows = login_failure_windows(request=self.request, username=username) if self.request else []
        full = [window for limit, window in windows if window.failures() >= limit]
        if full:
            seconds = max(window.seconds_left() for window in full)
            logger.warning("Admin login refused for %r: too many failed logins (retry in %d s).", username, seconds)
            raise ValidationError(
                self.error_messages["throttled"], code="throttled", params={"minutes": math.ceil(seconds / 60)}
            )
        try:
            return super().clean()
        except ValidationError:
            for _, window in windows:
                window.count_failure()
            raise
