"""System checks for ``settings.CLIPCHECK`` (ids ``clipcheck.E0xx`` / ``W0xx``)."""

import math
import re
from pathlib import Path

from django.core.checks import Error, Tags, Warning, register

from clipcheck.settings import clip_settings

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
POSITIVE_INTEGERS = (
    "BATCH_SIZE", "BATCH_MAX_ITEMS", "MAX_UPLOAD_BYTES", "MAX_IMAGE_PIXELS", "MAX_TEXT_LENGTH",
    "MAX_CATEGORIES", "MAX_CATEGORY_LENGTH", "DEFAULT_TOP_K", "MAX_QUEUE",
)
POSITIVE_NUMBERS = (
    "INFERENCE_TIMEOUT_SECONDS", "LOAD_RETRY_SECONDS", "BATCH_WAIT_MS", "JPEG_DRAFT_MIN_SIDE", "CALIBRATION_CACHE_SECONDS",
)
KNOWN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def _is_fraction(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


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
    if not _is_fraction(clip_settings.THRESHOLD):
        errors.append(Error(
            f"CLIPCHECK THRESHOLD {clip_settings.THRESHOLD!r} must be a number between 0 and 1.",
            id="clipcheck.E003",
        ))
    for key in POSITIVE_INTEGERS:
        value = getattr(clip_settings, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(Error(f"CLIPCHECK {key} {value!r} must be a positive integer.", id="clipcheck.E004"))
    for key in POSITIVE_NUMBERS:
        value = getattr(clip_settings, key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            errors.append(Error(f"CLIPCHECK {key} {value!r} must be a non-negative number.", id="clipcheck.E011"))
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
    root = clip_settings.BATCH_ROOT
    if root and not Path(root).is_dir():
        errors.append(Warning(
            f"CLIPCHECK BATCH_ROOT {str(root)!r} is not an existing directory; /clip/analyze-batch will find no files.",
            id="clipcheck.W001",
        ))
    return errors
