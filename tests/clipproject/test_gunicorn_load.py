"""The real server under load: gunicorn.conf.py, 2 workers x 4 threads, Redis.

Figures (requests/s, p50/p99 latency, worker memory growth) are printed.
"""

import json
import re
import uuid

import pytest
from redis import Redis

from tests.support.load import run_load
from tests.support.server import GunicornServer, multipart, rss_bytes, unique_picture

pytestmark = [pytest.mark.server, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/7"
CLIENTS = 16
WARM_UP_SECONDS = 8
LOAD_SECONDS = 15
CATEGORIES_RATE = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    access = {"analyze": {"rate": None, "cost_rate": None}, "classify": {"rate": None, "cost_rate": None}, "health": {"rate": None},
              "categories": {"rate": f"{CATEGORIES_RATE}/day"}}  # a window no test run straddles
    prefix = f"clipcheck-test-{uuid.uuid4().hex}"
    env = {
        # No recycling during the measurement: memory is compared per worker.
        "GUNICORN_MAX_REQUESTS": "0",
        "REDIS_URL": REDIS_URL,
        "CACHE_KEY_PREFIX": prefix,
        "CLIPCHECK_TEST_ACCESS": json.dumps(access),
    }
    with GunicornServer(tmp_path_factory.mktemp("load-server"), model=tiny_model_dir, env=env) as server:
        server.start()
        yield server
    redis = Redis.from_url(REDIS_URL)
    for key in redis.scan_iter(f"{prefix}:*"):
        redis.delete(key)


def report(capsys, line):
    with capsys.disabled():
        print(f"\n[load] {line}")


def test_sustained_load_has_no_errors_and_flat_memory(server, capsys):
    workers = server.worker_pids()
    # Warm every worker to its working set: requests on fresh connections
    # reach both workers evenly.
    warm_up = run_load(server, clients=CLIENTS, seconds=WARM_UP_SECONDS, seed=1, fresh_connections=True)
    assert warm_up.statuses.keys() == {200} and not warm_up.errors, warm_up.summary()
    memory_before = {pid: rss_bytes(pid) for pid in workers}

    result = run_load(server, clients=CLIENTS, seconds=LOAD_SECONDS, seed=2)

    memory_after = {pid: rss_bytes(pid) for pid in workers}
    growth = {pid: memory_after[pid] / memory_before[pid] - 1 for pid in workers}
    report(capsys, f"{CLIENTS} clients: {result.summary()}")
    report(capsys, "worker RSS after warm-up -> after load: " + ", ".join(
        f"{memory_before[pid] / 2**20:.0f} -> {memory_after[pid] / 2**20:.0f} MiB ({growth[pid]:+.1%})"
        for pid in workers))
    assert result.errors == []
    assert result.statuses.keys() == {200}, result.summary()
    assert result.answered > CLIENTS * LOAD_SECONDS  # more than one request per client-second
    assert server.worker_pids() == workers  # no worker died or was recycled
    assert all(value < 0.05 for value in growth.values()), growth
    assert "WORKER TIMEOUT" not in server.log()


def scrape(server):
    samples = {}
    for line in server.request("GET", "/metrics").body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def analyze(server, connection=None):
    body, headers = multipart({"text": "red handbag"}, [("file", "a.png", unique_picture(), "image/png")])
    return server.request("POST", "/clip/analyze", body, {**headers, "Connection": "close"}, connection=connection)


def test_metrics_add_up_over_all_workers(server):
    key = 'clipcheck_http_requests_total{endpoint="clipcheck:analyze",method="POST",status="200"}'
    before = scrape(server).get(key, 0)
    pids, sent = set(), 0
    while (len(pids) < 2 or sent < 10) and sent < 200:
        pids.add(analyze(server).worker_pid)
        sent += 1
    after = scrape(server)
    assert len(pids) == 2  # both workers answered...
    assert after[key] - before == sent  # ...and every answer is counted
    loaded = {name: value for name, value in after.items() if name.startswith("clipcheck_model_loaded{")}
    assert len(loaded) == 2 and set(loaded.values()) == {1.0}, loaded
    assert after["clipcheck_inference_queue_depth"] == 0
    assert after['clipcheck_inference_batch_size_count{kind="image"}'] > 0


def test_rate_limits_are_counted_once_for_all_workers(server):
    statuses, pids = [], set()
    for _ in range(40):
        response = server.request("GET", "/clip/categories", headers={"Connection": "close"})
        statuses.append(response.status)
        pids.add(response.worker_pid)
        if len(pids) == 2 and len(statuses) > CATEGORIES_RATE + 2:
            break
    assert len(pids) == 2, "both workers must have answered"
    assert statuses.count(200) == CATEGORIES_RATE
    assert set(statuses[CATEGORIES_RATE:]) == {429}
    refused = server.request("GET", "/clip/categories")
    assert refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused.headers["Retry-After"]) <= 86400


def test_each_request_is_one_json_log_line(server):
    response = analyze(server)
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith('{"event": "request"')]
    [line] = [line for line in lines if line["request_id"] == response.headers["X-Request-ID"]]
    assert line["path"] == "/clip/analyze" and line["status"] == 200
    assert line["duration_ms"] >= line["model_ms"] > 0


FORM_FIELD_OVER_LIMIT = "x" * (3 * 1024 * 1024)


@pytest.mark.parametrize("name,fields,files,status,code", [
    # One more than DATA_UPLOAD_MAX_NUMBER_FILES, which follows LISTINGS["MAX_PHOTOS"] (10).
    ("too many files", {"text": "red"}, [(f"f{i}", "a.png", b"x", "image/png") for i in range(11)], 400,
     "too_many_files"),
    ("too many fields", {f"field{i}": "x" for i in range(120)}, [], 400, "too_many_fields"),
    ("form data over DATA_UPLOAD_MAX_MEMORY_SIZE", {"text": FORM_FIELD_OVER_LIMIT}, [], 413, "request_too_large"),
    ("pixel bomb", {"text": "red"}, [("file", "bomb.png", None, "image/png")], 413, "image_too_large"),
])
def test_django_request_limits_answer_json_through_gunicorn(server, name, fields, files, status, code):
    from tests.support.hostile import png_claiming

    files = [(field, filename, content or png_claiming(50_000, 50_000), kind)
             for field, filename, content, kind in files]
    body, headers = multipart(fields, files)
    response = server.request("POST", "/clip/analyze", body, headers)
    assert response.status == status, response.body[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code


def test_a_body_over_max_request_bytes_is_refused_before_it_is_read(server):
    connection = server.connection(timeout=10)
    connection.putrequest("POST", "/clip/analyze")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(20 * 1024 * 1024))
    connection.endheaders()
    connection.send(b"--x\r\n" + bytes(64 * 1024))  # far from the announced 20 MB
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "request_too_large"
    connection.close()


def test_swagger_ui_and_its_assets_are_served(server):
    page = server.request("GET", "/api/docs/")
    assert page.status == 200
    assets = re.findall(r'(?:src|href)="(/static/drf_spectacular_sidecar/[^"]+)"', page.body.decode())
    assert assets
    for asset in assets:
        assert server.request("GET", asset).status == 200, asset
