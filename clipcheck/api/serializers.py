"""The /clip/* endpoints' input validation and output: answers are rendered through these serializers."""

import math
import unicodedata

from django.conf import settings
from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.fields import SkipField

from clipcheck import reasons
from clipcheck.api.exceptions import validation_error_summary
from clipcheck.errors import ImageRejected
from clipcheck.images import decode_image
from clipcheck.languages import supported_languages
from clipcheck.reasons import reason_codes
from clipcheck.settings import clip_settings


class ThresholdField(serializers.FloatField):
    """A finite float in [0, 1]; NaN and infinities are refused."""

    default_error_messages = {"range": "Threshold must be a number between 0 and 1."}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0.0)
        kwargs.setdefault("max_value", 1.0)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        # float(True) is 1.0: a JSON boolean is a client mistake, not a threshold.
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            self.fail("range")
        return value


class ImageUploadField(serializers.FileField):
    """An uploaded image decoded by ``clipcheck.images.decode_image``.

    Size is checked before the bytes are read; decoding failures raise
    ``ImageRejected`` with their own status (413/415/400) and code, an empty
    file included (``empty_file``, from the decoder).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return decode_image(self.read_bytes(data))

    def read_bytes(self, data):
        """The uploaded bytes, refused before reading when over the limit."""
        upload = super().to_internal_value(data)
        limit = clip_settings.MAX_UPLOAD_BYTES
        if upload.size is not None and upload.size > limit:
            raise ImageRejected(
                f"The file is {upload.size} bytes; the limit is {limit} bytes.",
                code="file_too_large",
                status_code=413,
            )
        upload.seek(0)
        return upload.read(limit + 1)


# The characters str.strip() removes (str.isspace()), spelled out so that the
# OpenAPI pattern and the validation agree on what "blank" means.
BLANK_CHARACTERS = r"\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Non-blank text without NUL characters (which DRF refuses).
NON_BLANK_TEXT_PATTERN = rf"^[^\u0000]*[^\u0000{BLANK_CHARACTERS}][^\u0000]*$"
# Comma-separated names, at least one not blank, without NUL characters.
CATEGORIES_PATTERN = rf"^[^\u0000]*[^\u0000,{BLANK_CHARACTERS}][^\u0000]*$"


def _check_raw_length(data, limit, what):
    # Checked before trimming: the documented limit is on what the client sends.
    if isinstance(data, str) and len(data) > limit:
        raise serializers.ValidationError(f"{what} is {len(data)} characters; the limit is {limit}.",
                                          code="max_length")


class ProductTextField(serializers.CharField):
    """Non-blank text of up to ``MAX_TEXT_LENGTH`` characters."""

    def to_internal_value(self, data):
        _check_raw_length(data, clip_settings.MAX_TEXT_LENGTH, "Text")
        return super().to_internal_value(data)


def max_categories_text_length():
    """The longest categories string: MAX_CATEGORIES names of the longest
    length, with their separators."""
    return clip_settings.MAX_CATEGORIES * (clip_settings.MAX_CATEGORY_LENGTH + 1)


class CategoriesField(serializers.CharField):
    """Comma-separated categories: trimmed, empties dropped, duplicates removed."""

    def get_value(self, dictionary):
        # DRF treats an empty optional form field as absent; an explicitly
        # empty list of categories is a client mistake, not "use defaults".
        if self.field_name in dictionary:
            return dictionary[self.field_name]
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        _check_raw_length(data, max_categories_text_length(), "The categories text")
        value = super().to_internal_value(data)
        # CharField's validators (no NUL, no lone surrogates) must see the
        # string: run_validators below only gets the parsed list.
        super().run_validators(value)
        # One spelling per category: "café" typed composed (NFC) or decomposed (NFD) is one category.
        categories = list(dict.fromkeys(
            unicodedata.normalize("NFC", part.strip()) for part in value.split(",") if part.strip()
        ))
        if not categories:
            raise serializers.ValidationError("Give at least one category.", code="empty")
        if len(categories) > clip_settings.MAX_CATEGORIES:
            raise serializers.ValidationError(
                f"{len(categories)} categories; the limit is {clip_settings.MAX_CATEGORIES}.", code="max_length"
            )
        too_long = [category for category in categories if len(category) > clip_settings.MAX_CATEGORY_LENGTH]
        if too_long:
            raise serializers.ValidationError(
                f"Categories are limited to {clip_settings.MAX_CATEGORY_LENGTH} characters.", code="max_length"
            )
        return categories

    def run_validators(self, value):
        if isinstance(value, str):
            super().run_validators(value)


THRESHOLD_HELP = "Similarity below this is a mismatch. Absent: the service's own (calibrated or configured) threshold."


# Text without NUL characters (DRF refuses them; the validator puts it in the OpenAPI schema).
NO_NUL_PATTERN = r"^[^\u0000]*$"


class PlainTextField(serializers.CharField):
    """A CharField whose OpenAPI schema says what DRF enforces: no NUL characters
    and, where blank is refused, something besides the whitespace DRF trims."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        blank_refused = self.trim_whitespace and not self.allow_blank
        self.validators.append(RegexValidator(NON_BLANK_TEXT_PATTERN if blank_refused else NO_NUL_PATTERN))


