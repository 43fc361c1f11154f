"""Similarity search after Django's backup and restore (docs/operations.md#backups):
the vector table is no part of the backup and follows the restored embeddings,
on every database of the suite, PostgreSQL with pgvector included (``--pgvector``)."""

import base64
import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection

from clipcheck import vectors
from clipcheck.models import ImageEmbedding, ImageVector
from tests.support.backups import backup_and_restore
from tests.vectors.test_vectors import MODEL, pgvector_installed, store, unit_rows

pytestmark = pytest.mark.django_db(transaction=True)


def vector_rows():
    if not pgvector_installed():
        return None
    return sorted((row.sha256, row.model, row.dim, [round(float(value), 6) for value in row.embedding])
                  for row in ImageVector.objects.all())


def model_indexes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [ImageVector._meta.db_table])
        return sorted(name for name, in cursor.fetchall() if name.startswith("clipcheck_vec_"))


def test_search_answers_the_same_after_a_backup_and_restore(tmp_path):
    rows = unit_rows(60, 16, seed=7)
    store(rows)
    store(unit_rows(10, 8, seed=8), model="other/model", prefix="b")
    queries = unit_rows(5, 16, seed=9)
    before = [vectors.image_neighbours(vector=query, model=MODEL, k=6) for query in queries]
    stored = vector_rows()

    backup_and_restore(tmp_path)
    vectors.vector_backend_forget()  # a fresh process after the restore

    assert [vectors.image_neighbours(vector=query, model=MODEL, k=6) for query in queries] == before
    assert vector_rows() == stored
    if pgvector_installed():
        assert len(stored) == 70
        # Each model's HNSW index again, and the planner can use it.
        assert model_indexes() == sorted([vectors.vector_index_name(model=MODEL, dim=16),
                                          vectors.vector_index_name(model="other/model", dim=8)])
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")  # 60 rows: let the planner show it can use the index
            plan = vectors.neighbours_plan(vector=queries[0], model=MODEL, k=6)
            cursor.execute("SET enable_seqscan = on")
        assert f"Index Scan using {vectors.vector_index_name(model=MODEL, dim=16)}" in plan


def test_a_flush_leaves_no_vector_without_its_embedding():
    store(unit_rows(5, 16, seed=1))
    call_command("flush", "--no-input", stdout=io.StringIO())
    assert not ImageEmbedding.objects.exists()
    if pgvector_installed():
        assert not ImageVector.objects.exists()
    assert vectors.image_neighbours(vector=unit_rows(1, 16, seed=2)[0], model=MODEL, k=3) == []


def test_a_backup_that_holds_vector_rows_loads_and_the_vectors_come_from_the_embeddings(tmp_path):
    # What dumpdata wrote on PostgreSQL with pgvector before the vector table was kept out of backups.
    embedding = np.array([0.6, 0.8, 0.0, 0.0], dtype="<f4")
    sha256 = "c" * 64
    fixture = tmp_path / "old-backup.json"
    fixture.write_text(json.dumps([
        {"model": "clipcheck.imageembedding", "pk": 1, "fields": {
            "sha256": sha256, "model": MODEL, "dim": 4, "vector": base64.b64encode(embedding.tobytes()).decode(),
            "layout": None, "created_at": "2026-12-01T10:00:00.000Z"}},
        {"model": "clipcheck.imagevector", "pk": 1, "fields": {
            "sha256": sha256, "model": MODEL, "dim": 4, "embedding": "[1.0, 0.0, 0.0, 0.0]"}},
    ]))
    call_command("loaddata", str(fixture), stdout=io.StringIO())
    assert ImageEmbedding.objects.get().sha256 == sha256
    if pgvector_installed():
        restored, = ImageVector.objects.all()
        assert list(restored.embedding) == pytest.approx([0.6, 0.8, 0.0, 0.0])
    found, = vectors.image_neighbours(vector=embedding, model=MODEL, k=1)
    assert (found.sha256, round(found.similarity, 5)) == (sha256, 1.0)
