"""System checks for ``settings.CLIPCHECK`` (ids ``clipcheck.E0xx`` / ``W0xx``)."""

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.core.checks import Error, Info, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS
from django.urls import URLResolver, get_resolver

from clipcheck.settings import clip_settings

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
POSITIVE_INTEGERS = (
    "BATCH_SIZE", "BATCH_MAX_ITEMS", "MAX_UPLOAD_BYTES", "MAX_IMAGE_PIXELS", "MAX_TEXT_LENGTH",
    "MAX_CATEGORIES", "MAX_CATEGORY_LENGTH", "DEFAULT_TOP_K", "MAX_REQUEST_BYTES", "MAX_QUEUE",
    "MAX_PASSAGES", "MAX_REWRITES", "REWRITES_PER_PASSAGE", "DECODE_MEMORY_BUDGET_BYTES", "SEARCH_DEFAULT_K",
    "SEARCH_MAX_K", "EMBED_MAX_ITEMS", "MAX_REQUEST_ROWS",
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
    "LATENCY_BUDGET_MS": (0, False),
    "DECODE_WAIT_MS": (0, True),
}
KNOWN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_fraction(value):
    return _is_number(value) and 0 <= value <= 1


def is_positive_integer(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _optional(valid):
    return lambda value: value is None or valid(value)


def _at_least(bound, inclusive):
    return lambda value: _is_number(value) and (value > bound or (inclusive and value == bound))


def _is_device(value):
    return isinstance(value, str) and bool(DEVICE_PATTERN.match(value.strip().lower()))


def _is_quality_bands(bands):
    return (
        isinstance(bands, dict)
        and bool(bands)
        and all(isinstance(label, str) and _is_fraction(bound) for label, bound in bands.items())
        and 0 in bands.values()
    )


def _is_confidence_margins(margins):
    return (
        isinstance(margins, dict)
        and set(margins) == {"HIGH", "MEDIUM"}
        and all(_is_fraction(value) for value in margins.values())
        and margins["MEDIUM"] <= margins["HIGH"]
    )


def _is_name_list(names):
    return isinstance(names, (list, tuple)) and bool(names) and all(
        isinstance(name, str) and name.strip() for name in names
    )


def _is_prompt_template(template):
    return isinstance(template, str) and template.count("{}") == 1


def _is_format_list(formats):
    return isinstance(formats, (list, tuple)) and bool(formats) and all(
        isinstance(name, str) and name.upper() in KNOWN_FORMATS for name in formats
    )


def _is_dtype(value):
    return str(value).lower() in DTYPES


def _is_cache_alias(alias):
    return alias in settings.CACHES


def _is_non_blank_string(value):
    return isinstance(value, str) and bool(value.strip())


def _is_rate(value):
    from clipcheck.access import parse_rate

    try:
        parse_rate(value)
    except ValueError:
        return False
    return True


def _is_directory_or_unset(root):
    return not root or Path(root).is_dir()


def _is_runtime(value):
    from clipcheck.engine.runtimes import RUNTIMES

    return isinstance(value, str) and value.strip().lower() in RUNTIMES


def _is_path(value):
    return isinstance(value, (str, Path)) and bool(str(value).strip())


@dataclass(frozen=True)
class SettingRule:
    """One key's check: when ``valid(value)`` is false, report ``message``
    (formatted with ``key``, ``value`` and ``text``, the value as a string)
    under ``id``: an ``Error``, or a ``Warning`` for a ``.W`` id."""

    key: str
    valid: Callable[[object], bool]
    id: str
    message: str
    hint: str | None = None

    def messages(self, settings_object):
        value = getattr(settings_object, self.key)
        if self.valid(value):
            return []
        level = Warning if ".W" in self.id else Error
        message = self.message.format(key=self.key, value=value, text=str(value))
        return [level(message, hint=self.hint, id=self.id)]


def rule_errors(settings_object, rules):
    """The messages of every rule that ``settings_object``'s values break, in table order."""
    return [message for rule in rules for message in rule.messages(settings_object)]


# One line per setting: key, validator, id, message. Ids are stable.
RULES = (
    SettingRule("DEVICE", _is_device, "clipcheck.E002", "CLIPCHECK DEVICE {value!r} is not valid.",
                hint="Use 'auto', 'cpu', 'cuda' or 'cuda:N'."),
    SettingRule("CLASSIFY_THRESHOLD", _optional(_is_fraction), "clipcheck.E003",
                "CLIPCHECK CLASSIFY_THRESHOLD {value!r} must be None or a number between 0 and 1."),
    SettingRule("THRESHOLD", _is_fraction, "clipcheck.E003",
                "CLIPCHECK THRESHOLD {value!r} must be a number between 0 and 1."),
    *(
        SettingRule(key, is_positive_integer, "clipcheck.E004", "CLIPCHECK {key} {value!r} must be a positive integer.")
        for key in POSITIVE_INTEGERS
    ),
    SettingRule("QUALITY_BANDS", _is_quality_bands, "clipcheck.E005",
                "CLIPCHECK QUALITY_BANDS must map labels to lower bounds in [0, 1], one of them 0."),
    SettingRule("CONFIDENCE_MARGINS", _is_confidence_margins, "clipcheck.E006",
                "CLIPCHECK CONFIDENCE_MARGINS must be {{'HIGH': x, 'MEDIUM': y}} with 0 <= y <= x <= 1."),
    SettingRule("CATEGORIES", _is_name_list, "clipcheck.E007", "CLIPCHECK CATEGORIES must be a non-empty list of names."),
    SettingRule("PROMPT_TEMPLATE", _is_prompt_template, "clipcheck.E008",
                "CLIPCHECK PROMPT_TEMPLATE {value!r} must contain exactly one '{{}}'."),
    SettingRule("ALLOWED_IMAGE_FORMATS", _is_format_list, "clipcheck.E009",
                "CLIPCHECK ALLOWED_IMAGE_FORMATS {value!r} must be a non-empty subset of "
                + ", ".join(KNOWN_FORMATS) + "."),
    SettingRule("DTYPE", _is_dtype, "clipcheck.E010", "CLIPCHECK DTYPE {value!r} is not valid.",
                hint=f"Use one of {', '.join(DTYPES)}."),
    SettingRule("NUM_THREADS", _optional(is_positive_integer), "clipcheck.E004",
                "CLIPCHECK NUM_THREADS {value!r} must be None or a positive integer."),
    SettingRule("RUNTIME", _is_runtime, "clipcheck.E016", "CLIPCHECK RUNTIME {value!r} is not valid.",
                hint="Use one of auto, torch, openvino, openvino-int8 (docs/runtime.md)."),
    SettingRule("RUNTIME_CACHE_DIR", _is_path, "clipcheck.E017", "CLIPCHECK RUNTIME_CACHE_DIR must be a directory path."),
    SettingRule("CONCURRENT_ENCODERS", lambda value: value in (None, True, False), "clipcheck.E017",
                "CLIPCHECK CONCURRENT_ENCODERS must be None, True or False."),
    *(
        SettingRule(key, _at_least(bound, inclusive), "clipcheck.E014",
                    f"CLIPCHECK {{key}} {{value!r}} must be a number {'at least' if inclusive else 'greater than'} {bound}.")
        for key, (bound, inclusive) in NUMBERS.items()
    ),
    SettingRule("THROTTLE_CACHE", _is_cache_alias, "clipcheck.E013",
                "CLIPCHECK THROTTLE_CACHE {value!r} is not an alias in settings.CACHES."),
    SettingRule("METRICS_TOKEN", _optional(_is_non_blank_string), "clipcheck.E015",
                "CLIPCHECK METRICS_TOKEN must be None or a non-empty string."),
    SettingRule("ANALYSIS_RETENTION_DAYS", _optional(is_positive_integer), "clipcheck.E004",
                "CLIPCHECK {key} {value!r} must be None or a positive integer."),
    *(
        SettingRule(key, _optional(_is_rate), "clipcheck.E016",
                    "CLIPCHECK {key} {value!r} must be None or a rate like '20/minute'.")
        for key in ("FAILED_AUTH_RATE", "FAILED_LOGIN_RATE_PER_USERNAME", "FAILED_LOGIN_RATE_PER_ADDRESS")
    ),
    *(
        SettingRule(key, _is_fraction, "clipcheck.E003", "CLIPCHECK {key} {value!r} must be a number between 0 and 1.")
        for key in ("NEAR_DUPLICATE_SIMILARITY", "NEAR_DUPLICATE_LAYOUT")
    ),
    SettingRule("VECTOR_EF_SEARCH", lambda value: is_positive_integer(value) and value <= 1000, "clipcheck.E004",
                "CLIPCHECK VECTOR_EF_SEARCH {value!r} must be a whole number from 1 to 1000 (pgvector's range)."),
    SettingRule("BATCH_ROOT", _is_directory_or_unset, "clipcheck.W001",
                "CLIPCHECK BATCH_ROOT {text!r} is not an existing directory; "
                "/clip/analyze-batch will find no files."),
)


def unknown_settings_errors(settings_object, *, error_id):
    """An error naming keys of a ``AppSettings`` dict that its defaults lack."""
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
    return [
        *unknown_settings_errors(clip_settings, error_id="clipcheck.E001"),
        *rule_errors(clip_settings, RULES),
        *_check_access_table(),
        *_check_request_limit(),
        *_check_runtime_device(),
        *_check_decode_budget(),
    ]


def _check_runtime_device():
    """An OpenVINO runtime needs the CPU and the openvino package."""
    from clipcheck.engine.runtimes import OPENVINO_RUNTIMES, openvino_available

    runtime = clip_settings.RUNTIME
    if not _is_runtime(runtime) or runtime.strip().lower() not in OPENVINO_RUNTIMES:
        return []
    errors = []
    if str(clip_settings.DEVICE).strip().lower().startswith("cuda"):
        errors.append(Error(
            f"CLIPCHECK RUNTIME {runtime!r} runs on the CPU, but DEVICE is {clip_settings.DEVICE!r}.",
            hint="Use RUNTIME 'torch' or 'auto' on CUDA.", id="clipcheck.E016",
        ))
    if not openvino_available():
        errors.append(Error(
            f"CLIPCHECK RUNTIME {runtime!r} needs the openvino package, which is not installed.",
            hint="pip install -r requirements/base.txt", id="clipcheck.E016",
        ))
    return errors


def _check_decode_budget():
    from clipcheck.decode_budget import MB, worst_case_decode_cost

    budget, pixels = clip_settings.DECODE_MEMORY_BUDGET_BYTES, clip_settings.MAX_IMAGE_PIXELS
    if not (is_positive_integer(budget) and is_positive_integer(pixels)):
        return []  # reported as E004
    ratio, draft_side = clip_settings.MAX_ASPECT_RATIO, clip_settings.JPEG_DRAFT_MIN_SIDE
    if not (_is_number(ratio) and ratio >= 1 and _is_number(draft_side) and draft_side >= 0):
        return []  # reported with the other numbers
    needed = worst_case_decode_cost(pixels, max_aspect_ratio=ratio, draft_min_side=draft_side)
    if budget < needed:
        return [Warning(
            f"CLIPCHECK DECODE_MEMORY_BUDGET_BYTES ({budget // MB} MB) is below what one image at "
            f"MAX_IMAGE_PIXELS may need to decode ({needed // MB} MB): such images are refused as too large.",
            hint="Raise the budget or lower MAX_IMAGE_PIXELS.",
            id="clipcheck.W004",
        )]
    return []


def _check_request_limit():
    request_limit, upload_limit = clip_settings.MAX_REQUEST_BYTES, clip_settings.MAX_UPLOAD_BYTES
    if isinstance(request_limit, int) and isinstance(upload_limit, int) and request_limit < upload_limit:
        return [Warning(
            f"CLIPCHECK MAX_REQUEST_BYTES ({request_limit}) is below MAX_UPLOAD_BYTES ({upload_limit}); "
            "uploads near the file limit are refused as too large requests.",
            id="clipcheck.W002",
        )]
    return []


def _is_attributes(attributes):
    return isinstance(attributes, dict) and all(
        isinstance(name, str) and name.strip()
        and isinstance(values, (list, tuple)) and len(values) >= 2
        and all(isinstance(value, str) and value.strip() for value in values)
        and len({value.strip().lower() for value in values}) == len(values)
        for name, values in attributes.items()
    )


# The verdict rules' settings (clipcheck.verdicts, docs/verdicts.md).
VERDICT_RULES = (
    SettingRule("ATTRIBUTES", _is_attributes, "clipcheck.E030",
                "CLIPCHECK ATTRIBUTES must map attribute names to lists of at least two distinct, non-blank values.",
                hint='e.g. {"colour": ["red", "blue"], "material": ["leather", "canvas"]}'),
    *(
        SettingRule(key, _is_fraction, "clipcheck.E031", "CLIPCHECK {key} {value!r} must be a number between 0 and 1.")
        for key in ("ATTRIBUTE_MARGIN", "REWRITE_REACH")
    ),
    SettingRule("QUALITY_BANDS_THRESHOLD", lambda value: _is_fraction(value) and 0 < value < 1, "clipcheck.E031",
                "CLIPCHECK {key} {value!r} must be a number strictly between 0 and 1."),
)


@register(Tags.compatibility)
def check_verdict_settings(app_configs=None, **kwargs):
    return rule_errors(clip_settings, VERDICT_RULES)


def _check_access_table():
    configured = clip_settings.ACCESS
    if not isinstance(configured, dict) or not all(isinstance(policy, dict) for policy in configured.values()):
        return [Error(
            "CLIPCHECK ACCESS must map scope names to policy dicts.",
            hint="E.g. {'analyze': {'anonymous': True, 'rate': '60/minute'}}.",
            id="clipcheck.E011",
        )]
    return [
        Error(f"CLIPCHECK ACCESS: {scope}: {problem}.", id="clipcheck.E011")
        for scope, policy in configured.items()
        for problem in _policy_problems(policy)
    ]


def _policy_problems(policy):
    from clipcheck.access import POLICY_KEYS, parse_rate

    problems = []
    unknown = sorted(set(policy) - set(POLICY_KEYS))
    if unknown:
        problems.append(f"unknown keys {', '.join(map(str, unknown))}")
    if "anonymous" in policy and not isinstance(policy["anonymous"], bool):
        problems.append("anonymous must be True or False")
    if not _is_permission_list(policy.get("permissions", [])):
        problems.append("permissions must be a list of 'app_label.codename' names")
    for key in ("rate", "user_rate", "cost_rate", "user_cost_rate"):
        if policy.get(key) is not None:
            try:
                parse_rate(policy[key])
            except ValueError:
                problems.append(f"{key} {policy[key]!r} is not like '60/minute'")
    return problems


def _is_permission_list(permissions):
    return isinstance(permissions, (list, tuple)) and all(
        isinstance(name, str) and name.count(".") == 1 and all(name.split(".")) for name in permissions
    )


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


# A database check, as Django means it: it asks the database, so it runs with
# migrate and check --database default, not before every command (runserver,
# the demo) where its information line was noise.
@register(Tags.database)
def check_vector_backend(app_configs=None, databases=None, **kwargs):
    """Which similarity search path runs (``clipcheck.vectors``); a warning
    when PostgreSQL could run pgvector but does not."""
    from clipcheck import vectors

    if not databases or DEFAULT_DB_ALIAS not in databases:
        return []
    try:
        backend = vectors.vector_backend()
    except Exception as exc:  # no database yet, or none reachable: not this check's concern
        return [Info(f"Similarity search: not determined ({exc.__class__.__name__}).", id="clipcheck.I001")]
    messages = [Info(f"Similarity search: {backend.name} ({backend.reason}).", id="clipcheck.I001")]
    if backend.extension_missing:
        messages.append(Warning(
            f"Similarity search runs in the process: {backend.reason}.",
            hint="Run CREATE EXTENSION vector; in the database (pgvector must be installed on the server), then "
                 "manage.py migrate clipcheck 0004 && manage.py migrate (docs/similarity.md).",
            id="clipcheck.W005",
        ))
    return messages


@register(Tags.models)
def check_database_router(app_configs=None, **kwargs):
    """Without ``ClipcheckRouter``, Django's backup (``dumpdata``) fails on the
    models that have no table (``clipcheck.routers``)."""
    from django.db.utils import ConnectionRouter

    from clipcheck.routers import ROUTER_PATH, ClipcheckRouter

    if any(isinstance(router, ClipcheckRouter) for router in ConnectionRouter(settings.DATABASE_ROUTERS).routers):
        return []
    return [Warning(
        f"DATABASE_ROUTERS lacks {ROUTER_PATH}: manage.py dumpdata fails with \"no such table\" "
        "(clipcheck's permissions carrier and, without pgvector, its vector index have no table).",
        hint=f"Add {ROUTER_PATH!r} to DATABASE_ROUTERS (docs/operations.md#backups).",
        id="clipcheck.W006",
    )]
