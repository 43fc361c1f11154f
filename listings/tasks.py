"""Celery tasks of the listings app: thin wrappers over ``listings.audit.local``.

They run in workers of the project's Celery app on the ``clip`` queue
(``celery -A <project> worker -Q clip``, docs/audit.md);
``get_engine()`` keeps the model resident in each worker process from its
first task on.
"""

from celery import shared_task

from listings.audit.local import audit_chunk
from listings.audit.records import AuditOptions

AUDIT_QUEUE = "clip"


@shared_task(name="listings.audit_chunk", acks_late=True, reject_on_worker_lost=True)
def audit_chunk_task(listing_ids, options, with_rows=False):
    """Check one chunk of an audit; returns its counts (and report rows when asked).

    Acknowledged only when done: a chunk whose worker dies is delivered
    again, and ``audit_chunk`` skips whatever was already stored.
    """
    summary, rows = audit_chunk(listing_ids=listing_ids, options=AuditOptions.from_message(options))
    return {"summary": summary.as_message(), "rows": [row.as_dict() for row in rows] if with_rows else []}
