"""The one place clipcheck reads its configuration from.

Projects configure the app with a single namespaced dict::

    CLIPCHECK = {"MODEL": "/srv/models/clip", "THRESHOLD": 0.27}

and code reads it through ``clip_settings`` (``clip_settings.THRESHOLD``),
modelled on Django REST framework's ``api_settings``. Every key is declared
once in ``CLIPCHECK_TABLE`` (``clipcheck.settings_table``): its default, its
kind, the system check that reports a bad value, the environment variable
that overrides it and its line in docs/configuration.md. Missing keys fall
back to the defaults; mistakes are reported by the system checks in
``clipcheck.checks``; the object reloads when tests override the setting.
"""

import re

from django.conf import settings
from django.core.signals import setting_changed

from clipcheck.categories import DEFAULT_CATEGORIES
from clipcheck.default_attributes import DEFAULT_ATTRIBUTES, DEFAULT_ATTRIBUTES_BY_LANGUAGE
from clipcheck.settings_table import (
    ANY_FLAG,
    ANY_INTEGER,
    ANY_TEXT,
    BOOLEAN,
    CACHE_ALIAS,
    DIRECTORY,
    INTEGER,
    PATH,
    RATE,
    SECRET,
    TEXT,
    Check,
    Kind,
    Setting,
    SettingsTable,
    choice,
    fraction,
    is_fraction,
    number,
    positive_integer,
    settings_table_register,
    structure,
)

SETTING_NAME = "CLIPCHECK"

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
KNOWN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def is_device(value):
    return isinstance(value, str) and bool(DEVICE_PATTERN.match(value.strip().lower()))


def is_runtime(value):
    # The engine names its runtimes; imported when judged, as loading the
    # settings must not load the engine.
    from clipcheck.engine.runtimes import RUNTIMES

    return isinstance(value, str) and value.strip().lower() in RUNTIMES


def is_quality_bands(bands):
    return (
        isinstance(bands, dict)
        and bool(bands)
        and all(isinstance(label, str) and is_fraction(bound) for label, bound in bands.items())
        and 0 in bands.values()
    )


def is_confidence_margins(margins):
    return (
        isinstance(margins, dict)
        and set(margins) == {"HIGH", "MEDIUM"}
        and all(is_fraction(value) for value in margins.values())
        and margins["MEDIUM"] <= margins["HIGH"]
    )


def is_name_list(names):
    return isinstance(names, (list, tuple)) and bool(names) and all(
        isinstance(name, str) and name.strip() for name in names
    )


def is_prompt_template(template):
    return isinstance(template, str) and template.count("{}") == 1


def is_format_list(formats):
    return isinstance(formats, (list, tuple)) and bool(formats) and all(
        isinstance(name, str) and name.upper() in KNOWN_FORMATS for name in formats
    )


def is_attribute_value(value):
    """A non-blank string, or a value's forms: a non-empty list of them (the first is its name)."""
    forms = [value] if isinstance(value, str) else value
    return isinstance(forms, (list, tuple)) and bool(forms) and all(
        isinstance(form, str) and form.strip() for form in forms
    )


def _value_forms(value):
    return {form.strip().casefold() for form in ([value] if isinstance(value, str) else value)}


def is_attributes(attributes):
    """Attribute name → at least two values; no form is shared by two values of one attribute."""
    return isinstance(attributes, dict) and all(
        isinstance(name, str) and name.strip()
        and isinstance(values, (list, tuple)) and len(values) >= 2
        and all(is_attribute_value(value) for value in values)
        and len(set().union(*(_value_forms(value) for value in values))) == sum(
            len(_value_forms(value)) for value in values)
        for name, values in attributes.items()
    )


# A language code as Accept-Language writes it: "de", "pt-br".
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")


def is_attributes_by_language(vocabularies):
    return isinstance(vocabularies, dict) and all(
        isinstance(language, str) and LANGUAGE_CODE.fullmatch(language) and language != "en"
        and is_attributes(attributes)
        for language, attributes in vocabularies.items()
    )


