"""The declared settings tables: one rule per check id, every key documented, defaults that pass their own
checks, and the environment read as it was before the tables."""

import ast
import re
from pathlib import Path

import pytest

from clipcheck.settings_table import (
    Check,
    Setting,
    SettingsTable,
    documented_blocks,
    fraction,
    positive_integer,
    rewrite_blocks,
    settings_tables,
    table_problems,
)

REPO = Path(__file__).resolve().parents[2]
CHECK_ID = re.compile(r"^(clipcheck|listings)\.[EWI]\d{3}$")


def all_checks():
    return [(table, check) for table in settings_tables() for check in table.checks]


def test_both_apps_declare_a_table():
    assert [table.name for table in settings_tables()] == ["CLIPCHECK", "LISTINGS"]


@pytest.mark.parametrize("table", settings_tables(), ids=lambda table: table.name)
def test_a_table_is_consistent(table):
    """No key or id declared twice, every id a key names is declared, and an id reports one kind of value."""
    assert table_problems(table) == []


def test_each_check_id_is_declared_once_and_documented():
    ids = [check.id for _, check in all_checks()]
    assert len(ids) == len(set(ids))
    checks_table = documented_blocks((REPO / "docs" / "configuration.md").read_text())["checks"]
    assert [check_id for check_id in ids if f"| `{check_id}` |" not in checks_table] == []


