"""Admission by latency budget through the real server: the shipped
gunicorn.conf.py and default admission settings serve eight concurrent
clients of one worker without a 503, with a deterministically slow model."""

import itertools
import json

import pytest

from tests.support.load import run_load
from tests.support.server import GunicornServer, multipart, unique_picture

pytestmark = pytest.mark.server

CLIENTS = 8
SECONDS = 4
FORWARD_SECONDS = 0.2  # every image forward; the tiny model alone takes milliseconds


def uncached_analyze(counter=itertools.count()):
    def choose(rng):
        number = next(counter)
        body, headers = multipart({"text": f"red leather handbag {number}"},
                                  [("file", "bag.png", unique_picture(), "image/png")])
        return "POST", "/clip/analyze", body, headers

    return choose


def test_eight_concurrent_clients_of_one_worker_are_all_served(tmp_path, tiny_model_dir, capsys):
    env = {
        # The shipped gunicorn.conf.py's threads; one worker takes every client.
        "GUNICORN_THREADS": "8",
        "CLIPCHECK_TEST_ACCESS": json.dumps({"analyze": {"rate": None, "cost_rate": None}}),
    }
    with GunicornServer(tmp_path / "server", model=tiny_model_dir, env=env, workers=1, threads=8) as server:
        server.start()
        server.set_fault(f"slow-forward {FORWARD_SECONDS}")
        result = run_load(server, clients=CLIENTS, seconds=SECONDS, choose=uncached_analyze())
        metrics = scrape(server)
        with capsys.disabled():
            print(f"\n[admission] {CLIENTS} clients, forwards of {FORWARD_SECONDS}s: {result.summary()}")
    assert result.errors == []
    assert result.statuses == {200: result.answered}, result.summary()
    # The clients really queued behind slow forwards: images of several
    # requests shared forward passes.
    images = metrics['clipcheck_inference_batch_size_sum{kind="image"}']
    forwards = metrics['clipcheck_inference_batch_size_count{kind="image"}']
    assert images > forwards, (images, forwards)


def scrape(server):
    samples = {}
    for line in server.request("GET", "/metrics").body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples
