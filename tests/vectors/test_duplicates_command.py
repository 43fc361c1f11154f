"""manage.py clip_duplicates: clusters of near-duplicate photos, as a CSV or JSON report, resumable."""

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from listings import duplicates
from tests.vectors.test_photo_reused import photo

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("clip_duplicates", "--no-progress", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def shared_photos(make_listing, everything_matches):
    """Two clusters (three listings with one photo or a mirrored copy; two with another) and a loner."""
    first = photo(spot=(4, 4))
    second = photo(spot=(38, 26))
    return {
        "a": [make_listing(title="a1", photo=first), make_listing(title="a2", photo=first),
              make_listing(title="=HYPERLINK(\"http://x\")", photo=photo(spot=(4, 4), mirrored=True))],
        "b": [make_listing(title="b1", photo=second), make_listing(title="b2", photo=second)],
        "alone": make_listing(title="alone", photo=photo(spot=(20, 30))),
    }


def test_the_json_report_lists_each_cluster_with_its_listings(shared_photos, tmp_path):
    out, _ = run("--report", str(tmp_path / "dups.json"))

    clusters = json.loads((tmp_path / "dups.json").read_text())
    members = sorted(sorted(item["listing_id"] for item in cluster["listings"]) for cluster in clusters)
    assert members == sorted([sorted(l.pk for l in shared_photos["a"]), sorted(l.pk for l in shared_photos["b"])])
    assert [cluster["size"] for cluster in clusters] == [3, 2]  # largest first
    assert all(pair["similarity"] >= 0.8 for cluster in clusters for pair in cluster["pairs"])
    assert "2 cluster(s)" in out


def test_the_csv_report_has_one_row_per_listing_and_no_formulas(shared_photos, tmp_path):
    run("--report", str(tmp_path / "dups.csv"))

    rows = list(csv.DictReader((tmp_path / "dups.csv").open(encoding="utf-8")))
    assert len(rows) == 5
    assert {row["title"] for row in rows} >= {"a1", "b2", "'=HYPERLINK(\"http://x\")"}
    assert not any(value.startswith(("=", "+", "-", "@")) for row in rows for value in row.values())


def test_a_stopped_run_resumes_after_the_last_chunk_it_saved(shared_photos, tmp_path, monkeypatch):
    report, state = tmp_path / "dups.json", tmp_path / "state.json"
    chunks_done = []
    real_chunk = duplicates.duplicates_chunk

    def failing_second_chunk(*, listings, state):
        if len(chunks_done) == 1:
            raise KeyboardInterrupt
        chunks_done.append([listing.pk for listing in listings])
        return real_chunk(listings=listings, state=state)

    monkeypatch.setattr(duplicates, "duplicates_chunk", failing_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        run("--report", str(report), "--state", str(state), "--chunk-size", "2")
    saved = json.loads(state.read_text())
    assert saved["last_pk"] == chunks_done[0][-1] and not saved["done"]

    seen = []
    monkeypatch.setattr(duplicates, "duplicates_chunk", lambda *, listings, state: (
        seen.extend(listing.pk for listing in listings), real_chunk(listings=listings, state=state))[1])
    out, _ = run("--report", str(report), "--state", str(state), "--chunk-size", "2")

    assert "Resuming after listing" in out
    assert min(seen) > chunks_done[0][-1]  # the first chunk was not done again
    assert len(json.loads(report.read_text())) == 2


def test_union_find_joins_chains_into_one_cluster():
    union = duplicates.UnionFind()
    for first, second in ((1, 2), (3, 4), (2, 3), (7, 8)):
        union.union(first, second)

    assert sorted(sorted(group) for group in union.groups()) == [[1, 2, 3, 4], [7, 8]]


@pytest.mark.parametrize("report", ["dups.txt", "missing-dir/dups.csv"])
def test_a_bad_report_path_is_refused(report, tmp_path, db):
    with pytest.raises(CommandError):
        run("--report", str(tmp_path / report))
