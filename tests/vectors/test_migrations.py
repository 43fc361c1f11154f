"""Migration 0005 creates the vector table only where pgvector is installed, and fills it."""

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from clipcheck import vectors
from clipcheck.models import ImageEmbedding, ImageVector
from clipcheck.services.embeddings import image_embeddings_store
from tests.vectors.test_vectors import pgvector_installed

BEFORE = ("clipcheck", "0004_analysis_reasons")


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_migrating_back_and_forth_keeps_the_embeddings_and_rebuilds_the_vector_table():
    rows = np.eye(4, 8, dtype=np.float32)
    image_embeddings_store(vectors={f"{index:064x}": row for index, row in enumerate(rows)}, model="m")
    table = ImageVector._meta.db_table

    migrate([BEFORE])
    assert table not in connection.introspection.table_names()
    migrate(latest())
    vectors.vector_backend_forget()

    assert ImageEmbedding.objects.filter(model="m").count() == 4
    assert (table in connection.introspection.table_names()) == pgvector_installed()
    if pgvector_installed():
        # Embeddings stored before the table existed were copied in.
        assert ImageVector.objects.filter(model="m").count() == 4
    found = vectors.image_neighbours(vector=rows[2], model="m", k=1)
    assert [neighbour.sha256 for neighbour in found] == [f"{2:064x}"]
