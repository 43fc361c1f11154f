"""Stored analyses and the image-embedding cache.

An ``Analysis`` may concern any object of the project (a listing, an order
line...) through a generic relation, so this app never imports the apps that
use it.
"""

import numpy as np
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from pgvector.django import VectorField

from clipcheck import scoring, verdicts


class ImageEmbedding(models.Model):
    """One image's embedding under one model: a new text for a known image
    then costs only a text encode."""

    sha256 = models.CharField(max_length=64)
    model = models.CharField(max_length=255)
    dim = models.PositiveIntegerField()
    # float32 little-endian, ``dim`` values, unit length.
    vector = models.BinaryField()
    # The image's 8x8 colour layout (clipcheck.nearduplicates), float32
    # little-endian; null for rows stored before layouts were kept.
    layout = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sha256", "model"], name="clipcheck_image_embedding_unique"),
        ]

    def __str__(self):
        return f"{self.sha256[:12]}… ({self.model})"

    @staticmethod
    def pack(vector):
        return np.asarray(vector, dtype="<f4").tobytes()

    def as_array(self):
        return np.frombuffer(bytes(self.vector), dtype="<f4")

    def layout_array(self):
        return None if self.layout is None else np.frombuffer(bytes(self.layout), dtype="<f4")


class ImageVector(models.Model):
    """An ``ImageEmbedding`` as a pgvector ``vector`` for nearest-neighbour search.

    The table exists only on PostgreSQL with the pgvector extension (the
    migration creates it there and nowhere else); ``clipcheck.vectors``
    decides whether it is used. The column has no fixed dimension because
    each model has its own: every (model, dimension) gets its own partial
    HNSW index over ``embedding::vector(dim)`` (``vectors.vector_index_ensure``).

    Unmanaged: the table is a search index derived from ``ImageEmbedding``,
    so Django's own commands leave it alone on every backend — ``dumpdata``
    does not back it up (it would fail where the table does not exist) and
    ``flush`` does not empty it. ``clipcheck.vectors`` keeps it equal to the
    embeddings instead: rows loaded by ``loaddata`` are copied in, and
    vectors without an embedding are deleted after ``flush`` and ``migrate``.
    """

    sha256 = models.CharField(max_length=64)
    model = models.CharField(max_length=255)
    dim = models.PositiveIntegerField()
    embedding = VectorField()

    class Meta:
        managed = False
        constraints = [
            models.UniqueConstraint(fields=["sha256", "model"], name="clipcheck_image_vector_unique"),
        ]

    def __str__(self):
        return f"{self.sha256[:12]}… ({self.model}, {self.dim})"


class Analysis(models.Model):
    class Source(models.TextChoices):
        API = "api", "API /clip/analyze"
        BATCH = "batch", "API /clip/analyze-batch"
        UPLOAD = "upload", "Storefront upload"
        ADMIN = "admin", "Admin"
        AUDIT = "audit", "Audit"

    class Verdict(models.TextChoices):
        MATCH = "match", "Match"
        MISMATCH = "mismatch", "Mismatch"

    image_sha256 = models.CharField(max_length=64)
    text = models.TextField()
    # The cache key holds the text's hash: texts run to MAX_TEXT_LENGTH
    # characters, too long for an index.
    text_sha256 = models.CharField(max_length=64)
    similarity_score = models.FloatField()
    threshold = models.FloatField()
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    confidence = models.CharField(max_length=16)
    match_quality = models.CharField(max_length=32)
    text_truncated = models.BooleanField(default=False)
    # Why the verdict is what it is: a list of {"code", "field", "message",
    # ...evidence} objects, empty for a clean match (see docs/verdicts.md).
    reasons = models.JSONField(default=list, blank=True)
    # A text longer than the model's context: {"count", "covered", "best":
    # {"index", "start", "end", "score"}}; null for a text scored whole.
    passages = models.JSONField(null=True, blank=True)
    # clipcheck.verdicts.rules_key() of the rules the reasons were found
    # with: a cached answer is reused only under the same rules.
    rules = models.CharField(max_length=64, blank=True, default="")
    # The language the text was judged in (clipcheck.languages): its vocabulary
    # found the conflicts, and the reasons' messages and the suggestion are in it.
    language = models.CharField(max_length=16, default="en")
    model = models.CharField(max_length=255)
    # The version of the model's category adaptation (clip_adapt) in force
    # when the verdict was computed; null without one.
    adaptation_version = models.PositiveIntegerField(null=True, blank=True)
    # The probability that the text describes the photo, from that
    # adaptation's match calibration; null without one.
    match_probability = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    # True when the verdict was served from an earlier analysis of the same
    # image bytes, text, threshold and model without running the model.
    cached = models.BooleanField(default=False)
    duration_ms = models.FloatField(help_text="Wall time of the computation; a batch's time is shared by its items.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    subject_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.SET_NULL)
    subject_id = models.CharField(max_length=64, blank=True, default="")
    subject = GenericForeignKey("subject_type", "subject_id")

    class Meta:
        verbose_name_plural = "analyses"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["image_sha256", "text_sha256", "model"], name="clipcheck_analysis_cache_key"),
            models.Index(fields=["subject_type", "subject_id"], name="clipcheck_analysis_subject"),
        ]

    def __str__(self):
        return f"Analysis {self.pk}: {self.verdict} {self.similarity_score:.4f}"

    @property
    def is_mismatch(self):
        return self.verdict == self.Verdict.MISMATCH

    def result(self):
        """The /clip/analyze response fields.

        The band is computed on read from the score and the threshold, so a
        label stored under older rules never shows.
        """
        return {
            "is_mismatch": self.is_mismatch,
            "similarity_score": self.similarity_score,
            "threshold_used": self.threshold,
            "confidence": self.confidence,
            "match_probability": self.match_probability,
            "match_quality": scoring.match_quality(self.similarity_score, self.threshold),
            "text_truncated": self.text_truncated,
            "cached": self.cached,
            "analysis_id": self.pk,
            "reasons": self.reasons,
            "suggestion": verdicts.suggestion(self.reasons, language=self.language),
            "passages": self.passages,
        }


