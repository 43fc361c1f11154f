"""``python -m bench.vectors --smoke`` runs its search parts end to end (timings are never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.pgvector
def test_the_similarity_bench_measures_pgvector_against_exact_search_and_the_numpy_path(tmp_path):
    out = tmp_path / "vectors.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.vectors", "--smoke", "--only", "pgvector", "--only", "numpy", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    pgvector = results["pgvector"]
    assert pgvector["vectors"] == 2000 and pgvector["index_used"] is True
    assert pgvector["index_build_s"] > 0 and pgvector["index_mb"] > 0
    for row in ("hnsw_ef40", "hnsw_ef100", "exact_scan"):
        assert pgvector["rows"][row]["p50_ms"] > 0
    # Exact search is exact; the index finds nearly all of the true neighbours.
    assert pgvector["rows"]["exact_scan"]["recall_at_10"] == 1.0
    assert pgvector["rows"]["hnsw_ef100"]["recall_at_10"] >= 0.9
    assert results["numpy"]["rows"]["numpy_exact"]["recall_at_10"] == 1.0
    assert "queries use the index: yes" in result.stdout
