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

from clipcheck.default_attributes import DEFAULT_ATTRIBUTES
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
    # What runs the forward passes (clipcheck.engine.runtimes, docs/runtime.md):
    # "torch", "openvino" (exact: bf16 where the CPU has it, else f32),
    # "openvino-int8" (NNCF int8, only where its guard passed) or "auto":
    # torch on CUDA; on CPUs int8 where this checkpoint's guard passed
    # (manage.py clip_build_runtime), else openvino.
    "RUNTIME": "auto",
    # Converted and quantised models and OpenVINO's compiled-model cache,
    # keyed by the checkpoint's content and the library versions. Relative
    # paths are taken from the working directory.
    "RUNTIME_CACHE_DIR": "var/runtime",
    # Threads per serving process for the forward passes; None: the cores
    # this process may use.
    "NUM_THREADS": None,
    # Run forwards on two lanes of half of NUM_THREADS each, shared by both
    # towers (docs/runtime.md); None: when NUM_THREADS (or the cores) is 2 or more.
    "CONCURRENT_ENCODERS": None,
    # Load the model when a serving process starts (wsgi/asgi, runserver).
    "LOAD_ON_STARTUP": True,
    # Seconds before a failed model load is retried by the next request.
    "LOAD_RETRY_SECONDS": 60,
    # similarity_score below this is a mismatch.
    "THRESHOLD": 0.25,
    # Lower bounds of the match_quality bands, checked from the highest down,
    # as they are at the threshold QUALITY_BANDS_THRESHOLD; for any other
    # threshold they move with it (clipcheck.scoring.band_bounds), so that a
    # mismatch never gets a band from QUALITY_BANDS_THRESHOLD up. The band
    # with bound 0.0 catches everything below the others.
    "QUALITY_BANDS": {
        "excellent": 0.40,
        "good": 0.30,
        "fair": 0.25,
        "poor": 0.15,
        "mismatch": 0.0,
    },
    "QUALITY_BANDS_THRESHOLD": 0.25,
    # |score - threshold| above HIGH is "high" confidence, from MEDIUM up
    # "medium", below MEDIUM "low".
    "CONFIDENCE_MARGINS": {"HIGH": 0.15, "MEDIUM": 0.05},
    # Attribute conflicts (clipcheck.attributes, docs/verdicts.md): attribute
    # name -> values. A text naming one value of an attribute is rewritten
    # with each other value; a rewrite that passes the threshold and beats
    # the text by ATTRIBUTE_MARGIN while the text does not pass is a conflict.
    "ATTRIBUTES": DEFAULT_ATTRIBUTES,
    "ATTRIBUTE_MARGIN": 0.02,
    # Rewrites scored per passage that fails: the likeliest by the values'
    # own embeddings (clipcheck.verdicts), none when even that one is
    # predicted more than REWRITE_REACH below the threshold; and per text at most.
    "REWRITES_PER_PASSAGE": 1,
    "REWRITE_REACH": 0.1,
    "MAX_REWRITES": 64,
    # Texts longer than the model's context are scored as sentence-aware
    # passages (clipcheck.passages); at most this many per text.
    "MAX_PASSAGES": 32,
    # Zero-shot classification.
    "PROMPT_TEMPLATE": "a photo of a {}.",
    "CATEGORIES": DEFAULT_CATEGORIES,
    "DEFAULT_TOP_K": 5,
    # The similarity at which a category's classify score is 0.5; None uses
    # THRESHOLD. Zero-shot prompts may need their own calibration.
    "CLASSIFY_THRESHOLD": None,
    "MAX_CATEGORIES": 100,
    "MAX_CATEGORY_LENGTH": 100,
    # Batches: images per forward pass and the server directory that
    # /clip/analyze-batch may read from (None disables the endpoint).
    "BATCH_SIZE": 32,
    "BATCH_ROOT": None,
    "BATCH_MAX_ITEMS": 256,
    # Rows of model work one /clip/analyze or /clip/analyze-batch request may
    # cost (photos, text passages, attribute rewrites: clipcheck.costs),
    # counted before the model runs: over it, 413 request_too_costly. 1024
    # is BATCH_MAX_ITEMS (256) items of 4 rows (a photo, passages, a rewrite).
    "MAX_REQUEST_ROWS": 1024,
    # Online requests arriving together share one forward pass: the
    # micro-batcher waits at most BATCH_WAIT_MS for requests already on
    # their way (clipcheck.engine.batcher).
    "BATCH_WAIT_MS": 5,
    # Input limits. MAX_REQUEST_BYTES bounds the whole request body and is
    # checked from Content-Length before anything is read
    # (clipcheck.middleware.RequestSizeLimitMiddleware).
    "MAX_REQUEST_BYTES": 12 * 1024 * 1024,
    "MAX_UPLOAD_BYTES": 10 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 40_000_000,
    # Longest side / shortest side. The model's preprocessing scales the
    # shortest side up to its input size, so a 1-pixel-high strip would
    # become a multi-gigabyte array.
    "MAX_ASPECT_RATIO": 20,
    "MAX_TEXT_LENGTH": 10_000,
    "ALLOWED_IMAGE_FORMATS": ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"],
    # Large JPEGs are decoded at a reduced DCT scale (1/2, 1/4, 1/8) as long
    # as the shorter side stays at least this many pixels: several times
    # faster, and far above any CLIP input size. 0 disables it.
    "JPEG_DRAFT_MIN_SIDE": 448,
    # Other formats are box-reduced by the largest integer factor that
    # keeps the shorter side at least JPEG_DRAFT_MIN_SIDE, before any mode
    # conversion. Decoding memory, per serving process: decodes in flight
    # reserve their estimated peak (from the image header) out of this
    # budget before a pixel is decoded; one that does not fit waits up to
    # DECODE_WAIT_MS, then gets 503 "overloaded" (clipcheck.decode_budget).
    # An image that alone needs more is refused (413 image_too_large):
    # keep it above what one image at MAX_IMAGE_PIXELS may need, about 10
    # bytes a pixel with the defaults (worst_case_decode_cost, clipcheck.W004).
    "DECODE_MEMORY_BUDGET_BYTES": 512 * 1024 * 1024,
    "DECODE_WAIT_MS": 5000,
    # Days an analysis made by the anonymous API (/clip/analyze) is kept;
    # manage.py clip_prune_analyses deletes older ones (run it daily).
    # Analyses of uploads, audits and batches are kept. None: keep all.
    "ANALYSIS_RETENTION_DAYS": 30,
    # Text embeddings kept per process (category prompts, repeated texts).
    "TEXT_CACHE_SIZE": 4096,
    # Seconds a process keeps the latest calibrated threshold before reading
    # it again (clip_calibrate --apply reaches other processes within this).
    "CALIBRATION_CACHE_SECONDS": 30,
    # Similarity search (clipcheck.vectors). Two photos are the same picture
    # (re-encoded, resized, cropped a little or mirrored) when their
    # embeddings' cosine reaches NEAR_DUPLICATE_SIMILARITY... Another
    # checkpoint has another scale (docs/similarity.md says how to measure it). VECTOR_EF_SEARCH is
    # pgvector's hnsw.ef_search: candidates an HNSW search keeps (recall
    # against speed).
    "NEAR_DUPLICATE_SIMILARITY": 0.85,
    # ...and whose 8x8 colour layouts correlate at NEAR_DUPLICATE_LAYOUT or
    # more, mirrored or not (clipcheck.nearduplicates).
    "NEAR_DUPLICATE_LAYOUT": 0.93,
    "VECTOR_EF_SEARCH": 100,
    # POST /clip/search: results per request by default and at most.
    "SEARCH_DEFAULT_K": 10,
    "SEARCH_MAX_K": 100,
    # POST /clip/embed: texts plus photos per request.
    "EMBED_MAX_ITEMS": 32,
    # Admission control, per serving process (clipcheck.engine.admission): a
    # model computation is shed with 503 "overloaded" (Retry-After) when its
    # expected wait — computations in flight x the measured forward time per
    # row — exceeds LATENCY_BUDGET_MS. MAX_QUEUE is a hard bound on
    # computations in flight (an uncached analyze runs two: image and text);
    # one that finds no free slot within QUEUE_TIMEOUT_MS is shed too.
    "LATENCY_BUDGET_MS": 2000,
    "MAX_QUEUE": 16,
    "QUEUE_TIMEOUT_MS": 100,
    # A request whose inference takes longer gets 503 "inference_timeout";
    # the computation finishes in the background and keeps its slot.
    "INFERENCE_TIMEOUT_SECONDS": 30,
    # Who may call each endpoint and how often, keyed by the view's
    # access_scope (clipcheck.access). A project's CLIPCHECK["ACCESS"] is
    # merged into this table scope by scope and key by key, so it can
    # change one rate, or add scopes for its own views.
    #   anonymous:   clients without credentials may call it.
    #   permissions: Django permissions ("app_label.codename") the user
    #                must hold; implies an authenticated user.
    #   rate:        "N/second|minute|hour|day" per client (IP address
    #                for anonymous clients, user otherwise); None: unlimited.
    #   user_rate:   optional different rate for authenticated users.
    #   cost_rate:   "N/second|minute|hour|day" rows of model work (photos,
    #                text passages, attribute rewrites: clipcheck.costs) per
    #                client, charged before the model runs; None: unlimited.
    #   user_cost_rate: optional different cost rate for authenticated users.
    "ACCESS": {
        # An ordinary answer costs 2 or 3 rows (a photo, a text, its rewrite if
        # it fails), the longest text 65: 180 rows are 60 ordinary answers.
        "analyze": {"anonymous": True, "permissions": [], "rate": "60/minute", "cost_rate": "180/minute"},
        "classify": {"anonymous": True, "permissions": [], "rate": "60/minute"},
        "categories": {"anonymous": True, "permissions": [], "rate": "300/minute"},
        "health": {"anonymous": True, "permissions": [], "rate": "600/minute"},
        # Reads files on the server: only users granted the permission.
        "analyze-batch": {
            "anonymous": False,
            "permissions": ["clipcheck.run_batch_analysis"],
            "rate": "30/minute",
        },
        # Raw embeddings of texts and photos (/clip/embed): model time like analyze.
        "embed": {"anonymous": True, "permissions": [], "rate": "60/minute"},
        # The OpenAPI schema and Swagger UI (clipcheck.api.docs).
        "docs": {"anonymous": True, "permissions": [], "rate": "60/minute"},
    },
    # Failed token authentications per client (IP address) and period,
    # counted in THROTTLE_CACHE; past it every token request of that client
    # gets 429 "throttled" until the period ends. None: not limited.
    "FAILED_AUTH_RATE": "20/minute",
    # Failed logins to the admin (clipcheck.login_throttle), counted in
    # THROTTLE_CACHE per username and per client address; past either, that
    # login is refused with a message saying when to retry, the right
    # password included, so passwords cannot be guessed at request speed.
    # None: not limited.
    "FAILED_LOGIN_RATE_PER_USERNAME": "10/hour",
    "FAILED_LOGIN_RATE_PER_ADDRESS": "30/hour",
    # The cache (settings.CACHES alias) that counts throttled requests; it
    # must be shared by all serving processes (Redis) for limits to hold
    # across workers.
    "THROTTLE_CACHE": "default",
    # When set, /metrics answers only requests with
    # "Authorization: Bearer <METRICS_TOKEN>".
    "METRICS_TOKEN": None,
}


class AppSettings:
    """Attribute access to one namespaced settings dict with defaults filled in.

    Each app has one for its own dict (``clip_settings`` for ``CLIPCHECK``;
    another app builds its own from its defaults and setting name); it
    reloads itself when that setting changes (``override_settings``,
    pytest-django's ``settings``).
    """

    def __init__(self, defaults, setting_name):
        self.defaults = defaults
        self.setting_name = setting_name
        self._cached_attrs = set()
        # A bound method is held weakly: the receiver lives as long as this object.
        setting_changed.connect(self._reload_on_change)

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

    def _reload_on_change(self, *, setting, **kwargs):
        if setting == self.setting_name:
            self.reload()


clip_settings = AppSettings(DEFAULTS, SETTING_NAME)
