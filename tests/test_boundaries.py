"""The layering rules of docs/architecture.md, checked over the source.

- ``clipcheck`` (the reusable app) names nothing of ``listings``;
- ``listings`` never imports the project (``clipproject``);
- no import cycles among the three packages' modules, counting imports made
  inside functions too (a lazy import hides a cycle, it does not remove it);
- tests import helpers from ``tests/support/``, never from a conftest; the benchmark and
  the product import nothing of the tests;
- the engine imports nothing of the HTTP layer (``clipcheck.api``, the middleware, DRF).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("clipcheck", "listings", "clipproject")


def python_files(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path):
    """Every module ``path`` imports, anywhere in the file (``from a import b`` counts ``a`` and ``a.b``)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph():
    modules = {module_name(path): path for path in python_files(*PACKAGES) if "migrations" not in path.parts}
    graph = {}
    for name, path in modules.items():
        graph[name] = {target for target in imported_modules(path) if target in modules and target != name}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_reusable_app_names_nothing_of_the_listings_app():
    mentions = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files("clipcheck")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "listings" in line
    ]
    assert mentions == []


def test_the_listings_app_never_imports_its_project():
    offenders = [
        str(path.relative_to(ROOT))
        for path in python_files("listings")
        if any(name.split(".")[0] == "clipproject" for name in imported_modules(path))
    ]
    assert offenders == []


def test_there_are_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_is_imported_from_a_conftest():
    offenders = [
        str(path.relative_to(ROOT))
        for path in python_files("tests", "bench", "scripts")
        if any(name.split(".")[-1] == "conftest" or ".conftest." in name for name in imported_modules(path))
    ]
    assert offenders == []


def test_the_benchmark_and_the_product_import_nothing_of_the_tests():
    offenders = [
        str(path.relative_to(ROOT))
        for path in python_files("bench", "knownanswer", "scripts", *PACKAGES)
        if "migrations" not in path.parts and any(name.split(".")[0] == "tests" for name in imported_modules(path))
    ]
    assert offenders == []


def test_the_engine_imports_nothing_of_the_http_layer():
    """The engine is the ground floor: nothing of clipcheck's API or middleware, nor DRF (the
    middleware subscribes to the engine's timings instead)."""
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in python_files("clipcheck/engine")
        for name in sorted(imported_modules(path))
        if name.split(".")[0] == "rest_framework" or name.startswith(("clipcheck.api", "clipcheck.middleware"))
    ]
    assert offenders == []


def test_the_engine_imports_without_django_settings():
    import subprocess
    import sys

    code = ("import sys, clipcheck.engine.admission, clipcheck.engine.clip, clipcheck.engine.batcher; "
            "print('rest_framework' in sys.modules, 'clipcheck.middleware' in sys.modules)")
    environment = {key: value for key, value in __import__("os").environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]
