"""Stored labels follow the threshold-relative bands (clipcheck.scoring.band_bounds).

Labels stored before were absolute bands: a mismatch under a high threshold
could read "excellent". Each analysis's label is recomputed from its own
score and threshold; the API computes it on read as well.
"""

from django.db import migrations


def recompute_labels(apps, schema_editor):
    from clipcheck.scoring import match_quality

    Analysis = apps.get_model("clipcheck", "Analysis")
    last_pk, changed = 0, []
    while True:
        rows = list(
            Analysis.objects.filter(pk__gt=last_pk).order_by("pk").only("pk", "similarity_score", "threshold", "match_quality")[:2000]
        )
        if not rows:
            break
        for row in rows:
            label = match_quality(row.similarity_score, row.threshold)
            if label != row.match_quality:
                row.match_quality = label
                changed.append(row)
        Analysis.objects.bulk_update(changed, ["match_quality"])
        changed, last_pk = [], rows[-1].pk


class Migration(migrations.Migration):

    dependencies = [
        ("clipcheck", "0007_analysis_passages_rules"),
    ]

    operations = [migrations.RunPython(recompute_labels, migrations.RunPython.noop)]
