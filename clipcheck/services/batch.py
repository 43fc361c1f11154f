"""Batch analysis of server-side images (``POST /clip/analyze-batch``)."""

from clipcheck import costs
from clipcheck.default_attributes import DEFAULT_LANGUAGE
from clipcheck.engine import get_engine
from clipcheck.errors import BatchUnavailable, ClipcheckError
from clipcheck.images import decode_image, read_batch_file
from clipcheck.models import Analysis
from clipcheck.services.analyses import AnalysisRequest, analyses_create
from clipcheck.settings import clip_settings


def batch_analyze(*, items, budget=None, language=DEFAULT_LANGUAGE):
    """Score server-side images against texts (written in ``language``), in input order.

    ``items`` are dicts with ``image_path``, ``text`` and optional
    ``threshold``, or an ``error`` already found by validation. A bad item
    gets its own ``error`` entry; the others are unaffected. Items are
    decoded and encoded ``BATCH_SIZE`` at a time so memory stays bounded.
    With a ``budget`` (``costs.RequestBudget``) the whole request is
    planned first and refused over its bound, or charged, before any file
    is read: what every item may cost, stored verdicts included.
    """
    if not clip_settings.BATCH_ROOT:
        raise BatchUnavailable("Batch analysis is disabled: CLIPCHECK BATCH_ROOT is not configured.")
    plans = _batch_plans(items=items, budget=budget, language=language)
    results: list[dict | None] = [None] * len(items)
    batch_size = int(clip_settings.BATCH_SIZE)
    for start in range(0, len(items), batch_size):
        decoded = []
        for index in range(start, min(start + batch_size, len(items))):
            item = items[index]
            if "error" in item:
                results[index] = {"image_path": item.get("image_path"), "error": item["error"]}
                continue
            try:
                image = decode_image(read_batch_file(item["image_path"]))
            except ClipcheckError as exc:
                results[index] = {"image_path": item["image_path"], "error": exc.as_dict()}
                continue
            decoded.append((index, item, image))
        if not decoded:
            continue
        analyses = analyses_create(
            requests=[
                AnalysisRequest(image=image, text=item["text"], threshold=item.get("threshold"), language=language)
                for _, item, image in decoded
            ],
            source=Analysis.Source.BATCH, plans=plans,
        )
        for (index, item, _), analysis in zip(decoded, analyses):
            results[index] = {"image_path": item["image_path"], **analysis.result()}
    return results


def _batch_plans(*, items, budget, language):
    """The texts' plans ({text: plan}), the request admitted by ``budget`` first; none without a budget."""
    texts = [item["text"] for item in items if "error" not in item]
    if budget is None or not texts:
        return {}
    plans, cost = costs.texts_plan_within(
        texts=texts, photos=len(texts), engine=get_engine(), budget=budget, language=language,
    )
    budget.admit(cost)
    return plans
