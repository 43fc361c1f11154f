"""Nearest-neighbour search over stored image embeddings: the one place that
decides how it runs.

- ``pgvector``: the database is PostgreSQL with the ``vector`` extension and
  the ``clipcheck_imagevector`` table (created by migration 0005 when the
  extension was there). Embeddings are copied into a ``vector`` column and
  searched by cosine distance through a partial HNSW index per model and
  dimension (``embedding::vector(dim)`` where ``model = …``), so vectors of
  another model are never compared and each checkpoint keeps its own
  dimension.
- ``numpy``: anything else (the embedded SQLite default, PostgreSQL without
  pgvector). The stored ``ImageEmbedding`` bytes of the model are read and
  searched exactly in the process: fine for a demo catalogue of thousands of
  photos, not for a marketplace.

``manage.py migrate`` and ``check --database default`` report which one is
active (``clipcheck.I001``) and warn when PostgreSQL lacks the extension
(``clipcheck.W005``).
"""

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from clipcheck import metrics
from clipcheck.models import ImageEmbedding, ImageVector
from clipcheck.settings import clip_settings

logger = logging.getLogger(__name__)

PGVECTOR = "pgvector"
NUMPY = "numpy"
VECTOR_TABLE = ImageVector._meta.db_table
# pgvector releases from which HNSW scans keep going until enough rows pass
# a filter (hnsw.iterative_scan).
ITERATIVE_SCAN_VERSION = (0, 8)

Vector = npt.NDArray[np.float32]
# What callers hand in: a vector of any float dtype, or its values.
VectorLike = npt.NDArray[np.floating[Any]] | Sequence[float]


@dataclass(frozen=True)
class VectorBackend:
    name: str  # PGVECTOR or NUMPY
    reason: str  # why, in words
    extension_version: str | None = None  # pgvector's, when installed
    # PostgreSQL where the extension is available or installed but the table missing.
    extension_missing: bool = False

    @property
    def iterative_scan(self) -> bool:
        if not self.extension_version:
            return False
        parts = tuple(int(part) for part in self.extension_version.split(".")[:2] if part.isdigit())
        return parts >= ITERATIVE_SCAN_VERSION


@dataclass(frozen=True)
class Neighbour:
    sha256: str
    similarity: float  # cosine of the two unit embeddings


ConnectionKey = tuple[str, str, str]  # alias, vendor, database name

_backends: dict[ConnectionKey, VectorBackend] = {}
_indexed: set[tuple[str, str, str, str, int]] = set()  # connection key, model, dim
_lock = threading.Lock()


def _connection_key(connection: BaseDatabaseWrapper) -> ConnectionKey:
    return connection.alias, connection.vendor, str(connection.settings_dict.get("NAME"))


def vector_backend(using: str = DEFAULT_DB_ALIAS) -> VectorBackend:
    """The ``VectorBackend`` of the database ``using``; looked up once per process."""
    connection = connections[using]
    key = _connection_key(connection)
    backend = _backends.get(key)
    if backend is None:
        backend = _detect(connection)
        with _lock:
            _backends[key] = backend
    return backend


def vector_backend_forget() -> None:
    """Look the backend up again on next use (after a migration, in tests)."""
    with _lock:
        _backends.clear()
        _indexed.clear()


def _detect(connection: BaseDatabaseWrapper) -> VectorBackend:
    if connection.vendor != "postgresql":
        return VectorBackend(NUMPY, f"{connection.display_name} has no vector index: exact search in the process")
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        installed = cursor.fetchone()
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [VECTOR_TABLE])
        table = cursor.fetchone()[0]
    if installed is None:
        return VectorBackend(
            NUMPY, "PostgreSQL without the pgvector extension: exact search in the process", extension_missing=True
        )
    if not table:
        return VectorBackend(
            NUMPY,
            f"pgvector {installed[0]} is installed but the {VECTOR_TABLE} table is missing (the extension came "
            "after migration 0005): exact search in the process",
            extension_version=installed[0], extension_missing=True,
        )
    return VectorBackend(PGVECTOR, f"PostgreSQL with pgvector {installed[0]}: HNSW index, cosine distance",
                         extension_version=installed[0])