DEVICE = Kind("device", is_device, "{name} {value!r} is not valid.", TEXT)
DTYPE = choice(*DTYPES, normalise=lambda value: str(value).lower())
RUNTIME = Kind("runtime name", is_runtime, "{name} {value!r} is not valid.", TEXT)
QUALITY_BANDS = structure("label → lower bound", is_quality_bands,
                          "{name} must map labels to lower bounds in [0, 1], one of them 0.")
CONFIDENCE_MARGINS = structure("`HIGH`, `MEDIUM` margins", is_confidence_margins,
                               "{name} must be {{'HIGH': x, 'MEDIUM': y}} with 0 <= y <= x <= 1.")
NAMES = structure("list of names", is_name_list, "{name} must be a non-empty list of names.")
PROMPT_TEMPLATE = Kind("text with one `{}`", is_prompt_template, "{name} {value!r} must contain exactly one '{{}}'.")
IMAGE_FORMATS = structure(
    "list of formats", is_format_list,
    "{name} {value!r} must be a non-empty subset of " + ", ".join(KNOWN_FORMATS) + ".",
)
ATTRIBUTES = structure("attribute → values", is_attributes,
                       "{name} must map attribute names to lists of at least two distinct, non-blank values.")
ATTRIBUTES_BY_LANGUAGE = structure(
    "language → attributes", is_attributes_by_language,
    "{name} must map lower-case language codes other than 'en' to attributes as ATTRIBUTES takes them.",
)
# Judged by check_access_table in clipcheck.checks, policy by policy.
ACCESS = structure("scope → policy", None)

# Lower bounds of the match_quality bands at QUALITY_BANDS_THRESHOLD, checked
# from the highest down; the band with bound 0.0 catches everything below the others.
DEFAULT_QUALITY_BANDS = {
    "excellent": 0.40,
    "good": 0.30,
    "fair": 0.25,
    "poor": 0.15,
    "mismatch": 0.0,
}

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
DEFAULT_ACCESS = {
    # An ordinary answer costs 2 or 3 rows (a photo, a text, its rewrite if
    # it fails), the longest text 65: 180 rows are 60 ordinary answers.
    "analyze": {"anonymous": True, "permissions": [], "rate": "60/minute", "cost_rate": "180/minute"},
    # A photo and the prompts of categories outside CATEGORIES; embed: a row per text and photo.
    "classify": {"anonymous": True, "permissions": [], "rate": "60/minute", "cost_rate": "180/minute"},
    "categories": {"anonymous": True, "permissions": [], "rate": "300/minute"},
    "health": {"anonymous": True, "permissions": [], "rate": "600/minute"},
    # Reads files on the server: only users granted the permission.
    "analyze-batch": {
        "anonymous": False,
        "permissions": ["clipcheck.run_batch_analysis"],
        "rate": "30/minute",
    },
    # Raw embeddings of texts and photos (/clip/embed): model time like analyze.
    "embed": {"anonymous": True, "permissions": [], "rate": "60/minute", "cost_rate": "180/minute"},
    # The OpenAPI schema and Swagger UI (clipcheck.api.docs).
    "docs": {"anonymous": True, "permissions": [], "rate": "60/minute"},
}

