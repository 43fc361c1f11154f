"""The benchmark's request phases (``bench.service``): what they count and what they refuse."""

import itertools
import json
import threading

import pytest

from bench.service import CLIENTS, analyze_concurrent, analyze_sequential, concurrency_ceiling

FRESH = (200, json.dumps({"cached": False}).encode())


def cpu_clock(step):
    """A worker CPU counter that advances ``step`` seconds per reading."""
    readings = itertools.count()
    return lambda: next(readings) * step


def test_sequential_counts_every_request_and_the_cpu_between_the_readings():
    sent = []
    load = analyze_sequential(lambda body: sent.append(body) or FRESH, ["a", "b", "c", "d"], cpu_clock(0.2))
    assert sent == ["a", "b", "c", "d"]
    assert load.statuses == [200] * 4 and len(load.latencies) == 4
    assert load.cpu_per_request == pytest.approx(0.2 / 4)  # one step between the two readings
    assert load.throughput > 0


@pytest.mark.parametrize("answer", [(503, b'{"error": "overloaded"}'), (200, b'{"cached": true}')])
def test_sequential_refuses_an_error_or_a_cached_answer(answer):
    with pytest.raises(RuntimeError):
        analyze_sequential(lambda body: answer, ["a"], cpu_clock(0.1))


def test_concurrent_keeps_every_status_and_runs_the_clients_at_once():
    inside, most, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(CLIENTS, timeout=10)

    def send(body):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        barrier.wait()  # every client is inside a request at the same time, or this times out
        with lock:
            inside[0] -= 1
        return (503, b"{}") if body == "shed" else FRESH

    per_client = [["ok", "shed" if client == 0 else "ok"] for client in range(CLIENTS)]
    load = analyze_concurrent(send, per_client, cpu_clock(1.6))
    assert most[0] == CLIENTS
    assert sorted(load.statuses) == [200] * (2 * CLIENTS - 1) + [503]
    assert load.cpu_per_request == pytest.approx(1.6 / (2 * CLIENTS))


def test_a_client_that_fails_fails_the_phase():
    def send(body):
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        analyze_concurrent(send, [["a"]], cpu_clock(0.1))


def test_the_concurrency_ceiling_is_the_cores_at_the_cpu_per_request_over_sequential():
    # 2 cores at 0.1 s of CPU per request serve at most 20 req/s: 2x a sequential 10 req/s.
    assert concurrency_ceiling(cores=2, sequential=10.0, cpu_per_request=0.1) == pytest.approx(2.0)
    assert concurrency_ceiling(cores=2, sequential=13.0, cpu_per_request=0.1) == pytest.approx(20 / 13)


def test_a_round_appends_both_phases_to_the_figures(monkeypatch):
    import bench.service as service

    monkeypatch.setattr(service, "analyze_bodies", lambda inputs, count: [f"body {n}" for n in range(count)])
    figures = service.analyze_figures()
    for _ in range(2):
        service.analyze_round(lambda body: FRESH, None, cpu_clock(0.8), figures, sequential=4, per_client=2)

    assert len(figures["latency"]) == 2 * 4  # pooled over rounds
    assert len(figures["statuses"]) == 2 * 2 * CLIENTS and set(figures["statuses"]) == {200}
    for key in ("sequential", "sequential_cpu", "concurrent", "concurrent_cpu"):
        assert len(figures[key]) == 2 and all(value > 0 for value in figures[key]), key
    assert figures["sequential_cpu"] == pytest.approx([0.8 / 4] * 2)
    assert figures["concurrent_cpu"] == pytest.approx([0.8 / (2 * CLIENTS)] * 2)