def stored_vector_intact(*, sha256: str, model: str, data: bytes, dim: int, kind: str = "embedding") -> bool:
    """Whether a stored float32 vector's bytes match its dimension. A row that
    does not (a bad restore, a manual edit) is reported, logged and counted in
    ``clipcheck_corrupt_stored_vectors``, so that its readers skip it instead of
    failing every search and upload."""
    if len(data) == 4 * dim:
        return True
    logger.error(
        "Stored image %s %s of model %r is corrupt: %d bytes where %d float32 values take %d; skipped. "
        "Delete the ImageEmbedding row to have it computed again.",
        kind, sha256, model, len(data), dim, 4 * dim,
    )
    metrics.CORRUPT_STORED_VECTORS.labels(kind=kind).inc()
    return False


# Writes


def vectors_store(*, vectors: Mapping[str, VectorLike], model: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Make ``{sha256: unit vector}`` of ``model`` searchable.

    Under pgvector they are copied into the vector table (rows already there
    are kept) and the model's HNSW index is created if it is missing; the
    numpy path searches ``ImageEmbedding`` itself and needs nothing.
    """
    if not vectors or vector_backend(using).name != PGVECTOR:
        return
    dims = {len(vector) for vector in vectors.values()}
    for dim in dims:
        vector_index_ensure(model=model, dim=dim, using=using)
    ImageVector.objects.using(using).bulk_create(
        [
            ImageVector(sha256=sha256, model=model, dim=len(vector), embedding=np.asarray(vector, dtype=np.float32))
            for sha256, vector in vectors.items()
        ],
        ignore_conflicts=True,
    )


def vector_index_name(*, model: str, dim: int) -> str:
    digest = hashlib.sha256(model.encode("utf-8")).hexdigest()[:12]
    return f"clipcheck_vec_{digest}_{dim}"


def vector_index_sql(*, model: str, dim: int, quote: Callable[[Any], str]) -> str:
    """The HNSW index of one model's vectors: over ``embedding::vector(dim)``
    with cosine distance, partial on ``model`` and ``dim`` (literals: a partial index
    predicate takes no parameters)."""
    name = vector_index_name(model=model, dim=dim)
    return (
        f"CREATE INDEX IF NOT EXISTS {name} ON {VECTOR_TABLE} "
        f"USING hnsw ((embedding::vector({int(dim)})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
        f"WHERE model = {quote(model)} AND dim = {int(dim)}"
    )


def vector_index_ensure(*, model: str, dim: int, using: str = DEFAULT_DB_ALIAS) -> None:
    """Create the HNSW index of ``model`` at ``dim`` unless it exists (once per process).

    It is created when the model's first vector is stored, while few or no
    rows match its condition, so the build is quick; later inserts keep it
    up to date.
    """
    connection = connections[using]
    key = (*_connection_key(connection), model, dim)
    if key in _indexed:
        return
    with connection.schema_editor(atomic=False) as editor:
        statement = vector_index_sql(model=model, dim=dim, quote=editor.quote_value)
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(statement)
    except (IntegrityError, DatabaseError):
        # Another process created it at the same moment; if not, the next
        # store tries again (and queries are still right, only slower).
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [vector_index_name(model=model, dim=dim)])
            if not cursor.fetchone()[0]:
                raise
    with _lock:
        _indexed.add(key)


# Reads


def image_neighbours(
    *, vector: VectorLike, model: str, k: int, within: Iterable[str] | None = None, exclude: Iterable[str] = (),
    min_similarity: float | None = None, using: str = DEFAULT_DB_ALIAS,
) -> list[Neighbour]:
    """The ``k`` stored images of ``model`` nearest to ``vector``, most similar first.

    ``within``: only these image hashes (an iterable or a queryset of
    ``sha256`` values); ``exclude``: never these. ``min_similarity``: drop
    neighbours below it. Only vectors of ``model`` and of the same dimension
    are compared.
    """
    vector = np.asarray(vector, dtype=np.float32)
    if k < 1:
        return []
    backend = vector_backend(using)
    if backend.name == PGVECTOR:
        found = _pgvector_neighbours(vector, model, k, within, exclude, min_similarity, backend, using)
    else:
        found = _numpy_neighbours(vector, model, k, within, exclude, min_similarity, using)
    return found


def _pgvector_rows(
    vector: Vector, model: str, k: int, within: Iterable[str] | None, exclude: Iterable[str], using: str
) -> QuerySet[Any]:
    dim = len(vector)
    # The expression of the model's HNSW index, so that the planner uses it.
    distance = CosineDistance(Cast("embedding", VectorField(dimensions=dim)), vector)
    rows = ImageVector.objects.using(using).filter(model=model, dim=dim)
    if within is not None:
        rows = rows.filter(sha256__in=within)
    if exclude:
        rows = rows.exclude(sha256__in=list(exclude))
    return rows.annotate(distance=distance).order_by("distance").values_list("sha256", "distance")[:k]


def _search_settings(cursor: CursorWrapper, *, k: int, filtered: bool, backend: VectorBackend) -> None:
    # is_local=true (SET LOCAL): they end with the caller's transaction.
    ef_search = min(max(int(clip_settings.VECTOR_EF_SEARCH), k), 1000)
    cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
    if backend.iterative_scan and filtered:
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")


def neighbours_plan(
    *, vector: VectorLike, model: str, k: int, within: Iterable[str] | None = None, exclude: Iterable[str] = (),
    using: str = DEFAULT_DB_ALIAS,
) -> str:
    """PostgreSQL's plan for ``image_neighbours`` (pgvector path): shows the HNSW index at work."""
    rows = _pgvector_rows(np.asarray(vector, dtype=np.float32), model, k, within, exclude, using)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        _search_settings(cursor, k=k, filtered=within is not None or bool(exclude), backend=vector_backend(using))
        return rows.explain()


def _pgvector_neighbours(
    vector: Vector, model: str, k: int, within: Iterable[str] | None, exclude: Iterable[str],
    min_similarity: float | None, backend: VectorBackend, using: str,
) -> list[Neighbour]:
    rows = _pgvector_rows(vector, model, k, within, exclude, using)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        _search_settings(cursor, k=k, filtered=within is not None or bool(exclude), backend=backend)
        found = list(rows)
    # relaxed_order may return rows slightly out of order.
    neighbours = sorted((Neighbour(sha256, 1.0 - float(distance)) for sha256, distance in found),
                        key=lambda neighbour: -neighbour.similarity)
    if min_similarity is not None:
        neighbours = [neighbour for neighbour in neighbours if neighbour.similarity >= min_similarity]
    return neighbours


def _numpy_neighbours(
    vector: Vector, model: str, k: int, within: Iterable[str] | None, exclude: Iterable[str],
    min_similarity: float | None, using: str,
) -> list[Neighbour]:
    rows = ImageEmbedding.objects.using(using).filter(model=model, dim=len(vector))
    if within is not None:
        rows = rows.filter(sha256__in=within)
    if exclude:
        rows = rows.exclude(sha256__in=list(exclude))
    hashes: list[str] = []
    blobs: list[bytes] = []
    for sha256, blob in rows.values_list("sha256", "vector").iterator(chunk_size=2000):
        blob = bytes(blob)
        if stored_vector_intact(sha256=sha256, model=model, data=blob, dim=len(vector)):
            hashes.append(sha256)
            blobs.append(blob)
    if not hashes:
        return []
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(hashes), len(vector))
    similarities = matrix @ vector
    count = min(k, len(hashes))
    top = np.argpartition(-similarities, count - 1)[:count]
    top = top[np.argsort(-similarities[top], kind="stable")]
    neighbours = [Neighbour(hashes[index], float(similarities[index])) for index in top]
    if min_similarity is not None:
        neighbours = [neighbour for neighbour in neighbours if neighbour.similarity >= min_similarity]
    return neighbours


