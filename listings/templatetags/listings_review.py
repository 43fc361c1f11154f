"""Template tags of the review workbench: the queue on the admin index, the reason codes."""

from datetime import timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from clipcheck.reasons import reason_label
from listings import review
from listings.appeals import appeal_queue_stats

register = template.Library()


@register.inclusion_tag("admin/listings/review/queue_summary.html", takes_context=True)
def review_queue_summary(context):
    """Queue size and the oldest waiting listing's age, and the same of the sellers' appeals, for users who
    moderate."""
    request = context.get("request")
    if request is None or not request.user.has_perm("listings.moderate_listing"):
        return {"queue": None}
    stats, appeals = review.review_queue_stats(), appeal_queue_stats()
    now = timezone.now()
    return {
        "queue": stats, "oldest": timesince(now - timedelta(seconds=stats.oldest_seconds), now),
        "appeals": appeals, "oldest_appeal": timesince(now - timedelta(seconds=appeals.oldest_seconds), now),
    }


@register.simple_tag
def review_reason_codes():
    return review.review_reason_codes()


@register.filter
def reason_words(code):
    """A reason code as people read it ("wrong_photo" → "Wrong photo")."""
    return reason_label(code)