class LanguageField(serializers.ChoiceField):
    """The language the text is written in: one of the supported codes, read per request from the
    settings (``clipcheck.languages``). Absent or empty: the request's Accept-Language header
    chooses, else English."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("help_text", "The text's language (CLIPCHECK ATTRIBUTES_BY_LANGUAGE). "
                                       "Absent: the Accept-Language header's, else en.")
        super().__init__(choices=supported_languages(), **kwargs)

    def to_internal_value(self, data):
        if data == "" and self.allow_blank:
            return ""
        if str(data) not in self.choice_strings_to_values:
            raise serializers.ValidationError(
                f"{str(data)[:40]!r} is not a supported language; use one of {', '.join(supported_languages())}.",
                code="invalid_choice",
            )
        return self.choice_strings_to_values[str(data)]


class AnalyzeInputSerializer(serializers.Serializer):
    file = ImageUploadField()
    text = ProductTextField()
    threshold = ThresholdField(required=False, help_text=THRESHOLD_HELP)
    category = PlainTextField(
        required=False, allow_blank=True, max_length=100,
        help_text="The product's category: its calibrated threshold applies when one is stored "
        "(an explicit threshold wins).",
    )
    language = LanguageField()


class ClassifyInputSerializer(serializers.Serializer):
    file = ImageUploadField()
    categories = CategoriesField(required=False)
    top_k = serializers.IntegerField(
        required=False, min_value=1, help_text="How many categories to return. Absent: CLIPCHECK DEFAULT_TOP_K (5)."
    )


# Longer paths cannot name a file (PATH_MAX on Linux).
MAX_IMAGE_PATH_LENGTH = 4096


class CountedListField(serializers.ListField):
    """A list field whose length is checked before its items are parsed
    (items may be uploads to decode); ``max_items`` is a callable, read per request."""

    def __init__(self, *, max_items, **kwargs):
        self.max_items = max_items
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if hasattr(data, "__len__") and not isinstance(data, (str, dict)) and len(data) > self.max_items():
            raise serializers.ValidationError(
                f"{len(data)} items; the limit is {self.max_items()}.", code="max_length"
            )
        return super().to_internal_value(data)


def embed_max_items():
    return clip_settings.EMBED_MAX_ITEMS


def embed_max_files():
    # Django refuses a request with more files than DATA_UPLOAD_MAX_NUMBER_FILES before any view runs.
    return min(clip_settings.EMBED_MAX_ITEMS, settings.DATA_UPLOAD_MAX_NUMBER_FILES or clip_settings.EMBED_MAX_ITEMS)


class EmbedInputSerializer(serializers.Serializer):
    """Texts and/or photos (repeated ``text`` and ``file`` fields): up to
    ``EMBED_MAX_ITEMS`` texts and as many photos as a request may carry."""

    def get_fields(self):
        # The limits are read per request (and by the schema) from the settings.
        return {
            "text": CountedListField(
                child=ProductTextField(), max_items=embed_max_items, max_length=embed_max_items(), allow_empty=False,
                required=False,
            ),
            "file": CountedListField(
                child=ImageUploadField(), max_items=embed_max_files, max_length=embed_max_files(), allow_empty=False,
                required=False,
            ),
        }

    def validate(self, data):
        if not data.get("text") and not data.get("file"):
            raise serializers.ValidationError("Send at least one text or file.", code="required")
        return data


class BatchItemSerializer(serializers.Serializer):
    image_path = serializers.CharField(trim_whitespace=False, max_length=MAX_IMAGE_PATH_LENGTH)
    text = ProductTextField()
    threshold = ThresholdField(required=False, help_text=THRESHOLD_HELP)


class ParsedItemField(serializers.Field):
    """A batch item exactly as the JSON parser produced it.

    DRF's JSONField re-serialises the value strictly, so one item holding a
    number beyond float range (``1e309`` parses as infinity) would fail the
    whole request; each item is judged alone by ``BatchInputSerializer``.
    """

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class BatchItemsField(serializers.ListField):
    """A non-empty list of batch items; each item is validated on its own."""

    def __init__(self, **kwargs):
        # null is an item like any other: it fails alone (invalid_item).
        kwargs.setdefault("child", ParsedItemField(allow_null=True))
        kwargs.setdefault("allow_empty", False)
        super().__init__(**kwargs)


class BatchInputSerializer(serializers.Serializer):
    items = BatchItemsField()
    language = LanguageField(help_text="The language of every item's text: en, de, fr or es "
                                       "(CLIPCHECK ATTRIBUTES_BY_LANGUAGE). Absent: the Accept-Language header's, else en.")

    def validate_items(self, items):
        limit = clip_settings.BATCH_MAX_ITEMS
        if len(items) > limit:
            raise serializers.ValidationError(f"{len(items)} items; the limit is {limit}.", code="max_length")
        return [self._item(item) for item in items]

    @staticmethod
    def _item(item):
        """A valid item's data, or an ``error`` entry that fails only that item."""
        if not isinstance(item, dict):
            return {"image_path": None, "error": {"code": "invalid_item", "message": "Each item must be an object."}}
        serializer = BatchItemSerializer(data=item)
        if serializer.is_valid():
            return dict(serializer.validated_data)
        code, message = validation_error_summary(serializer.errors)
        return {"image_path": echoed_path(item.get("image_path")), "error": {"code": code, "message": message}}


