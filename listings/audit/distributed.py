"""The distributed audit: chunks sent to Celery workers on the ``clip`` queue.

The command plans chunks as the local audit does (``audit_chunks``) and
sends one ``listings.tasks.audit_chunk_task`` per chunk; each worker runs
``listings.audit.local.audit_chunk``. The Celery app is whichever the
process configured (``celery.current_app``): this app never imports its
project.
"""

import time
from dataclasses import dataclass

from celery import current_app
from celery.result import GroupResult
from celery.utils import uuid

from listings.audit.local import audit_chunks
from listings.audit.records import AuditMisconfigured, AuditRow, AuditSummary
from listings.settings import listings_settings
from listings.tasks import AUDIT_QUEUE, audit_chunk_task


@dataclass
class AuditEnqueued:
    group_id: str
    results: list  # AsyncResult per chunk, in pk order
    sizes: dict  # task id → listings in that chunk

    @property
    def listings(self):
        return sum(self.sizes.values())


def audit_broker_check():
    """Raise ``AuditMisconfigured`` unless the broker and result backend answer;
    returns how many running workers consume the audit queue."""
    app = current_app
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
        backend_client = getattr(app.backend, "client", None)  # the Redis result backend
        if backend_client is not None:
            backend_client.ping()
    except Exception as exc:  # kombu and redis raise their own errors
        raise AuditMisconfigured(
            f"The Celery broker {app.conf.broker_url!r} cannot be reached: {exc.__class__.__name__}: {exc}"
        ) from exc
    queues = app.control.inspect(timeout=1.0).active_queues() or {}
    return sum(1 for consumed in queues.values() if any(queue["name"] == AUDIT_QUEUE for queue in consumed))


def audit_enqueue(*, options, summary, with_rows=False):
    """Send the listings that need checking to the workers, one task per chunk.

    Chunks are planned as in ``audit_run`` (keyset pages, up-to-date
    listings counted in ``summary.skipped``) and sent as they are found, so
    workers start while the planning goes on. The chunks form a saved
    ``GroupResult`` whose id names the audit.
    """
    message = options.as_message()
    results, sizes = [], {}
    for chunk in audit_chunks(options=options, summary=summary):
        result = audit_chunk_task.apply_async(
            args=[[listing.pk for listing in chunk], message, with_rows],
            # A chunk stuck past the stall limit is killed by its worker's pool (the GIL may be held)
            # and reported as failed; its listings are checked again by the next run.
            time_limit=float(listings_settings.AUDIT_STALL_SECONDS) or None,
        )
        results.append(result)
        sizes[result.id] = len(chunk)
    group = GroupResult(id=uuid(), results=results)
    group.save()
    return AuditEnqueued(group_id=group.id, results=results, sizes=sizes)


def audit_wait(*, enqueued, on_chunk, poll_seconds=0.5):
    """Wait for every chunk of ``enqueued``; ``on_chunk(summary, rows)`` per chunk as it finishes.

    A chunk whose task failed gets a summary with its reason in ``failed_chunks``.
    """
    pending = list(enqueued.results)
    while pending:
        waiting = []
        for result in pending:
            if not result.ready():
                waiting.append(result)
                continue
            if result.successful():
                payload = result.get(propagate=False)
                rows = [AuditRow(**row) for row in payload["rows"]]
                on_chunk(AuditSummary.from_message(payload["summary"]), rows)
            else:
                reason = f"{enqueued.sizes[result.id]} listings: {result.result!r}"
                on_chunk(AuditSummary(failed_chunks=[reason]), [])
            result.forget()
        pending = waiting
        if pending:
            time.sleep(poll_seconds)
