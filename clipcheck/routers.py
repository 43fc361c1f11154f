"""The database router of the clipcheck app (``DATABASE_ROUTERS``).

Two of its models have no table Django manages: ``ClipcheckPermissions`` (a
carrier of permissions, no table at all) and ``ImageVector`` (a search index
derived from ``ImageEmbedding``, whose table migration 0005 creates only on
PostgreSQL with pgvector). Django's data commands read every model the
routers allow, managed or not, so without this router ``manage.py dumpdata``
failed with "no such table" on SQLite and PostgreSQL without pgvector, and
a backup taken with pgvector carried a copy of every embedding that only
PostgreSQL with pgvector could load.

With it, ``dumpdata``, ``loaddata`` and ``flush`` leave both alone on every
database; ``clipcheck.vectors`` rebuilds the vector table from the restored
embeddings (docs/operations.md#backups). ``clipcheck.W006`` warns when the
router is not installed.
"""

ROUTER_PATH = "clipcheck.routers.ClipcheckRouter"


class ClipcheckRouter:
    def allow_migrate(self, db, app_label, model_name=None, **hints):
        model = hints.get("model")
        if app_label == "clipcheck" and model is not None and not model._meta.managed:
            return False
        return None