def echoed_path(value):
    """An item's image_path as its error entry repeats it: a string that
    always encodes (lone surrogates escaped as ``\\ud800``), cut to the
    longest usable path; None for anything that is not a string."""
    if not isinstance(value, str):
        return None
    value = value[:MAX_IMAGE_PATH_LENGTH]
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


# Responses. The services build plain dicts; these serializers document
# their shape in the OpenAPI schema (clipcheck.api.schema).

CONFIDENCE_LEVELS = ["high", "medium", "low"]


class ErrorDetailsField(serializers.JSONField):
    """``detail``: field name -> its messages (typed in the schema by clipcheck.api.schema)."""


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid_image, overloaded.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    detail = ErrorDetailsField(required=False, help_text="Per-field validation messages, when any.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


REASON_FIELDS = ["text", "title", "description", "category", "photos"]


class PassageSpanSerializer(serializers.Serializer):
    index = serializers.IntegerField(min_value=0, help_text="0-based passage number.")
    start = serializers.IntegerField(min_value=0, help_text="Character offset of the passage in the text.")
    end = serializers.IntegerField(min_value=0)


class ScoredPassageSerializer(PassageSpanSerializer):
    score = serializers.FloatField(min_value=0.0, max_value=1.0)


class PassagesSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, help_text="Passages scored.")
    covered = serializers.BooleanField(help_text="The passages cover the whole text.")
    best = ScoredPassageSerializer(help_text="The passage the text's score is taken from.")


class CategoryScoreSerializer(serializers.Serializer):
    category = serializers.CharField()
    score = serializers.FloatField(min_value=0.0, max_value=1.0)