class CalibratedThreshold(models.Model):
    """A threshold computed from labelled pairs (``manage.py clip_calibrate --apply``).

    The latest row for the running model is the default threshold unless
    ``CLIPCHECK["THRESHOLD"]`` is set explicitly (see
    ``clipcheck.services.thresholds.default_threshold``).
    """

    class Kind(models.TextChoices):
        CAPTION = "caption", "Caption (product text mismatch)"
        CLASSIFY = "classify", "Classify (category prompt applies)"

    model = models.CharField(max_length=255)
    # "" for the model's global threshold, else the category it serves.
    category = models.CharField(max_length=100, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CAPTION)
    threshold = models.FloatField()
    # "moderation" or "csv:<file name>".
    source = models.CharField(max_length=255)
    # Labels per class and the confusion counts and rates at this threshold.
    counts = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["model", "-created_at"], name="clipcheck_calibrated_latest"),
            models.Index(fields=["model", "kind", "category", "-created_at"], name="clipcheck_calibrated_scope"),
        ]

    def __str__(self):
        scope = f"{self.kind} {self.category}".strip()
        return f"{self.threshold:.4f} for {self.model}, {scope} ({self.source})"


class ClipcheckPermissions(models.Model):
    """Carrier of clipcheck's own permissions; it has no table.

    Granting ``clipcheck.run_batch_analysis`` to a user or group (admin, or
    ``user.user_permissions.add(...)``) lets them call /clip/analyze-batch,
    which reads files on the server.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("run_batch_analysis", "Can run batch analysis on server-side files")]
        verbose_name = "clipcheck permission"


class Adaptation(models.Model):
    """A category head learnt from the catalogue's labels (``manage.py clip_adapt``, docs/adaptation.md).

    At most one row per model is active: the head that classify, category
    conflicts, "looks like" and suggestions use. A promotion adds the next
    version as the active one; ``clip_adapt --rollback`` makes the previous
    version active again. Rows of another model are never used: a model
    change leaves its adaptation retired.
    """

    model = models.CharField(max_length=255)
    version = models.PositiveIntegerField()
    active = models.BooleanField(default=False)
    categories = models.JSONField(default=list)
    # clipcheck.adaptation.CategoryHead.to_bytes(): weights, blend and calibration.
    head = models.BinaryField()
    # sha256 of the (listing, category) labels it was fitted and judged on.
    label_digest = models.CharField(max_length=64)
    # Label counts by provenance, and the fit's choices.
    labels = models.JSONField(default=dict)
    # Held-out figures before and after, with their 95 % intervals.
    metrics = models.JSONField(default=dict)
    # What checks looked like when it was promoted, per category (clipcheck.drift): clip_drift's reference.
    reference = models.JSONField(default=dict)
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="clipcheck_adaptation_version"),
            models.UniqueConstraint(
                fields=["model"], condition=models.Q(active=True), name="clipcheck_adaptation_one_active",
            ),
        ]

    def __str__(self):
        return f"Adaptation v{self.version} of {self.model}" + (" (active)" if self.active else "")
