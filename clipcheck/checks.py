"""System checks for ``settings.CLIPCHECK`` (ids ``clipcheck.E0xx`` / ``W0xx``)."""

import math
import re
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.urls import URLResolver, get_resolver

from clipcheck.settings import clip_settings

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
POSITIVE_INTEGERS = (
    "BATCH_SIZE", "BATCH_MAX_ITEMS", "MAX_UPLOAD_BYTES", "MAX_IMAGE_PIXELS", "MAX_TEXT_LENGTH",
    "MAX_CATEGORIES", "MAX_CATEGORY_LENGTH", "DEFAULT_TOP_K", "MAX_REQUEST_BYTES", "MAX_QUEUE",
    "MAX_PASSAGES", "MAX_REWRITES",
)
# key → (smallest allowed value, whether the bound itself is allowed)
NUMBERS = {
    "QUEUE_TIMEOUT_MS": (0, True),
    "INFERENCE_TIMEOUT_SECONDS": (0, False),
    "LOAD_RETRY_SECONDS": (0, True),
    "MAX_ASPECT_RATIO": (1, True),
    "BATCH_WAIT_MS": (0, True),
    "JPEG_DRAFT_MIN_SIDE": (0, True),
    "CALIBRATION_CACHE_SECONDS": (0, True),
}
KNOWN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_fraction(value):
    return _is_number(value) and 0 <= value <= 1


def unknown_settings_errors(settings_object, *, error_id):
    """An error naming keys of a ``ClipSettings`` dict that its defaults lack."""
    unknown = sorted(set(settings_object.user_settings) - set(settings_object.defaults))
    if not unknown:
        return []
    return [Error(
        f"Unknown {settings_object.setting_name} settings: {', '.join(unknown)}.",
        hint=f"Valid keys: {', '.join(sorted(settings_object.defaults))}.",
        id=error_id,
    )]


@register(Tags.compatibility)
def check_clipcheck_settings(app_configs=None, **kwargs):
    errors = unknown_settings_errors(clip_settings, error_id="clipcheck.E001")
    if not isinstance(clip_settings.DEVICE, str) or not DEVICE_PATTERN.match(clip_settings.DEVICE.strip().lower()):
        errors.append(Error(
            f"CLIPCHECK DEVICE {clip_settings.DEVICE!r} is not valid.",
            hint="Use 'auto', 'cpu', 'cuda' or 'cuda:N'.",
            id="clipcheck.E002",
        ))
    if clip_settings.CLASSIFY_THRESHOLD is not None and not _is_fraction(clip_settings.CLASSIFY_THRESHOLD):
        errors.append(Error(
            f"CLIPCHECK CLASSIFY_THRESHOLD {clip_settings.CLASSIFY_THRESHOLD!r} must be None or a number between 0 and 1.",
            id="clipcheck.E003",
        ))
    if not _is_fraction(clip_settings.THRESHOLD):
        errors.append(Error(
            f"CLIPCHECK THRESHOLD {clip_settings.THRESHOLD!r} must be a number between 0 and 1.",
            id="clipcheck.E003",
        ))
    for key in POSITIVE_INTEGERS:
        value = getattr(clip_settings, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(Error(f"CLIPCHECK {key} {value!r} must be a positive integer.", id="clipcheck.E004"))
    bands = clip_settings.QUALITY_BANDS
    if (
        not isinstance(bands, dict)
        or not bands
        or not all(isinstance(label, str) and _is_fraction(bound) for label, bound in bands.items())
        or 0 not in bands.values()
    ):
        errors.append(Error(
            "CLIPCHECK QUALITY_BANDS must map labels to lower bounds in [0, 1], one of them 0.",
            id="clipcheck.E005",
        ))
    margins = clip_settings.CONFIDENCE_MARGINS
    if (
        not isinstance(margins, dict)
        or set(margins) != {"HIGH", "MEDIUM"}
        or not all(_is_fraction(value) for value in margins.values())
        or margins["MEDIUM"] > margins["HIGH"]
    ):
        errors.append(Error(
            "CLIPCHECK CONFIDENCE_MARGINS must be {'HIGH': x, 'MEDIUM': y} with 0 <= y <= x <= 1.",
            id="clipcheck.E006",
        ))
    categories = clip_settings.CATEGORIES
    if not isinstance(categories, (list, tuple)) or not categories or not all(
        isinstance(category, str) and category.strip() for category in categories
    ):
        errors.append(Error("CLIPCHECK CATEGORIES must be a non-empty list of names.", id="clipcheck.E007"))
    template = clip_settings.PROMPT_TEMPLATE
    if not isinstance(template, str) or template.count("{}") != 1:
        errors.append(Error(
            f"CLIPCHECK PROMPT_TEMPLATE {template!r} must contain exactly one '{{}}'.", id="clipcheck.E008"
        ))
    formats = clip_settings.ALLOWED_IMAGE_FORMATS
    if not isinstance(formats, (list, tuple)) or not formats or not all(
        isinstance(name, str) and name.upper() in KNOWN_FORMATS for name in formats
    ):
        errors.append(Error(
            f"CLIPCHECK ALLOWED_IMAGE_FORMATS {formats!r} must be a non-empty subset of {', '.join(KNOWN_FORMATS)}.",
            id="clipcheck.E009",
        ))
    if str(clip_settings.DTYPE).lower() not in DTYPES:
        errors.append(Error(
            f"CLIPCHECK DTYPE {clip_settings.DTYPE!r} is not valid.", hint=f"Use one of {', '.join(DTYPES)}.",
            id="clipcheck.E010",
        ))
    for key, (bound, inclusive) in NUMBERS.items():
        value = getattr(clip_settings, key)
        if not _is_number(value) or value < bound or (value == bound and not inclusive):
            relation = "at least" if inclusive else "greater than"
            errors.append(Error(f"CLIPCHECK {key} {value!r} must be a number {relation} {bound}.", id="clipcheck.E014"))
    errors.extend(_check_access_table())
    if clip_settings.THROTTLE_CACHE not in settings.CACHES:
        errors.append(Error(
            f"CLIPCHECK THROTTLE_CACHE {clip_settings.THROTTLE_CACHE!r} is not an alias in settings.CACHES.",
            id="clipcheck.E013",
        ))
    token = clip_settings.METRICS_TOKEN
    if token is not None and (not isinstance(token, str) or not token.strip()):
        errors.append(Error("CLIPCHECK METRICS_TOKEN must be None or a non-empty string.", id="clipcheck.E015"))
    request_limit, upload_limit = clip_settings.MAX_REQUEST_BYTES, clip_settings.MAX_UPLOAD_BYTES
    if isinstance(request_limit, int) and isinstance(upload_limit, int) and request_limit < upload_limit:
        errors.append(Warning(
            f"CLIPCHECK MAX_REQUEST_BYTES ({request_limit}) is below MAX_UPLOAD_BYTES ({upload_limit}); "
            "uploads near the file limit are refused as too large requests.",
            id="clipcheck.W002",
        ))
    root = clip_settings.BATCH_ROOT
    if root and not Path(root).is_dir():
        errors.append(Warning(
            f"CLIPCHECK BATCH_ROOT {str(root)!r} is not an existing directory; /clip/analyze-batch will find no files.",
            id="clipcheck.W001",
        ))
    return errors


@register(Tags.compatibility)
def check_verdict_settings(app_configs=None, **kwargs):
    """The settings of the verdict rules (clipcheck.verdicts, docs/verdicts.md)."""
    errors = []
    attributes = clip_settings.ATTRIBUTES
    if not isinstance(attributes, dict) or not all(
        isinstance(name, str) and name.strip()
        and isinstance(values, (list, tuple)) and len(values) >= 2
        and all(isinstance(value, str) and value.strip() for value in values)
        and len({value.strip().lower() for value in values}) == len(values)
        for name, values in attributes.items()
    ):
        errors.append(Error(
            "CLIPCHECK ATTRIBUTES must map attribute names to lists of at least two distinct, non-blank values.",
            hint='e.g. {"colour": ["red", "blue"], "material": ["leather", "canvas"]}',
            id="clipcheck.E030",
        ))
    for key in ("ATTRIBUTE_MARGIN", "QUALITY_BANDS_THRESHOLD"):
        value = getattr(clip_settings, key)
        if not _is_fraction(value) or (key == "QUALITY_BANDS_THRESHOLD" and value in (0, 1)):
            errors.append(Error(f"CLIPCHECK {key} {value!r} must be a number between 0 and 1.", id="clipcheck.E031"))
    return errors


def _check_access_table():
    from clipcheck.access import POLICY_KEYS, parse_rate

    configured = clip_settings.ACCESS
    if not isinstance(configured, dict) or not all(isinstance(policy, dict) for policy in configured.values()):
        return [Error(
            "CLIPCHECK ACCESS must map scope names to policy dicts.",
            hint="E.g. {'analyze': {'anonymous': True, 'rate': '60/minute'}}.",
            id="clipcheck.E011",
        )]
    problems = []
    for scope, policy in configured.items():
        unknown = sorted(set(policy) - set(POLICY_KEYS))
        if unknown:
            problems.append(f"{scope}: unknown keys {', '.join(map(str, unknown))}")
        if "anonymous" in policy and not isinstance(policy["anonymous"], bool):
            problems.append(f"{scope}: anonymous must be True or False")
        permissions = policy.get("permissions", [])
        if not isinstance(permissions, (list, tuple)) or not all(
            isinstance(name, str) and name.count(".") == 1 and all(name.split(".")) for name in permissions
        ):
            problems.append(f"{scope}: permissions must be a list of 'app_label.codename' names")
        for key in ("rate", "user_rate"):
            if policy.get(key) is not None:
                try:
                    parse_rate(policy[key])
                except ValueError:
                    problems.append(f"{scope}: {key} {policy[key]!r} is not like '60/minute'")
    return [
        Error(f"CLIPCHECK ACCESS: {problem}.", id="clipcheck.E011") for problem in problems
    ]


@register(Tags.urls)
def check_access_scopes(app_configs=None, **kwargs):
    """Every routed view that clipcheck's access classes guard names a policy.

    At run time such a view would refuse every request (fail closed); this
    reports it when the project starts instead.
    """
    from clipcheck.access import EndpointPolicyPermission, EndpointRateThrottle, access_table

    table = access_table()
    errors = []
    for route, view_class in _routed_view_classes(get_resolver().url_patterns):
        guards = [*getattr(view_class, "permission_classes", []), *getattr(view_class, "throttle_classes", [])]
        if not any(
            isinstance(guard, type) and issubclass(guard, (EndpointPolicyPermission, EndpointRateThrottle))
            for guard in guards
        ):
            continue
        scope = getattr(view_class, "access_scope", None)
        if scope not in table:
            errors.append(Error(
                f"{view_class.__module__}.{view_class.__qualname__} (route {route!r}) has access_scope "
                f"{scope!r}, which has no policy in CLIPCHECK['ACCESS'].",
                hint="Set access_scope on the view and add the scope to CLIPCHECK['ACCESS'].",
                id="clipcheck.E012",
            ))
    return errors


def _routed_view_classes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routed_view_classes(pattern.url_patterns, route)
            continue
        view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
        if view_class is not None:
            yield route, view_class


@register(Tags.security, deploy=True)
def check_shared_throttle_cache(app_configs=None, **kwargs):
    backend = settings.CACHES.get(clip_settings.THROTTLE_CACHE, {}).get("BACKEND", "")
    if backend.endswith(("LocMemCache", "DummyCache")):
        return [Warning(
            f"The throttle cache {clip_settings.THROTTLE_CACHE!r} ({backend.rsplit('.', 1)[-1]}) is not shared "
            "between processes: each gunicorn worker counts on its own, multiplying every rate limit.",
            hint="Set REDIS_URL (django-redis) so all workers share the counters.",
            id="clipcheck.W003",
        )]
    return []
