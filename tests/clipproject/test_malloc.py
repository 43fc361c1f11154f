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


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def releaser(**options):
    released, clock = [], FakeClock()
    options = {"idle_seconds": 1.0, "every_requests": 4, **options}
    return malloc.MemoryReleaser(release=lambda: released.append(clock.now), clock=clock, **options), released, clock


def test_a_worker_releases_once_it_has_been_idle_not_while_a_request_is_in_flight():
    memory, released, clock = releaser()
    assert not memory.release_if_idle()  # nothing served yet: nothing to release
    memory.request_started()
    memory.request_started()
    memory.request_finished()
    clock.now += 5
    assert not memory.release_if_idle()  # the other request is still in flight
    memory.request_finished()
    clock.now += 0.5
    assert not memory.release_if_idle()  # idle for less than idle_seconds
    clock.now += 0.5
    assert memory.release_if_idle() and released == [clock.now]
    clock.now += 10
    assert not memory.release_if_idle()  # nothing served since


def test_under_load_that_never_falls_idle_every_nth_request_releases():
    memory, released, clock = releaser(every_requests=4)
    due = []
    for _ in range(8):
        memory.request_started()
        clock.now += 0.01
        due.append(memory.request_finished())
    assert due == [False, False, False, True] * 2 and len(released) == 2
    clock.now += 5
    assert not memory.release_if_idle()  # the last request's release covered them


def test_the_idle_poller_releases_in_its_own_thread():
    import threading
    import time

    done = threading.Event()
    threads = []
    memory = malloc.MemoryReleaser(idle_seconds=0.05, every_requests=1000,
                                   release=lambda: threads.append(threading.current_thread().name) or done.set())
    memory.start()
    memory.request_started()
    memory.request_finished()
    assert done.wait(5)
    assert threads == ["memory-release"]
    time.sleep(0.2)
    assert threads == ["memory-release"]  # once per idle spell


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


def test_each_gunicorn_worker_counts_its_requests_and_polls_for_idleness(monkeypatch):
    calls = []
    fake = type("Fake", (), {
        "start": lambda self: calls.append("start"),
        "request_started": lambda self: calls.append("started"),
        "request_finished": lambda self: calls.append("finished"),
    })()
    monkeypatch.setattr(malloc, "memory_releaser", fake)
    monkeypatch.setattr(malloc, "malloc_limit", lambda **options: {})
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-unused")
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    config["post_fork"](server=None, worker=None)
    config["pre_request"](worker=None, req=None)
    config["post_request"](worker=None, req=None, environ={}, resp=None)
    assert calls == ["start", "started", "finished"]
