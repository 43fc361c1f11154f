"""A small closed-loop load generator: N client threads, each with its own
keep-alive connection, sending requests back to back until a deadline."""

import random
import threading
import time
from dataclasses import dataclass, field

from tests.support.images import image_bytes
from tests.support.server import multipart

PRODUCT_IMAGE = image_bytes(size=(320, 240), color=(180, 40, 40))
ANALYZE = multipart({"text": "red leather handbag"}, [("file", "bag.png", PRODUCT_IMAGE, "image/png")])
CLASSIFY = multipart({"categories": "handbag, shoes, hat, lamp", "top_k": "2"},
                     [("file", "bag.png", PRODUCT_IMAGE, "image/png")])


def product_mix(rng):
    """70% analyze, 20% classify, 10% health, like a storefront's traffic."""
    roll = rng.random()
    if roll < 0.7:
        return "POST", "/clip/analyze", *ANALYZE
    if roll < 0.9:
        return "POST", "/clip/classify", *CLASSIFY
    return "GET", "/clip/health", None, {}


@dataclass
class LoadResult:
    latencies: list = field(default_factory=list)  # seconds, answered requests
    statuses: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)  # transport errors (reset, refused, timeout)
    seconds: float = 0.0

    @property
    def answered(self):
        return len(self.latencies)

    @property
    def requests_per_second(self):
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile(self, fraction):
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")

    def summary(self):
        return (f"{self.answered} requests in {self.seconds:.1f}s = {self.requests_per_second:.1f} req/s, "
                f"p50 {self.percentile(0.5) * 1000:.0f} ms, p99 {self.percentile(0.99) * 1000:.0f} ms, "
                f"max {max(self.latencies, default=0) * 1000:.0f} ms, statuses {self.statuses}, "
                f"transport errors {len(self.errors)}")


def run_load(server, *, clients, seconds, choose=product_mix, seed=0, fresh_connections=False):
    """``fresh_connections``: one connection per request, so requests spread
    over all workers (a keep-alive connection stays with one worker)."""
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index):
        rng = random.Random(seed * 1000 + index)
        connection = server.connection(timeout=30)
        while time.monotonic() < deadline:
            method, path, body, headers = choose(rng)
            if fresh_connections:
                headers = {**headers, "Connection": "close"}
            started = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if fresh_connections:
                    connection.close()
            except OSError as exc:
                with lock:
                    result.errors.append(repr(exc))
                connection.close()
                connection = server.connection(timeout=30)
                continue
            elapsed = time.perf_counter() - started
            with lock:
                result.latencies.append(elapsed)
                result.statuses[response.status] = result.statuses.get(response.status, 0) + 1
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    return result