# Backups and restores: the vector table is derived from ImageEmbedding, no
# part of a backup (ImageVector is unmanaged), and kept equal to it here.


def vectors_loaded(
    sender: type[ImageEmbedding], instance: ImageEmbedding, raw: bool = False, using: str = DEFAULT_DB_ALIAS,
    **kwargs: Any,
) -> None:
    """``post_save`` of ``ImageEmbedding``: a row loaded from a fixture
    (``loaddata``, ``raw``) becomes searchable. The services store vectors
    themselves after their bulk inserts, which send no signal."""
    if not raw or len(bytes(instance.vector)) != 4 * instance.dim:
        return  # a corrupt row is reported by its readers, never indexed
    vectors_store(vectors={instance.sha256: instance.as_array()}, model=instance.model, using=using)


def vectors_prune(*, using: str = DEFAULT_DB_ALIAS) -> int:
    """Delete the vectors whose embedding is gone (after ``flush``, which leaves
    the unmanaged vector table alone); returns how many."""
    vector_backend_forget()  # the table may have come or gone with a migration
    if vector_backend(using).name != PGVECTOR:
        return 0
    embedding = ImageEmbedding.objects.using(using).filter(sha256=OuterRef("sha256"), model=OuterRef("model"))
    deleted, _ = ImageVector.objects.using(using).exclude(Exists(embedding)).delete()
    return deleted


def vectors_after_migrate(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """``post_migrate`` of this app, sent by ``migrate`` and ``flush``."""
    vectors_prune(using=using)