class ReasonSerializer(serializers.Serializer):
    """One reason; the evidence keys depend on the code (docs/verdicts.md)."""

    code = serializers.ChoiceField(choices=[])  # the registered reason types: see get_fields
    field = serializers.ChoiceField(choices=REASON_FIELDS)
    message = serializers.CharField()
    score = serializers.FloatField(required=False)
    threshold = serializers.FloatField(required=False)
    attribute = serializers.CharField(required=False, help_text="attribute_conflict: e.g. colour.")
    text_says = serializers.CharField(
        required=False, help_text="attribute_conflict, object_conflict: the value or category the text names."
    )
    photo_shows = serializers.CharField(
        required=False,
        help_text="attribute_conflict: the value the photo fits; object_conflict, category_conflict: the category.",
    )
    text_score = serializers.FloatField(required=False)
    photo_shows_score = serializers.FloatField(required=False)
    passage = PassageSpanSerializer(required=False, help_text="The passage the reason is about (long texts).")
    passages = serializers.IntegerField(required=False, help_text="passage_mismatch: passages scored.")
    photo_looks_like = CategoryScoreSerializer(
        many=True, required=False, help_text="Categories whose standalone score is above 0.5."
    )

    def get_fields(self):
        # Apps register their reason types at start-up (photo_reused, ...): read the registry now,
        # and declare every evidence key of theirs, typed by its kind.
        fields = super().get_fields()
        fields["code"] = serializers.ChoiceField(choices=reason_codes())
        for key, kind in reasons.evidence_fields().items():
            if key not in fields:
                fields[key] = evidence_field(kind)
        return fields


class EvidenceFlagField(serializers.BooleanField):
    """True, False or null (unknown); left out of a reason that does not carry it (DRF would
    render a nullable field's missing key as null)."""

    def get_attribute(self, instance):
        if isinstance(instance, dict) and self.source not in instance:
            raise SkipField()
        return super().get_attribute(instance)


def evidence_field(kind):
    """The serializer field of an evidence value of ``kind`` (``clipcheck.reasons``)."""
    if kind in (reasons.SCORE, reasons.SUPPORT, reasons.THRESHOLD):
        return serializers.FloatField(required=False)
    if kind in (reasons.COUNT, reasons.PHOTO, reasons.LISTING):
        return serializers.IntegerField(required=False, min_value=0)
    if kind == reasons.FLAG:
        return EvidenceFlagField(required=False, allow_null=True)
    if kind == reasons.PASSAGE:
        return PassageSpanSerializer(required=False)
    if kind == reasons.CATEGORIES:
        return CategoryScoreSerializer(many=True, required=False)
    return serializers.CharField(required=False)


class AnalyzeResultSerializer(serializers.Serializer):
    is_mismatch = serializers.BooleanField(help_text="similarity_score is below threshold_used.")
    similarity_score = serializers.FloatField(min_value=0.0, max_value=1.0)
    threshold_used = serializers.FloatField(min_value=0.0, max_value=1.0)
    confidence = serializers.ChoiceField(
        choices=CONFIDENCE_LEVELS,
        help_text="From match_probability where there is one (the verdict's probability: high >= 0.9, medium >= 0.7), "
        "else from the score's distance to the threshold.",
    )
    match_probability = serializers.FloatField(
        allow_null=True, min_value=0.0, max_value=1.0,
        help_text="The probability that the text describes the photo, calibrated on moderators' decisions by the "
        "model's active adaptation (clip_adapt); without one, a sigmoid-trained model's (SigLIP) own probability "
        "sigmoid(logit_scale * cosine + logit_bias), else null (docs/models.md).",
    )
    match_quality = serializers.CharField(help_text="A label of CLIPCHECK QUALITY_BANDS, e.g. good, mismatch.")
    text_truncated = serializers.BooleanField(
        help_text="Part of the text was not scored (more passages than MAX_PASSAGES); false when passages cover it."
    )
    cached = serializers.BooleanField(help_text="Answered from an earlier analysis of the same image, text, threshold and model.")
    analysis_id = serializers.IntegerField(help_text="The stored analysis.")
    reasons = ReasonSerializer(many=True, help_text="Why: empty for a clean match.")
    suggestion = serializers.CharField(allow_null=True, help_text="A sentence for the seller, built from the reasons.")
    passages = PassagesSerializer(allow_null=True, help_text="A text longer than the context: its passages; else null.")


class CategoryMatchSerializer(serializers.Serializer):
    category = serializers.CharField()
    score = serializers.FloatField(
        min_value=0.0, max_value=1.0, help_text="0.5 at the category's classify threshold (docs/calibration.md)."
    )
    similarity = serializers.FloatField(min_value=0.0, max_value=1.0)
    probability = serializers.FloatField(min_value=0.0, max_value=1.0, help_text="Softmax over the categories.")


class ClassifyResultSerializer(serializers.Serializer):
    top_matches = CategoryMatchSerializer(many=True)


