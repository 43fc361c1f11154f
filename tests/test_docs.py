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


def test_the_configuration_tables_are_the_declared_settings():
    """docs/configuration.md's settings, environment and check tables are the rendering of the apps' declared
    tables (``clipcheck.settings_table``)."""
    from clipcheck.settings_table import documented_blocks, markdown_blocks

    documented = documented_blocks((REPO / "docs" / "configuration.md").read_text())
    assert documented == markdown_blocks(), (
        "regenerate: DJANGO_SETTINGS_MODULE=clipproject.settings .venv/bin/python -m clipcheck.settings_table "
        "--write docs/configuration.md"
    )


def environment_variables_read(path):
    """The names of the environment variables a settings module reads by name."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            receiver = function.value if isinstance(function, ast.Attribute) else None
            reads = called in ("env_bool", "env_list") or (
                called == "get" and ast.unparse(receiver) in ("os.environ", "environ")
            )
            if reads:
                names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ" and isinstance(
            node.slice, ast.Constant
        ):
            names.add(node.slice.value)
    return names


def test_every_environment_variable_the_project_reads_is_in_the_configuration_page():
    page = (REPO / "docs" / "configuration.md").read_text()
    section = page[page.index("## Environment variables"):page.index("## System checks")]
    read = set()
    for module in ("settings.py", "settings_production.py"):
        read |= environment_variables_read(REPO / "clipproject" / module)
    assert sorted(name for name in read if f"`{name}`" not in section) == []


SETTING_CELL = re.compile(r'`(?:(CLIPCHECK|LISTINGS)\["([A-Z0-9_]+)"\]|\["([A-Z0-9_]+)"\]|([A-Z][A-Z0-9_]+))`')
CHECK_MENTION = re.compile(r"\b(?:(clipcheck|listings)\.)?([EWI]\d{3})\b")


def test_settings_rows_elsewhere_in_the_docs_agree_with_the_declarations():
    """A row of a settings table (its first column: key, setting, CLIPCHECK...) on any other page shows the
    declared default (when it names one key and its second cell starts with a literal) and names only checks
    that report the keys it names."""
    from clipcheck.settings_table import literal, settings_tables

    tables = {table.name: table for table in settings_tables()}
    owners = {setting.key: table for table in tables.values() for setting in table.settings}
    problems = []
    for page in sorted((REPO / "docs").glob("*.md")):
        if page.name == "configuration.md":
            continue
        settings_table, previous = False, ""
        for line in page.read_text().splitlines():
            cells = [part.strip() for part in line.strip().strip("|").split(" | ")] if line.startswith("| ") else []
            if cells and not previous.startswith("|"):  # a table's header: is it one of settings?
                settings_table = any(word in cells[0].lower() for word in ("key", "setting", "clipcheck", "listings"))
            previous = line
            if len(cells) < 2 or not settings_table:
                continue
            keys = []
            for app, key, bracketed, bare in SETTING_CELL.findall(cells[0]):
                name = key or bracketed or bare
                table = tables[app] if app else owners.get(name)
                if table is not None and name in table.defaults():
                    keys.append((table, name))
            if not keys:
                continue
            if len(keys) == 1 and cells[1].startswith("`"):
                table, key = keys[0]
                shown = cells[1][1:cells[1].index("`", 1)]
                if shown != literal(table.setting(key).default):
                    problems.append(f"{page.name}: {key} default {shown} (declared {literal(table.setting(key).default)})")
            named = {key for _, key in keys}
            for app, short in CHECK_MENTION.findall(" ".join(cells[1:])):
                candidates = [tables[app.upper()]] if app else list({id(t): t for t, _ in keys}.values())
                reporting = [check for table in candidates for check in table.checks
                             if check.id.endswith("." + short) and named & set(table.keys_of(check))]
                if not reporting:
                    problems.append(f"{page.name}: {', '.join(sorted(named))} mentions {app + '.' if app else ''}{short}")
    assert problems == []


def test_the_bench_page_keeps_the_method_and_the_latest_figures_only():
    assert len((REPO / "docs" / "bench.md").read_text().splitlines()) <= 200  # history lives in git


# Raised by management commands only, never answered over HTTP (they print one line and exit).
COMMAND_ONLY_ERRORS = {"adaptation_unavailable", "audit_misconfigured", "calibration_impossible"}


def test_api_access_md_lists_every_error_code_the_service_answers():
    from clipcheck.reasons import reason_codes

    patterns = [
        re.compile(r'^\s+code = "([a-z_]+)"', re.M),  # an error class's code
        re.compile(r'code="([a-z_]+)"'),  # a code given where the error is raised
        re.compile(r'error_body\("([a-z_]+)"'),  # Django-level handlers
        re.compile(r'return \d{3}, "([a-z_]+)"'),  # refused requests (suspicious operations)
    ]
    codes = set()
    for app in ("clipcheck", "listings", "clipproject"):
        for path in (REPO / app).rglob("*.py"):
            if {"migrations", "management"} & set(path.parts) or path.name == "serializers.py":
                continue  # serializers' codes are per-field validation codes, inside `detail`
            text = path.read_text()
            codes.update(code for pattern in patterns for code in pattern.findall(text))
    documented = (REPO / "docs" / "api-access.md").read_text()
    missing = sorted(code for code in codes - set(reason_codes()) - COMMAND_ONLY_ERRORS if f"`{code}`" not in documented)
    assert missing == [], f"add to docs/api-access.md's error table: {missing}"


def test_the_access_table_in_api_access_md_is_the_defaults():
    from clipcheck.settings import DEFAULTS

    documented = {}
    for line in (REPO / "docs" / "api-access.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):  # | `scope` | endpoint | anonymous | permission | rate | cost |
            documented[cells[0].strip("`")] = (cells[2], cells[4], cells[5])
    expected = {
        scope: ("yes" if policy.get("anonymous") else "no", policy.get("rate") or "—",
                policy["cost_rate"].replace("/", " rows/") if policy.get("cost_rate") else "—")
        for scope, policy in DEFAULTS["ACCESS"].items()
    }
    assert documented == expected
