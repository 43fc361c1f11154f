"""The pgvector table of image embeddings, created only where it can work.

The model is in every project's migration state, so code can name it; the
table is created only when the database is PostgreSQL with the ``vector``
extension installed (``CREATE EXTENSION vector;``, done by whoever
administers the database). On SQLite, or PostgreSQL without pgvector, this
migration creates nothing and similarity search runs in the process
(``clipcheck.vectors``). Embeddings already stored are copied in.

A database that gets the extension later: ``manage.py migrate clipcheck 0004``
then ``manage.py migrate`` creates and fills the table.
"""

from django.db import migrations, models
import pgvector.django

COPY_CHUNK = 2000


def pgvector_installed(connection):
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        return cursor.fetchone() is not None


def create_vector_table(apps, schema_editor):
    if not pgvector_installed(schema_editor.connection):
        return
    ImageVector = apps.get_model("clipcheck", "ImageVector")
    ImageEmbedding = apps.get_model("clipcheck", "ImageEmbedding")
    schema_editor.create_model(ImageVector)
    import numpy as np

    last_pk = 0
    while True:
        rows = list(ImageEmbedding.objects.filter(pk__gt=last_pk).order_by("pk")[:COPY_CHUNK])
        if not rows:
            break
        last_pk = rows[-1].pk
        ImageVector.objects.bulk_create(
            [
                ImageVector(
                    sha256=row.sha256, model=row.model, dim=row.dim,
                    embedding=np.frombuffer(bytes(row.vector), dtype="<f4"),
                )
                for row in rows
            ],
            ignore_conflicts=True,
        )


def drop_vector_table(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TABLE IF EXISTS clipcheck_imagevector")


class Migration(migrations.Migration):

    dependencies = [
        ("clipcheck", "0004_analysis_reasons"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ImageVector",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("sha256", models.CharField(max_length=64)),
                        ("model", models.CharField(max_length=255)),
                        ("dim", models.PositiveIntegerField()),
                        ("embedding", pgvector.django.VectorField()),
                    ],
                    options={
                        "constraints": [
                            models.UniqueConstraint(fields=("sha256", "model"), name="clipcheck_image_vector_unique")
                        ],
                    },
                ),
            ],
        ),
        # After the state change, so that the historical model exists here.
        migrations.RunPython(create_vector_table, drop_vector_table),
    ]