class CategoriesSerializer(serializers.Serializer):
    categories = serializers.ListField(child=serializers.CharField())
    count = serializers.IntegerField(min_value=0)


class BatchItemResultSerializer(serializers.Serializer):
    """An analyze result, or ``error`` for an item that could not be analysed."""

    image_path = serializers.CharField(allow_null=True)
    is_mismatch = serializers.BooleanField(required=False)
    similarity_score = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    threshold_used = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    confidence = serializers.ChoiceField(required=False, choices=CONFIDENCE_LEVELS)
    match_probability = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    match_quality = serializers.CharField(required=False)
    text_truncated = serializers.BooleanField(required=False)
    cached = serializers.BooleanField(required=False)
    analysis_id = serializers.IntegerField(required=False)
    reasons = ReasonSerializer(many=True, required=False)
    suggestion = serializers.CharField(allow_null=True, required=False)
    passages = PassagesSerializer(allow_null=True, required=False)
    error = ErrorDetailSerializer(required=False)


class BatchResultSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True, help_text="One entry per item, in input order.")


class TextEmbeddingSerializer(serializers.Serializer):
    text = serializers.CharField()
    embedding = serializers.ListField(child=serializers.FloatField(), help_text="Unit length (L2-normalised).")
    text_truncated = serializers.BooleanField(help_text="The text was cut to the model's context length.")


class ImageEmbeddingSerializer(serializers.Serializer):
    sha256 = serializers.CharField(help_text="SHA-256 of the uploaded bytes.")
    embedding = serializers.ListField(child=serializers.FloatField(), help_text="Unit length (L2-normalised).")


class EmbedResultSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="The model the embeddings come from: compare only embeddings of one model.")
    dim = serializers.IntegerField(min_value=1)
    texts = TextEmbeddingSerializer(many=True, help_text="In the order sent.")
    images = ImageEmbeddingSerializer(many=True, help_text="In the order sent.")


class AdaptationSummarySerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    categories = serializers.IntegerField(min_value=2, help_text="How many categories its head judges.")
    promoted_at = serializers.DateTimeField()
    held_out_accuracy = serializers.FloatField(allow_null=True, help_text="Top-category accuracy on its held-out photos.")


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "unhealthy"])
    service = serializers.CharField()
    model_loaded = serializers.BooleanField()
    device = serializers.CharField(allow_null=True)
    model = serializers.CharField()
    model_family = serializers.ChoiceField(
        choices=["clip", "siglip", "siglip2"], allow_null=True,
        help_text="The checkpoint's family: clip, siglip or siglip2 (fixed-resolution SigLIP 2); docs/models.md.",
    )
    dtype = serializers.CharField(allow_null=True)
    runtime = serializers.CharField(allow_null=True, help_text="torch, openvino or openvino-int8.")
    precision = serializers.CharField(allow_null=True, help_text="What the runtime computes in, e.g. bfloat16, bf16, int8/bf16.")
    runtime_cache = serializers.CharField(
        allow_null=True,
        help_text="null: the runtime read its builds from its cache or stored them there (or keeps none). Otherwise "
        "why it could not (read-only, full, unreadable): the worker built its models in a temporary directory, "
        "serves them, and builds them again at every start. Staff read the reason with the cache's path.",
    )
    adaptation = AdaptationSummarySerializer(
        allow_null=True,
        help_text="The model's active category adaptation (clip_adapt); null: the zero-shot prompts judge "
        "categories (or the database could not be read).",
    )


class HealthUnavailableSerializer(serializers.Serializer):
    """503: the health fields with the reason in ``error``; only ``error``
    when the request failed before the check ran (e.g. database down)."""

    status = serializers.ChoiceField(choices=["unhealthy"], required=False)
    service = serializers.CharField(required=False)
    model_loaded = serializers.BooleanField(required=False)
    device = serializers.CharField(allow_null=True, required=False)
    model = serializers.CharField(required=False)
    model_family = serializers.CharField(allow_null=True, required=False)
    dtype = serializers.CharField(allow_null=True, required=False)
    runtime = serializers.CharField(allow_null=True, required=False)
    precision = serializers.CharField(allow_null=True, required=False)
    runtime_cache = serializers.CharField(allow_null=True, required=False)
    error = ErrorDetailSerializer()