def id_literals_by_function():
    """Every check id written as a string in clipcheck/ and listings/: id → {(module, enclosing function)}."""
    found = {}
    for path in sorted([*(REPO / "clipcheck").rglob("*.py"), *(REPO / "listings").rglob("*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CHECK_ID.match(node.value):
                scope = node
                while scope in parents and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    scope = parents[scope]
                function = scope.name if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
                found.setdefault(node.value, set()).add((path.relative_to(REPO).as_posix(), function))
    return found


def test_each_check_id_is_one_rule():
    """An id is reported by one rule: either the kind of the keys that name it (the generated check), or one
    function of a checks module; and every declared id is reported by something."""
    judged_by_kind = {
        setting.check for table in settings_tables() for setting in table.settings
        if setting.check and setting.kind.valid is not None
    }
    declared = {check.id for _, check in all_checks()}
    written = {}
    for check_id, places in id_literals_by_function().items():
        functions = {place for place in places if place[1] is not None}
        if functions:
            written[check_id] = functions
    assert sorted(set(written) - declared) == [], "ids reported but not declared in a settings table"
    assert {check_id: places for check_id, places in written.items() if len(places) > 1} == {}, (
        "an id reported by more than one function"
    )
    assert sorted(set(written) & judged_by_kind) == [], "ids both generated from a kind and written in a function"
    assert sorted(declared - set(written) - judged_by_kind) == [], "declared ids that nothing reports"


@pytest.mark.parametrize("table", settings_tables(), ids=lambda table: table.name)
def test_every_key_has_one_doc_line(table):
    assert [setting.key for setting in table.settings if not setting.doc.strip() or "\n" in setting.doc] == []


@pytest.mark.parametrize(
    "setting", [setting for table in settings_tables() for setting in table.settings], ids=lambda setting: setting.key,
)
def test_the_defaults_pass_their_own_checks(setting):
    assert setting.is_valid(setting.default)
    assert setting.check_message("TABLE", setting.default) is None


BAD_VALUES = [-1, 0, 2.5, float("nan"), " ", "?", "not valid", [], ["?"], {}, {"?": "?"}, True, None]


@pytest.mark.parametrize(
    ("table", "setting"),
    [(table, setting) for table in settings_tables() for setting in table.settings
     if setting.check and setting.kind.valid is not None],
    ids=lambda value: getattr(value, "key", getattr(value, "name", "")),
)
def test_a_bad_value_of_each_checked_key_is_reported_under_its_id(table, setting):
    reported = {setting.check_message(table.name, value).id for value in BAD_VALUES
                if setting.check_message(table.name, value) is not None}
    assert reported == {setting.check}


def test_a_table_refuses_an_id_for_two_kinds_of_value():
    with pytest.raises(ValueError, match="one rule per id"):
        SettingsTable(name="DEMO", settings=(
            Setting("A", 1, positive_integer(), check="demo.E001", doc="a"),
            Setting("B", 0.5, fraction(), check="demo.E001", doc="b"),
        ), checks=(Check("demo.E001", "bad"),))
    with pytest.raises(ValueError, match="not declared"):
        SettingsTable(name="DEMO", settings=(Setting("A", 1, positive_integer(), check="demo.E002", doc="a"),),
                      checks=())


def test_generated_blocks_are_rewritten_and_nothing_else():
    page = "# Page\n\n<!-- generated: one -->\nold\nlines\n<!-- end generated -->\n\ntext\n\n" \
           "<!-- generated: two -->\n<!-- end generated -->\n"
    rewritten = rewrite_blocks(page, {"one": "| a |", "two": "| b |\n| c |"})
    assert rewritten == "# Page\n\n<!-- generated: one -->\n| a |\n<!-- end generated -->\n\ntext\n\n" \
                        "<!-- generated: two -->\n| b |\n| c |\n<!-- end generated -->\n"
    assert documented_blocks(rewritten) == {"one": "| a |", "two": "| b |\n| c |"}
    assert rewrite_blocks(rewritten, documented_blocks(rewritten)) == rewritten


# Every variable read before the tables existed, with the same parsing: int, float, text, the flag, "none".
ENVIRONMENT_BEFORE = {
    "CLIPCHECK_MODEL": ("MODEL", " models/clip ", " models/clip "),
    "CLIPCHECK_DEVICE": ("DEVICE", "cuda:1", "cuda:1"),
    "CLIPCHECK_DTYPE": ("DTYPE", "bfloat16", "bfloat16"),
    "CLIPCHECK_BATCH_ROOT": ("BATCH_ROOT", "/srv/batch", "/srv/batch"),
    "CLIPCHECK_THRESHOLD": ("THRESHOLD", "0.27", 0.27),
    "CLIPCHECK_BATCH_SIZE": ("BATCH_SIZE", "16", 16),
    "CLIPCHECK_NUM_THREADS": ("NUM_THREADS", "4", 4),
    "CLIPCHECK_MAX_QUEUE": ("MAX_QUEUE", "8", 8),
    "CLIPCHECK_QUEUE_TIMEOUT_MS": ("QUEUE_TIMEOUT_MS", "250", 250),
    "CLIPCHECK_INFERENCE_TIMEOUT_SECONDS": ("INFERENCE_TIMEOUT_SECONDS", "12.5", 12.5),
    "CLIPCHECK_LOAD_RETRY_SECONDS": ("LOAD_RETRY_SECONDS", "5", 5.0),
    "CLIPCHECK_MAX_REQUEST_BYTES": ("MAX_REQUEST_BYTES", "1000", 1000),
    "CLIPCHECK_MAX_UPLOAD_BYTES": ("MAX_UPLOAD_BYTES", "900", 900),
    "CLIPCHECK_METRICS_TOKEN": ("METRICS_TOKEN", "none", "none"),  # a token, not the word
    "CLIPCHECK_DECODE_MEMORY_BUDGET_BYTES": ("DECODE_MEMORY_BUDGET_BYTES", "1073741824", 1073741824),
    "CLIPCHECK_ANALYSIS_RETENTION_DAYS": ("ANALYSIS_RETENTION_DAYS", " None ", None),
    "CLIPCHECK_FAILED_AUTH_RATE": ("FAILED_AUTH_RATE", "NONE", None),
    "CLIPCHECK_RUNTIME": ("RUNTIME", "openvino", "openvino"),
    "CLIPCHECK_RUNTIME_CACHE_DIR": ("RUNTIME_CACHE_DIR", "/var/cache/clip", "/var/cache/clip"),
    "CLIPCHECK_LATENCY_BUDGET_MS": ("LATENCY_BUDGET_MS", "1500", 1500.0),
    "CLIPCHECK_LOAD_ON_STARTUP": ("LOAD_ON_STARTUP", " Yes", True),
    "LISTINGS_UPLOAD_POLICY": ("UPLOAD_POLICY", " Reject ", "reject"),
    "LISTINGS_AUDIT_STALL_SECONDS": ("AUDIT_STALL_SECONDS", " 90.5 ", 90.5),
}


def overrides(environ):
    return {table.name: table.environ_overrides(environ) for table in settings_tables()}


def test_the_environment_variables_are_those_read_before_with_the_same_parsing():
    declared = {setting.env for table in settings_tables() for setting in table.settings if setting.env}
    assert declared == set(ENVIRONMENT_BEFORE)
    read = overrides({name: text for name, (_, text, _) in ENVIRONMENT_BEFORE.items()})
    expected = {"CLIPCHECK": {}, "LISTINGS": {}}
    for name, (key, _, value) in ENVIRONMENT_BEFORE.items():
        expected[name.partition("_")[0]][key] = value
    assert read == expected
    assert type(read["CLIPCHECK"]["LOAD_RETRY_SECONDS"]) is float and type(read["CLIPCHECK"]["BATCH_SIZE"]) is int


def test_text_that_does_not_parse_reaches_the_checks_and_empty_variables_set_nothing():
    read = overrides({
        "CLIPCHECK_BATCH_SIZE": "32x", "CLIPCHECK_QUEUE_TIMEOUT_MS": "100.5", "CLIPCHECK_NUM_THREADS": "none",
        "CLIPCHECK_THRESHOLD": "", "LISTINGS_AUDIT_STALL_SECONDS": "ten minutes", "LISTINGS_UPLOAD_POLICY": "",
        "CLIPCHECK_LOAD_ON_STARTUP": "",
    })
    assert read == {
        "CLIPCHECK": {"BATCH_SIZE": "32x", "QUEUE_TIMEOUT_MS": "100.5", "NUM_THREADS": "none",
                      "LOAD_ON_STARTUP": False},
        "LISTINGS": {"AUDIT_STALL_SECONDS": "ten minutes"},
    }


def test_an_openvino_runtime_on_cuda_and_without_openvino_have_their_own_ids(settings, monkeypatch):
    from clipcheck import checks
    from clipcheck.engine import runtimes

    settings.CLIPCHECK = {**settings.CLIPCHECK, "RUNTIME": "openvino", "DEVICE": "cuda:0"}
    monkeypatch.setattr(runtimes, "openvino_available", lambda: False)
    assert [message.id for message in checks.check_clipcheck_settings()] == ["clipcheck.E020", "clipcheck.E021"]
