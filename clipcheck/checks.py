"""System checks for ``settings.CLIPCHECK`` (ids ``clipcheck.E0xx`` / ``W0xx``).

A bad value of one key is reported by the check its declaration names
(``CLIPCHECK_TABLE`` in ``clipcheck.settings``); the functions here judge what
needs more than one key, the URL routes or the database. Every id, with what
it reports, is declared in that table too.
"""

from django.conf import settings
from django.core.checks import Error, Info, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS
from django.urls import URLResolver, get_resolver

from clipcheck.settings import CLIPCHECK_TABLE, clip_settings, is_runtime
from clipcheck.settings_table import is_number, is_positive_integer, parse_rate, unknown_settings_errors

# The verdict rules' settings (clipcheck.verdicts, docs/verdicts.md), checked on their own.
VERDICT_KEYS = ("ATTRIBUTES", "ATTRIBUTES_BY_LANGUAGE", "ATTRIBUTE_MARGIN", "REWRITE_REACH", "QUALITY_BANDS_THRESHOLD")


@register(Tags.compatibility)
def check_clipcheck_settings(app_configs=None, **kwargs):
    return [
        *unknown_settings_errors(clip_settings, error_id="clipcheck.E001"),
        *CLIPCHECK_TABLE.check_messages(clip_settings, keys=set(clip_settings.defaults) - set(VERDICT_KEYS)),
        *_check_access_table(),
        *_check_request_limit(),
        *_check_runtime_device(),
        *_check_decode_budget(),
    ]


def _check_runtime_device():
    """An OpenVINO runtime needs the CPU and the openvino package."""
    from clipcheck.engine.runtimes import OPENVINO_RUNTIMES, openvino_available

    runtime = clip_settings.RUNTIME
    if not is_runtime(runtime) or runtime.strip().lower() not in OPENVINO_RUNTIMES:
        return []
    return [*_check_runtime_on_cuda(runtime), *_check_openvino_installed(runtime, openvino_available())]


def _check_runtime_on_cuda(runtime):
    if not str(clip_settings.DEVICE).strip().lower().startswith("cuda"):
        return []
    return [Error(
        f"CLIPCHECK RUNTIME {runtime!r} runs on the CPU, but DEVICE is {clip_settings.DEVICE!r}.",
        hint="Use RUNTIME 'torch' or 'auto' on CUDA.", id="clipcheck.E020",
    )]


def _check_openvino_installed(runtime, installed):
    if installed:
        return []
    return [Error(
        f"CLIPCHECK RUNTIME {runtime!r} needs the openvino package, which is not installed.",
        hint="pip install -r requirements/base.txt", id="clipcheck.E021",
    )]


def _check_decode_budget():
    from clipcheck.decode_budget import MB, worst_case_decode_cost

    budget, pixels = clip_settings.DECODE_MEMORY_BUDGET_BYTES, clip_settings.MAX_IMAGE_PIXELS
    if not (is_positive_integer(budget) and is_positive_integer(pixels)):
        return []  # reported as E004
    ratio, draft_side = clip_settings.MAX_ASPECT_RATIO, clip_settings.JPEG_DRAFT_MIN_SIDE
    if not (is_number(ratio) and ratio >= 1 and is_number(draft_side) and draft_side >= 0):
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


@register(Tags.compatibility)
def check_verdict_settings(app_configs=None, **kwargs):
    return CLIPCHECK_TABLE.check_messages(clip_settings, keys=VERDICT_KEYS)


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
    from clipcheck.access import POLICY_KEYS

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
