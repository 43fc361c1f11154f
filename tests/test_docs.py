"""The README stays a starting point: short, the commands CI runs, and a link to every page of docs/."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(path):
    return [target for target in LINK.findall(path.read_text()) if "://" not in target]


def test_the_readme_is_at_most_150_lines():
    assert len(README.read_text().splitlines()) <= 150


def test_the_readme_test_command_is_what_ci_runs():
    assert "scripts/test.sh" in README.read_text()
    assert re.search(r"^scripts/test\.sh$", (REPO / ".ci" / "run").read_text(), re.M)
    assert "manage.py clip_demo" in README.read_text()


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / target).resolve() for target in relative_links(README)}
    pages = set((REPO / "docs").glob("*.md"))
    assert {page.resolve() for page in pages} - linked == set()


def test_relative_links_in_the_readme_and_docs_resolve():
    for document in [README, *(REPO / "docs").glob("*.md")]:
        for target in relative_links(document):
            assert (document.parent / target).exists(), f"{document.name}: {target}"


def test_the_reason_table_of_verdicts_md_is_the_registrys():
    from clipcheck.reasons import reasons_table

    table = reasons_table()
    assert table in (REPO / "docs" / "verdicts.md").read_text(), f"docs/verdicts.md's reason table should be:\n{table}"


def test_the_module_map_names_every_module_of_both_apps():
    """docs/architecture.md's tables: every module of clipcheck/ and listings/ is in its app's section."""
    doc = (REPO / "docs" / "architecture.md").read_text()
    missing = []
    for app in ("clipcheck", "listings"):
        start = doc.index(f"## `{app}/`")
        end = doc.find("\n## ", start + 5)
        section = doc[start:end if end > 0 else None]
        for path in sorted((REPO / app).rglob("*.py")):
            relative = path.relative_to(REPO / app)
            if relative.name in ("__init__.py", "apps.py") or relative.parts[0] == "migrations":
                continue
            named = f"`{relative.as_posix()}`" in section or f"`{relative.name}`" in section
            in_package = len(relative.parts) > 1 and (relative.stem in section)
            if not (named or in_package):
                missing.append(f"{app}/{relative.as_posix()}")
    assert missing == [], f"add these modules to docs/architecture.md: {missing}"


def test_the_analyze_examples_show_every_field_of_the_answer():
    import json

    from clipcheck.api.serializers import AnalyzeResultSerializer

    fields = list(AnalyzeResultSerializer().fields)
    for page in (README, REPO / "docs" / "api.md"):
        example = re.search(r'```json\n(\{"is_mismatch".*?\})\n```', page.read_text(), re.S).group(1)
        assert list(json.loads(example)) == fields, page.name
