"""clipcheck.vectors: which search path runs, and that both answer exactly what exact search answers."""

import numpy as np
import pytest
from django.db import connection

from clipcheck import vectors
from clipcheck.checks import check_vector_backend
from clipcheck.models import ImageVector
from clipcheck.services.embeddings import image_embeddings_store

MODEL = "test/model-a"


def pgvector_installed():
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        return cursor.fetchone() is not None


def unit_rows(count, dim, seed):
    rows = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def store(matrix, *, model=MODEL, prefix="a"):
    names = [f"{prefix}{index:063x}" for index in range(len(matrix))]
    image_embeddings_store(vectors=dict(zip(names, matrix)), model=model)
    return names


@pytest.mark.django_db
def test_the_path_follows_the_database():
    backend = vectors.vector_backend()
    # The vector table exists exactly where migration 0005 found the extension.
    assert (ImageVector._meta.db_table in connection.introspection.table_names()) == pgvector_installed()
    assert backend.name == (vectors.PGVECTOR if pgvector_installed() else vectors.NUMPY)
    assert backend.extension_missing == (connection.vendor == "postgresql" and not pgvector_installed())


@pytest.mark.django_db
def test_the_check_reports_the_path_and_warns_when_postgresql_lacks_pgvector():
    messages = {message.id: message.msg for message in check_vector_backend(databases=["default"])}
    assert vectors.vector_backend().name in messages["clipcheck.I001"]
    assert ("clipcheck.W005" in messages) == vectors.vector_backend().extension_missing


def test_the_check_warns_with_the_fix_when_the_extension_is_missing(monkeypatch):
    missing = vectors.VectorBackend(vectors.NUMPY, "PostgreSQL without the pgvector extension", extension_missing=True)
    monkeypatch.setattr(vectors, "vector_backend", lambda using="default": missing)
    warning = next(message for message in check_vector_backend(databases=["default"]) if message.id == "clipcheck.W005")
    assert "CREATE EXTENSION vector" in warning.hint


def test_the_check_does_not_fail_without_a_database(monkeypatch):
    def unreachable(using="default"):
        raise RuntimeError("no database")

    monkeypatch.setattr(vectors, "vector_backend", unreachable)
    assert [message.id for message in check_vector_backend(databases=["default"])] == ["clipcheck.I001"]


def test_the_check_asks_the_database_only_when_a_command_checks_it(monkeypatch):
    """Not before every command (runserver, the demo): with migrate and check --database."""
    def asked(using="default"):
        raise AssertionError("the database was asked")

    monkeypatch.setattr(vectors, "vector_backend", asked)
    assert check_vector_backend() == [] and check_vector_backend(databases=None) == []


@pytest.mark.django_db
def test_neighbours_are_the_exact_nearest_most_similar_first():
    matrix = unit_rows(300, 32, seed=1)
    names = store(matrix)
    query = unit_rows(1, 32, seed=2)[0]
    exact = np.argsort(-(matrix @ query))[:10]

    found = vectors.image_neighbours(vector=query, model=MODEL, k=10)

    # 300 vectors: HNSW with ef_search 100 visits them all, so even the index is exact here.
    assert [neighbour.sha256 for neighbour in found] == [names[index] for index in exact]
    assert [neighbour.similarity for neighbour in found] == pytest.approx([float(matrix[i] @ query) for i in exact], abs=1e-5)


@pytest.mark.django_db
def test_vectors_of_another_model_or_dimension_are_never_compared():
    query = unit_rows(1, 32, seed=3)[0]
    store(np.stack([query]), model="test/other-model", prefix="b")
    store(unit_rows(5, 16, seed=4), prefix="c")  # same model id, another dimension
    mine = store(unit_rows(5, 32, seed=5), prefix="d")

    found = vectors.image_neighbours(vector=query, model=MODEL, k=10)

    assert {neighbour.sha256 for neighbour in found} == set(mine)


@pytest.mark.django_db
def test_within_exclude_and_min_similarity_restrict_the_answer():
    matrix = unit_rows(50, 32, seed=6)
    names = store(matrix)
    query = matrix[0]

    within = vectors.image_neighbours(vector=query, model=MODEL, k=5, within=names[10:20])
    excluded = vectors.image_neighbours(vector=query, model=MODEL, k=5, exclude=[names[0]])
    close = vectors.image_neighbours(vector=query, model=MODEL, k=5, min_similarity=0.99)

    assert {neighbour.sha256 for neighbour in within} <= set(names[10:20]) and len(within) == 5
    assert names[0] not in {neighbour.sha256 for neighbour in excluded} and len(excluded) == 5
    assert [neighbour.sha256 for neighbour in close] == [names[0]]


@pytest.mark.pgvector
@pytest.mark.django_db
def test_pgvector_keeps_one_hnsw_index_per_model_and_dimension_and_queries_use_it():
    assert vectors.vector_backend().name == vectors.PGVECTOR
    store(unit_rows(200, 32, seed=7))
    store(unit_rows(20, 16, seed=8), model="test/model-b", prefix="e")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [ImageVector._meta.db_table])
        indexes = dict(cursor.fetchall())
    for model, dim in ((MODEL, 32), ("test/model-b", 16)):
        definition = indexes[vectors.vector_index_name(model=model, dim=dim)]
        assert "USING hnsw" in definition and f"vector({dim})" in definition and "vector_cosine_ops" in definition
        assert f"'{model}'" in definition

    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # 200 rows: let the planner show it can use the index
        plan = vectors.neighbours_plan(vector=unit_rows(1, 32, seed=9)[0], model=MODEL, k=10)
        cursor.execute("SET enable_seqscan = on")
    assert f"Index Scan using {vectors.vector_index_name(model=MODEL, dim=32)}" in plan


@pytest.mark.pgvector
@pytest.mark.django_db
def test_pgvector_stores_a_copy_of_every_embedding_once():
    matrix = unit_rows(3, 32, seed=10)
    names = store(matrix)
    store(matrix)  # stored again: kept once

    rows = {row.sha256: row for row in ImageVector.objects.filter(model=MODEL)}
    assert set(rows) == set(names)
    assert np.allclose(rows[names[0]].embedding, matrix[0], atol=1e-6) and rows[names[0]].dim == 32