CLIPCHECK_TABLE = settings_table_register(SettingsTable(
    name=SETTING_NAME,
    reader="clipcheck.settings.clip_settings",
    settings=(
        # The model and what runs it.
        Setting("MODEL", "openai/clip-vit-base-patch32", ANY_TEXT, env="CLIPCHECK_MODEL",
                doc="Hugging Face hub id or a local `save_pretrained` directory ([how it is found]"
                    "(#how-the-model-is-found)); preprocessing follows its own processor config"),
        Setting("DEVICE", "auto", DEVICE, check="clipcheck.E002", env="CLIPCHECK_DEVICE",
                hint="Use 'auto', 'cpu', 'cuda' or 'cuda:N'.",
                doc="`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`"),
        # float16 on CUDA, bfloat16 on CPUs with native bf16, else float32.
        Setting("DTYPE", "auto", DTYPE, check="clipcheck.E010", env="CLIPCHECK_DTYPE",
                hint=f"Use one of {', '.join(DTYPES)}.",
                doc="weights precision: `auto` (float16 on CUDA, bfloat16 on CPUs with AVX-512-BF16/AMX, else "
                    "float32; a SigLIP float32 on CPUs), `float32`, `bfloat16`, `float16`; reduced precision keeps embeddings ≥ 0.9999 "
                    "cosine to float32"),
        Setting("RUNTIME", "auto", RUNTIME, check="clipcheck.E016", env="CLIPCHECK_RUNTIME",
                hint="Use one of auto, torch, openvino, openvino-int8 (docs/runtime.md).",
                doc="what runs the forward passes: `torch`, `openvino` (exact), `openvino-int8` or `auto` (PyTorch "
                    "on CUDA; on CPUs OpenVINO, int8 where its guard passed): [runtime.md](runtime.md)"),
        # Relative paths are taken from the working directory.
        Setting("RUNTIME_CACHE_DIR", "var/runtime", PATH, check="clipcheck.E017", env="CLIPCHECK_RUNTIME_CACHE_DIR",
                doc="converted and quantised models and OpenVINO's compiled cache, keyed by checkpoint content and "
                    "library versions (the project sets `var/runtime` in its directory)"),
        Setting("NUM_THREADS", None, positive_integer(), check="clipcheck.E004", none=True,
                env="CLIPCHECK_NUM_THREADS",
                doc="threads per serving process for the forward passes (`None`: the cores it may use)"),
        Setting("CONCURRENT_ENCODERS", None, BOOLEAN, check="clipcheck.E019", none=True,
                message="{name} must be None, True or False.",
                doc="run forwards on two lanes of half of `NUM_THREADS` each, shared by both towers (`None`: "
                    "with 2 or more threads; [runtime.md](runtime.md#threads-and-lanes))"),
        Setting("LOAD_ON_STARTUP", True, ANY_FLAG, env="CLIPCHECK_LOAD_ON_STARTUP",
                doc="serving processes (wsgi/asgi, runserver) load the model before their first request"),
        Setting("LOAD_RETRY_SECONDS", 60, number(0), check="clipcheck.E014", env="CLIPCHECK_LOAD_RETRY_SECONDS",
                doc="seconds before a failed model load is retried by the next request"),
        # Verdicts (docs/verdicts.md).
        Setting("THRESHOLD", 0.25, fraction(), check="clipcheck.E003", env="CLIPCHECK_THRESHOLD",
                doc="`similarity_score` below this is a mismatch"),
        # For any threshold other than QUALITY_BANDS_THRESHOLD the bands move
        # with it (clipcheck.scoring.band_bounds), so that a mismatch never gets
        # a band from QUALITY_BANDS_THRESHOLD up.
        Setting("QUALITY_BANDS", DEFAULT_QUALITY_BANDS, QUALITY_BANDS, check="clipcheck.E005",
                shown_default="excellent 0.40, good 0.30, fair 0.25, poor 0.15, mismatch 0.0",
                doc="lower bound of each `match_quality` label at `QUALITY_BANDS_THRESHOLD`, checked from the "
                    "highest down; they move with the threshold ([verdicts.md](verdicts.md))"),
        Setting("QUALITY_BANDS_THRESHOLD", 0.25, fraction(open_interval=True), check="clipcheck.E031",
                doc="the threshold `QUALITY_BANDS` are written for"),
        Setting("CONFIDENCE_MARGINS", {"HIGH": 0.15, "MEDIUM": 0.05}, CONFIDENCE_MARGINS, check="clipcheck.E006",
                doc="`|score − threshold|` above `HIGH` is `high` confidence, from `MEDIUM` up `medium`, below it `low`"),
        # A text naming one value of an attribute is rewritten with each other
        # value; a rewrite that passes the threshold and beats the text by
        # ATTRIBUTE_MARGIN while the text does not pass is a conflict.
        Setting("ATTRIBUTES", DEFAULT_ATTRIBUTES, ATTRIBUTES, check="clipcheck.E030",
                hint='e.g. {"colour": ["red", "blue"], "material": ["leather", "canvas"]}',
                shown_default=f"{len(DEFAULT_ATTRIBUTES)} attributes: {', '.join(DEFAULT_ATTRIBUTES)}",
                doc="attribute name → its values, for attribute conflicts "
                    "([verdicts.md](verdicts.md#attribute-conflicts))"),
        Setting("ATTRIBUTES_BY_LANGUAGE", DEFAULT_ATTRIBUTES_BY_LANGUAGE, ATTRIBUTES_BY_LANGUAGE,
                check="clipcheck.E032",
                hint='e.g. {"de": {"colour": [["rot", "rote", "roter"], ["blau", "blaue", "blauer"]]}}',
                shown_default="de, fr, es: " + ", ".join(DEFAULT_ATTRIBUTES_BY_LANGUAGE["de"]),
                doc="language → its attributes, for texts in other languages than English (`ATTRIBUTES`); a "
                    "value that inflects is the list of its forms, its name first; the languages a text may be "
                    "written in are `en` and these ([verdicts.md](verdicts.md#languages))"),
        Setting("ATTRIBUTE_MARGIN", 0.02, fraction(), check="clipcheck.E031",
                doc="how much a rewrite must beat the text to be a conflict"),
        # The likeliest by the values' own embeddings (clipcheck.verdicts).
        Setting("REWRITES_PER_PASSAGE", 1, positive_integer(), check="clipcheck.E004",
                doc="rewrites scored per failing passage (the likeliest first)"),
        Setting("REWRITE_REACH", None, fraction(), check="clipcheck.E031", none=True,
                doc="no rewrite is scored when even the likeliest is predicted more than this below the threshold "
                    "(None: the model family's, 0.1 on CLIP, 0.2 on SigLIP)"),
        Setting("MAX_REWRITES", 64, positive_integer(), check="clipcheck.E004", doc="rewrites scored per text"),
        # Texts longer than the model's context are scored as sentence-aware
        # passages (clipcheck.passages).
        Setting("MAX_PASSAGES", 32, positive_integer(), check="clipcheck.E004",
                doc="passages scored per text longer than the model's context"),
        # Zero-shot classification.
        Setting("PROMPT_TEMPLATE", "a photo of a {}.", PROMPT_TEMPLATE, check="clipcheck.E008",
                doc="zero-shot prompt for classification"),
        Setting("CATEGORIES", DEFAULT_CATEGORIES, NAMES, check="clipcheck.E007",
                shown_default=f"{len(DEFAULT_CATEGORIES)} product categories",
                doc="default catalogue for classify and `/clip/categories`"),
        Setting("DEFAULT_TOP_K", 5, positive_integer(), check="clipcheck.E004", doc="classify's default `top_k`"),
        # Zero-shot prompts may need their own calibration.
        Setting("CLASSIFY_THRESHOLD", None, fraction(), check="clipcheck.E003", none=True,
                doc="similarity at which a category's classify `score` is 0.5 (`None`: the calibrated classify "
                    "threshold, else `THRESHOLD`; [calibration.md](calibration.md))"),
        Setting("MAX_CATEGORIES", 100, positive_integer(), check="clipcheck.E004",
                doc="categories per classify request"),
        Setting("MAX_CATEGORY_LENGTH", 100, positive_integer(), check="clipcheck.E004",
                doc="characters per category"),
        # Batches.
        Setting("BATCH_SIZE", 32, positive_integer(), check="clipcheck.E004", env="CLIPCHECK_BATCH_SIZE",
                doc="images per forward pass"),
        Setting("BATCH_ROOT", None, DIRECTORY, check="clipcheck.W001", env="CLIPCHECK_BATCH_ROOT",
                message="{name} {text!r} is not an existing directory; /clip/analyze-batch will find no files.",
                doc="server directory `/clip/analyze-batch` may read; `None` disables the endpoint (503); the "
                    "project sets `var/batch` in its directory"),
        Setting("BATCH_MAX_ITEMS", 256, positive_integer(), check="clipcheck.E004", doc="items per batch request"),
        # 1024 is BATCH_MAX_ITEMS (256) items of 4 rows (a photo, passages, a rewrite).
        Setting("MAX_REQUEST_ROWS", 1024, positive_integer(), check="clipcheck.E004",
                doc="rows of model work (photos, text passages, attribute rewrites) one `/clip/analyze` or "
                    "`/clip/analyze-batch` request may cost, counted before the model runs; over it 413 "
                    "`request_too_costly` ([api-access.md](api-access.md#what-a-request-costs-rows-of-model-work))"),
        # Online requests arriving together share one forward pass (clipcheck.engine.batcher).
        Setting("BATCH_WAIT_MS", 5, number(0), check="clipcheck.E014",
                doc="how long the micro-batcher waits for requests already on their way before a forward pass"),
        # Input limits.
        # Checked by clipcheck.middleware.RequestSizeLimitMiddleware before the body is read.
        Setting("MAX_REQUEST_BYTES", 12 * 1024 * 1024, positive_integer(), check="clipcheck.E004",
                env="CLIPCHECK_MAX_REQUEST_BYTES",
                doc="bytes per request body, checked from Content-Length before anything is read"),
        Setting("MAX_UPLOAD_BYTES", 10 * 1024 * 1024, positive_integer(), check="clipcheck.E004",
                env="CLIPCHECK_MAX_UPLOAD_BYTES", doc="bytes per image file"),
        Setting("MAX_IMAGE_PIXELS", 40_000_000, positive_integer(), check="clipcheck.E004",
                doc="pixels per image, checked from its header before decoding"),
        # The model's preprocessing scales the shortest side up to its input
        # size, so a 1-pixel-high strip would become a multi-gigabyte array.
        Setting("MAX_ASPECT_RATIO", 20, number(1), check="clipcheck.E014",
                doc="longest side / shortest side of an image"),
        Setting("MAX_TEXT_LENGTH", 10_000, positive_integer(), check="clipcheck.E004", doc="characters per text"),
        Setting("ALLOWED_IMAGE_FORMATS", list(KNOWN_FORMATS), IMAGE_FORMATS, check="clipcheck.E009",
                doc="image formats accepted"),
        # Several times faster than a full decode, and far above any CLIP input size.
        Setting("JPEG_DRAFT_MIN_SIDE", 448, number(0), check="clipcheck.E014",
                doc="big images are decoded reduced (JPEG at 1/2, 1/4 or 1/8 scale, other formats by integer box "
                    "reduction before any mode conversion) while their shorter side stays at least this (0: always "
                    "full size)"),
        # Decodes in flight reserve their estimated peak (from the image
        # header) out of this budget before a pixel is decoded
        # (clipcheck.decode_budget). Keep it above what one image at
        # MAX_IMAGE_PIXELS may need, about 10 bytes a pixel with the defaults
        # (worst_case_decode_cost, clipcheck.W004).
        Setting("DECODE_MEMORY_BUDGET_BYTES", 512 * 1024 * 1024, positive_integer(), check="clipcheck.E004",
                env="CLIPCHECK_DECODE_MEMORY_BUDGET_BYTES",
                doc="memory per serving process for image decodes in flight; an image that alone needs more is "
                    "refused (413 `image_too_large`): [operations.md](operations.md#decoding-memory)"),
        Setting("DECODE_WAIT_MS", 5000, number(0), check="clipcheck.E014",
                doc="how long a decode waits for budget before 503 `overloaded`"),
        # Analyses of uploads, audits and batches are kept.
        Setting("ANALYSIS_RETENTION_DAYS", 30, positive_integer(), check="clipcheck.E004", none=True,
                env="CLIPCHECK_ANALYSIS_RETENTION_DAYS", env_none=True,
                doc="days an analysis made by the anonymous API (`/clip/analyze`) is kept; `manage.py "
                    "clip_prune_analyses` deletes older ones (`None`: keep all)"),
        Setting("TEXT_CACHE_SIZE", 4096, ANY_INTEGER,
                doc="text embeddings kept per process (category prompts, repeated texts)"),
        # clip_calibrate --apply reaches other processes within this.
        Setting("CALIBRATION_CACHE_SECONDS", 30, number(0), check="clipcheck.E014",
                doc="how long a process keeps the calibrated threshold before reading it again"),
        # Similarity search (clipcheck.vectors, docs/similarity.md). Another
        # checkpoint has another scale (docs/similarity.md says how to measure it).
        Setting("NEAR_DUPLICATE_SIMILARITY", 0.85, fraction(), check="clipcheck.E003",
                doc="embedding cosine from which a stored photo is a candidate duplicate "
                    "([similarity.md](similarity.md#near-duplicates-what-counts-as-the-same-photo))"),
        Setting("NEAR_DUPLICATE_LAYOUT", 0.93, fraction(), check="clipcheck.E003",
                doc="correlation of the 8×8 colour layouts, as is or mirrored, that confirms a candidate"),
        Setting("VECTOR_EF_SEARCH", 100, positive_integer(maximum=1000), check="clipcheck.E004",
                message="{name} {value!r} must be a whole number from 1 to 1000 (pgvector's range).",
                doc="pgvector's `hnsw.ef_search`: candidates an HNSW search keeps (recall against speed)"),
        Setting("SEARCH_DEFAULT_K", 10, positive_integer(), check="clipcheck.E004",
                doc="`/clip/search` results by default"),
        Setting("SEARCH_MAX_K", 100, positive_integer(), check="clipcheck.E004", doc="`/clip/search` results at most"),
        Setting("EMBED_MAX_ITEMS", 32, positive_integer(), check="clipcheck.E004",
                doc="texts plus photos per `/clip/embed` request"),
        # Admission control, per serving process (clipcheck.engine.admission).
        Setting("LATENCY_BUDGET_MS", 2000, number(0, inclusive=False), check="clipcheck.E014",
                env="CLIPCHECK_LATENCY_BUDGET_MS",
                doc="a request is shed (503 `overloaded`, `Retry-After`) when its expected wait — rows in flight "
                    "× measured forward time per row — exceeds this"),
        # An uncached analyze runs two computations: image and text.
        Setting("MAX_QUEUE", 16, positive_integer(), check="clipcheck.E004", env="CLIPCHECK_MAX_QUEUE",
                doc="hard bound on computations in flight per process"),
        Setting("QUEUE_TIMEOUT_MS", 100, number(0), check="clipcheck.E014", env="CLIPCHECK_QUEUE_TIMEOUT_MS",
                parser=INTEGER,
                doc="a computation that finds no free slot within this is shed (503 `overloaded`)"),
        # The computation finishes in the background and keeps its slot.
        Setting("INFERENCE_TIMEOUT_SECONDS", 30, number(0, inclusive=False), check="clipcheck.E014",
                env="CLIPCHECK_INFERENCE_TIMEOUT_SECONDS",
                doc="a request waits at most this long for its inference, then 503 `inference_timeout`"),
        # Access (docs/api-access.md).
        Setting("ACCESS", DEFAULT_ACCESS, ACCESS, check="clipcheck.E011",
                shown_default="[api-access.md](api-access.md#who-may-call-what)",
                doc="who may call each endpoint (by the view's `access_scope`), how often and for how much model "
                    "work; a project's table is merged into it scope by scope and key by key"),
        # Counted in THROTTLE_CACHE, per client address.
        Setting("FAILED_AUTH_RATE", "20/minute", RATE, check="clipcheck.E018", none=True,
                env="CLIPCHECK_FAILED_AUTH_RATE", env_none=True,
                doc="failed token authentications per client address and period; past it every token request of "
                    "that client gets 429 `throttled` ([operations.md](operations.md#settings); `None`: not limited)"),
        # clipcheck.login_throttle: past either, the login is refused with a
        # message saying when to retry, the right password included, so
        # passwords cannot be guessed at request speed.
        Setting("FAILED_LOGIN_RATE_PER_USERNAME", "10/hour", RATE, check="clipcheck.E018", none=True,
                doc="failed admin logins per username before its logins are refused (`None`: not limited)"),
        Setting("FAILED_LOGIN_RATE_PER_ADDRESS", "30/hour", RATE, check="clipcheck.E018", none=True,
                doc="failed admin logins per client address before its logins are refused (`None`: not limited)"),
        # Shared by all serving processes (Redis) for limits to hold across workers.
        Setting("THROTTLE_CACHE", "default", CACHE_ALIAS, check="clipcheck.E013",
                doc="the `CACHES` alias that counts throttled requests and failed logins"),
        Setting("METRICS_TOKEN", None, SECRET, check="clipcheck.E015", none=True, env="CLIPCHECK_METRICS_TOKEN",
                doc="when set, `/metrics` answers only `Authorization: Bearer <METRICS_TOKEN>`"),
    ),
    checks=(
        Check("clipcheck.E001", "a key that `CLIPCHECK` does not have (a typo)"),
        Check("clipcheck.E002", "not a device name"),
        Check("clipcheck.E003", "not a number between 0 and 1"),
        Check("clipcheck.E004", "not a positive integer (within the key's range)"),
        Check("clipcheck.E005", "quality bands that are not labels with lower bounds in [0, 1], one of them 0"),
        Check("clipcheck.E006", "confidence margins that are not `{\"HIGH\": x, \"MEDIUM\": y}`, 0 ≤ y ≤ x ≤ 1"),
        Check("clipcheck.E007", "not a non-empty list of names"),
        Check("clipcheck.E008", "a prompt template without exactly one `{}`"),
        Check("clipcheck.E009", "image formats that are not a non-empty subset of " + ", ".join(KNOWN_FORMATS)),
        Check("clipcheck.E010", "not a weights precision"),
        Check("clipcheck.E011", "an access table that is not scopes with valid policies"),
        Check("clipcheck.E012", "a routed view, guarded by the access classes, whose `access_scope` has no policy",
              keys=("ACCESS",)),
        Check("clipcheck.E013", "not an alias in `CACHES`"),
        Check("clipcheck.E014", "not a number within the key's bounds"),
        Check("clipcheck.E015", "an empty metrics token"),
        Check("clipcheck.E016", "not a runtime name"),
        Check("clipcheck.E017", "not a directory path"),
        Check("clipcheck.E018", "not a rate like `\"20/minute\"`", formerly="clipcheck.E016"),
        Check("clipcheck.E019", "not `None`, `True` or `False`", formerly="clipcheck.E017"),
        Check("clipcheck.E020", "an OpenVINO runtime with a CUDA device (OpenVINO runs on the CPU)",
              keys=("RUNTIME", "DEVICE"), formerly="clipcheck.E016"),
        Check("clipcheck.E021", "an OpenVINO runtime without the openvino package installed", keys=("RUNTIME",),
              formerly="clipcheck.E016"),
        Check("clipcheck.E030", "attributes that are not names with at least two values (strings or lists of forms) "
                                "sharing no form"),
        Check("clipcheck.E031", "a verdict margin or bands threshold outside [0, 1] (the bands threshold: (0, 1))"),
        Check("clipcheck.E032", "vocabularies by language that are not language codes (not `en`) mapped to attributes"),
        Check("clipcheck.W001", "a batch root that is not an existing directory: `/clip/analyze-batch` finds no files"),
        Check("clipcheck.W002", "a request limit below the file limit: uploads near it are refused",
              keys=("MAX_REQUEST_BYTES", "MAX_UPLOAD_BYTES")),
        Check("clipcheck.W003", "a throttle cache the serving processes do not share (`manage.py check --deploy`)",
              keys=("THROTTLE_CACHE",)),
        Check("clipcheck.W004", "a decode budget below what one image at `MAX_IMAGE_PIXELS` may need",
              keys=("DECODE_MEMORY_BUDGET_BYTES", "MAX_IMAGE_PIXELS", "MAX_ASPECT_RATIO", "JPEG_DRAFT_MIN_SIDE")),
        Check("clipcheck.W005", "PostgreSQL without the vector extension: similarity search runs in the process "
                                "(a database check)"),
        Check("clipcheck.W006", "`DATABASE_ROUTERS` without `clipcheck.routers.ClipcheckRouter`: `dumpdata` fails"),
        Check("clipcheck.I001", "which similarity search runs, pgvector or in the process (a database check: "
                                "`migrate`, `check --database default`)"),
    ),
))

DEFAULTS = CLIPCHECK_TABLE.defaults()


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
