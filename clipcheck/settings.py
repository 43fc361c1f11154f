"""The one place clipcheck reads its configuration from.

Projects configure the app with a single namespaced dict::

    CLIPCHECK = {"MODEL": "/srv/models/clip", "THRESHOLD": 0.27}

and code reads it through ``clip_settings`` (``clip_settings.THRESHOLD``),
modelled on Django REST framework's ``api_settings``. Missing keys fall back
to ``DEFAULTS``; mistakes are reported by the system checks in
``clipcheck.checks``; the object reloads when tests override the setting.
"""

from django.conf import settings
from django.core.signals import setting_changed

from clipcheck.categories import DEFAULT_CATEGORIES

SETTING_NAME = "CLIPCHECK"

DEFAULTS = {
    # Hugging Face hub id or a local directory in the save_pretrained layout.
    "MODEL": "openai/clip-vit-base-patch32",
    # "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
    "DEVICE": "auto",
    # Weights precision: "auto" picks float16 on CUDA, bfloat16 on CPUs with
    # native bf16 (AVX-512-BF16/AMX), else float32; or force one of
    # "float32", "bfloat16", "float16".
    "DTYPE": "auto",
    # torch intra-op threads per serving process; None keeps torch's default.
    "NUM_THREADS": None,
    # Load the model when a serving process starts (wsgi/asgi, runserver).
    "LOAD_ON_STARTUP": True,
    # Seconds before a failed model load is retried by the next request.
    "LOAD_RETRY_SECONDS": 60,
    # similarity_score below this is a mismatch.
    "THRESHOLD": 0.25,
    # Lower bounds of the match_quality bands, checked from the highest down.
    # The band with bound 0.0 catches everything below the others.
    "QUALITY_BANDS": {
        "excellent": 0.40,
        "good": 0.30,
        "fair": 0.25,
        "poor": 0.15,
        "mismatch": 0.0,
    },
    # |score - threshold| above HIGH is "high" confidence, from MEDIUM up
    # "medium", below MEDIUM "low".
    "CONFIDENCE_MARGINS": {"HIGH": 0.15, "MEDIUM": 0.05},
    # Zero-shot classification.
    "PROMPT_TEMPLATE": "a photo of a {}.",
    "CATEGORIES": DEFAULT_CATEGORIES,
    "DEFAULT_TOP_K": 5,
    "MAX_CATEGORIES": 100,
    "MAX_CATEGORY_LENGTH": 100,
    # Batches: images per forward pass and the server directory that
    # /clip/analyze-batch may read from (None disables the endpoint).
    "BATCH_SIZE": 32,
    "BATCH_ROOT": None,
    "BATCH_MAX_ITEMS": 256,
    # Online requests arriving together are batched: the batcher waits at
    # most BATCH_WAIT_MS for callers already on their way, holds at most
    # MAX_QUEUE requests (more get 503 "overloaded" with Retry-After), and a
    # request waits at most INFERENCE_TIMEOUT_SECONDS for its result.
    "BATCH_WAIT_MS": 5,
    "MAX_QUEUE": 64,
    "INFERENCE_TIMEOUT_SECONDS": 30,
    # Input limits.
    "MAX_UPLOAD_BYTES": 10 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 40_000_000,
    "MAX_TEXT_LENGTH": 10_000,
    "ALLOWED_IMAGE_FORMATS": ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"],
    # Large JPEGs are decoded at a reduced DCT scale (1/2, 1/4, 1/8) as long
    # as the shorter side stays at least this many pixels: several times
    # faster, and far above any CLIP input size. 0 disables it.
    "JPEG_DRAFT_MIN_SIDE": 448,
    # Text embeddings kept per process (category prompts, repeated texts).
    "TEXT_CACHE_SIZE": 4096,
    # Seconds a process keeps the latest calibrated threshold before reading
    # it again (clip_calibrate --apply reaches other processes within this).
    "CALIBRATION_CACHE_SECONDS": 30,
}


class ClipSettings:
    """Attribute access to ``settings.CLIPCHECK`` with defaults filled in."""

    # Other apps of the project reuse this class for their own dict
    # (``ClipSettings(LISTINGS_DEFAULTS, setting_name="LISTINGS")``).
    def __init__(self, defaults=None, setting_name=SETTING_NAME):
        self.defaults = defaults or DEFAULTS
        self.setting_name = setting_name
        self._cached_attrs = set()

    @property
    def user_settings(self):
        return getattr(settings, self.setting_name, None) or {}

    def __getattr__(self, attr):
        if attr not in self.defaults:
            raise AttributeError(f"Invalid {self.setting_name} setting: {attr!r}")
        value = self.user_settings.get(attr, self.defaults[attr])
        self._cached_attrs.add(attr)
        setattr(self, attr, value)
        return value

    def reload(self):
        for attr in self._cached_attrs:
            delattr(self, attr)
        self._cached_attrs.clear()


clip_settings = ClipSettings(DEFAULTS)


def reload_clip_settings(*, setting, **kwargs):
    if setting == SETTING_NAME:
        clip_settings.reload()


setting_changed.connect(reload_clip_settings)
