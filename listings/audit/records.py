"""The data an audit run carries: its options, report rows and summary counts.

The local pipeline and the distributed mode share them; the distributed mode
sends them in task messages (``as_message``/``from_message``).
"""

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

from django.utils import timezone

from clipcheck.errors import ClipcheckError
from clipcheck.services.thresholds import category_thresholds, default_threshold, model_id
from clipcheck.settings import clip_settings
from listings.models import Listing
from listings.settings import listings_settings

DEFAULT_STATUSES = (Listing.Status.PENDING, Listing.Status.APPROVED)


class AuditMisconfigured(ClipcheckError):
    """A chunk was handed to a worker that cannot run it as the audit asked."""

    code = "audit_misconfigured"


@dataclass(frozen=True)
class AuditOptions:
    """What one audit run checks and how; every run resolves its threshold,
    model and start time once so that all its chunks (and workers) agree."""

    statuses: tuple = DEFAULT_STATUSES
    since: datetime | None = None
    limit: int | None = None
    threshold: float | None = None
    # Categories with their own calibrated threshold (unless ``threshold`` is given).
    category_thresholds: dict | None = None
    recheck: bool = False
    dry_run: bool = False
    batch_size: int | None = None
    chunk_size: int | None = None
    model: str = ""
    started_at: datetime | None = None

    def resolved(self):
        """These options with the defaults of this moment filled in."""
        return replace(
            self,
            threshold=default_threshold() if self.threshold is None else float(self.threshold),
            category_thresholds=(
                self.category_thresholds if self.category_thresholds is not None
                else category_thresholds() if self.threshold is None else None
            ),
            batch_size=self.batch_size or int(clip_settings.BATCH_SIZE),
            chunk_size=self.chunk_size or int(listings_settings.AUDIT_CHUNK_SIZE),
            model=self.model or model_id(),
            started_at=self.started_at or timezone.now(),
        )

    def as_message(self):
        """JSON-serialisable form for a task message."""
        return {
            "threshold": self.threshold,
            "category_thresholds": self.category_thresholds,
            "recheck": self.recheck,
            "dry_run": self.dry_run,
            "batch_size": self.batch_size,
            "model": self.model,
            "started_at": self.started_at.isoformat(),
        }

    @classmethod
    def from_message(cls, message):
        return cls(
            threshold=message["threshold"],
            category_thresholds=message.get("category_thresholds"),
            recheck=message["recheck"],
            dry_run=message["dry_run"],
            batch_size=message["batch_size"],
            model=message["model"],
            started_at=datetime.fromisoformat(message["started_at"]),
        )


@dataclass
class AuditRow:
    """One line of the report: a listing checked, or failed."""

    listing_id: int
    title: str
    outcome: str  # "checked" or "failed"
    title_score: float | None = None
    title_verdict: str = ""
    description_score: float | None = None
    description_verdict: str = ""
    verdict: str = ""
    match_quality: str = ""
    status_before: str = ""
    status_after: str = ""
    error: str = ""
    # The check's reasons (docs/verdicts.md) and the seller's sentence.
    reasons: list = field(default_factory=list)
    suggestion: str = ""

    FIELDS = (
        "listing_id", "title", "outcome", "title_score", "title_verdict", "description_score",
        "description_verdict", "verdict", "match_quality", "status_before", "status_after", "error",
        "reasons", "suggestion",
    )

    def as_dict(self):
        return asdict(self)


@dataclass
class AuditSummary:
    """Counts of a run (or of one chunk: they add up)."""

    checked: int = 0
    skipped: int = 0
    failed: int = 0
    flagged: int = 0
    failures: Counter = field(default_factory=Counter)  # error code → listings
    bands: Counter = field(default_factory=Counter)  # match quality → listings
    images: int = 0  # images scored (stored verdicts and embeddings may have spared the model)
    seconds: float = 0.0  # wall time of the run
    failed_chunks: list = field(default_factory=list)  # reasons whole chunks failed (distributed mode)

    def add(self, other):
        self.checked += other.checked
        self.skipped += other.skipped
        self.failed += other.failed
        self.flagged += other.flagged
        self.failures.update(other.failures)
        self.bands.update(other.bands)
        self.images += other.images
        self.failed_chunks.extend(other.failed_chunks)

    @property
    def images_per_second(self):
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def as_message(self):
        return {
            "checked": self.checked, "skipped": self.skipped, "failed": self.failed, "flagged": self.flagged,
            "failures": dict(self.failures), "bands": dict(self.bands), "images": self.images,
            "seconds": self.seconds,
        }

    @classmethod
    def from_message(cls, message):
        return cls(
            checked=message["checked"], skipped=message["skipped"], failed=message["failed"],
            flagged=message["flagged"], failures=Counter(message["failures"]), bands=Counter(message["bands"]),
            images=message["images"], seconds=message["seconds"],
        )
