"""Bounded glibc malloc arenas in serving workers (clipproject/malloc.py, gunicorn.conf.py)."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

from clipproject import malloc

ROOT = Path(__file__).resolve().parents[2]


def limits_applied(**environ):
    """What ``malloc_limit`` applies in a fresh process with ``environ`` (no other MALLOC_ variables)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    code = "import json; from clipproject.malloc import malloc_limit; print(json.dumps(malloc_limit()))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, **environ}, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def test_the_arenas_are_bounded_by_default_and_the_mmap_threshold_left_to_glibc():
    assert limits_applied() == {"MALLOC_ARENA_MAX": malloc.ARENA_MAX}


def test_a_value_set_in_the_environment_is_left_to_glibc():
    assert limits_applied(MALLOC_ARENA_MAX="4") == {}


def test_a_threshold_asked_for_is_applied():
    code = ("import json; from clipproject.malloc import malloc_limit; "
            "print(json.dumps(malloc_limit(mmap_threshold=1 << 20)))")
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == {"MALLOC_ARENA_MAX": malloc.ARENA_MAX, "MALLOC_MMAP_THRESHOLD_": 1 << 20}


def test_each_gunicorn_worker_applies_them_after_the_fork(monkeypatch):
    calls = []
    monkeypatch.setattr(malloc, "malloc_limit", lambda **options: calls.append(options) or {})
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-unused")
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    config["post_fork"](server=None, worker=None)
    assert calls == [{}]


def test_every_eighth_request_releases_memory(monkeypatch):
    released = []
    monkeypatch.setattr(malloc, "memory_release", lambda: released.append(True))
    monkeypatch.setattr(malloc, "_requests_served", __import__("itertools").count(1))
    due = [malloc.memory_release_due() for _ in range(2 * malloc.RELEASE_EVERY_REQUESTS)]
    assert due.count(True) == 2 and due[malloc.RELEASE_EVERY_REQUESTS - 1] and due[-1]
    assert len(released) == 2


def test_a_release_collects_cyclic_garbage():
    import gc
    import weakref

    class Node:
        pass

    node = Node()
    node.self = node
    alive = weakref.ref(node)
    del node
    gc.disable()
    try:
        assert alive() is not None
        malloc.memory_release()
        assert alive() is None
    finally:
        gc.enable()


def test_each_gunicorn_worker_counts_its_requests_after_the_response(monkeypatch):
    calls = []
    monkeypatch.setattr(malloc, "memory_release_due", lambda: calls.append(True))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-unused")
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    config["post_request"](worker=None, req=None, environ={}, resp=None)
    assert calls == [True]
