"""The pgvector table becomes unmanaged: a search index derived from the stored
embeddings, created by 0005 only where pgvector is installed, and no part of
Django's backups (``dumpdata`` failed where the table does not exist). Nothing
changes in the database."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("clipcheck", "0010_adaptation"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="imagevector",
            options={"managed": False},
        ),
    ]
