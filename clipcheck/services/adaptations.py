"""The model's active category adaptation: read (cached), promoted, rolled back.

A serving process reads the active adaptation at most once per
``CALIBRATION_CACHE_SECONDS`` (``clipcheck.expiring``), as it reads
calibrated thresholds: a promotion or a rollback reaches every process
within that time, without a restart. The head's arrays are decoded at each
read (milliseconds).
"""

from dataclasses import dataclass

from django.db import DatabaseError, transaction
from django.utils import timezone

from clipcheck import selectors
from clipcheck.adaptation import CategoryHead
from clipcheck.errors import ClipcheckError
from clipcheck.expiring import ExpiringCache
from clipcheck.models import Adaptation
from clipcheck.services.thresholds import model_id


class AdaptationError(ClipcheckError):
    status_code = 400
    code = "adaptation_unavailable"


@dataclass(frozen=True)
class ActiveAdaptation:
    version: int
    head: CategoryHead
    created_at: object
    metrics: dict

    def covers(self, categories):
        """Whether the head judges every one of ``categories`` (else the zero-shot prompts do)."""
        return set(categories) <= set(self.head.categories)


_active = ExpiringCache()  # model -> ActiveAdaptation or None


def adaptation_active(*, model=None):
    """The active adaptation of ``model`` (the current one by default), or None."""
    model = model or model_id()

    def read():
        row = selectors.adaptation_active_get(model=model)
        if row is None:
            return None
        return ActiveAdaptation(
            version=row.version, head=CategoryHead.from_bytes(row.head), created_at=row.created_at, metrics=row.metrics,
        )

    return _active.get(model, read)


def adaptation_active_row(*, model=None):
    """The active ``Adaptation`` row itself, read now (commands)."""
    return selectors.adaptation_active_get(model=model or model_id())


def adaptation_summary():
    """The active adaptation in a few fields for health; None without one, or when the
    database cannot be read (health answers without the database)."""
    try:
        active = adaptation_active()
    except DatabaseError:
        return None
    if active is None:
        return None
    accuracy = active.metrics.get("overall", {}).get("accuracy", {})
    return {
        "version": active.version, "categories": len(active.head.categories), "promoted_at": active.created_at,
        "held_out_accuracy": accuracy.get("after"),
    }


def adaptation_forget():
    _active.clear()


@transaction.atomic
def adaptation_promote(*, head, label_digest, labels, metrics, created_by="", model=None, reference=None):
    """Store ``head`` as the next version of ``model``'s adaptation and make it the active one."""
    model = model or model_id()
    # Locks the model's rows (PostgreSQL): two promotions never take one version.
    latest = list(Adaptation.objects.select_for_update().filter(model=model).values_list("version", flat=True))
    Adaptation.objects.filter(model=model, active=True).update(active=False, deactivated_at=timezone.now())
    promoted = Adaptation.objects.create(
        model=model, version=(max(latest) if latest else 0) + 1, active=True, categories=list(head.categories),
        head=head.to_bytes(), label_digest=label_digest, labels=labels, metrics=metrics, created_by=created_by,
        reference=reference or {},
    )
    # This process at once (and again once committed); the others within CALIBRATION_CACHE_SECONDS.
    transaction.on_commit(adaptation_forget)
    adaptation_forget()
    return promoted


@transaction.atomic
def adaptation_rollback(*, model=None):
    """Retire ``model``'s active adaptation and make the version before it active again.

    Returns ``(retired, restored)``; ``restored`` is None when the retired
    one was the first (the zero-shot prompts judge again).
    """
    model = model or model_id()
    current = Adaptation.objects.select_for_update().filter(model=model, active=True).first()
    if current is None:
        raise AdaptationError(f"The model {model!r} has no active adaptation to roll back.")
    current.active, current.deactivated_at = False, timezone.now()
    current.save(update_fields=["active", "deactivated_at"])
    restored = selectors.adaptation_before(model=model, version=current.version)
    if restored is not None:
        restored.active, restored.deactivated_at = True, None
        restored.save(update_fields=["active", "deactivated_at"])
    transaction.on_commit(adaptation_forget)
    adaptation_forget()
    return current, restored


