"""A real gunicorn server (gunicorn.conf.py, clipproject.wsgi) on a free loopback port."""

import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.runtime import RUNTIME_CACHE_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Response:
    def __init__(self, status, headers, body, seconds):
        self.status = status
        self.headers = headers
        self.body = body
        self.seconds = seconds

    def json(self):
        return json.loads(self.body)

    @property
    def worker_pid(self):
        return int(self.headers["X-Worker-Pid"])


class GunicornServer:
    """Starts on ``start()``; ``request()`` speaks HTTP/1.1 to it; ``stop()`` ends it.

    Settings are ``tests.support.server_settings``; ``env`` adds or overrides
    variables (CLIPCHECK_*, WEB_CONCURRENCY, GUNICORN_THREADS, REDIS_URL, ...).
    """

    def __init__(self, directory, *, model, env=None, workers=2, threads=4):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.fault_file = self.directory / "fault"
        self.fault_file.write_text("")
        self.log_path = self.directory / "server.log"
        self.workers = workers
        metrics_dir = self.directory / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.support.server_settings",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_THREADS": str(threads),
            "GUNICORN_TIMEOUT": "60",
            "GUNICORN_GRACEFUL_TIMEOUT": "5",
            "DATABASE_URL": f"sqlite:///{self.directory / 'db.sqlite3'}",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "CLIPCHECK_MODEL": str(model),
            "CLIPCHECK_DEVICE": "cpu",
            "CLIPCHECK_NUM_THREADS": "1",
            "CLIPCHECK_RUNTIME": "torch",
            "CLIPCHECK_RUNTIME_CACHE_DIR": RUNTIME_CACHE_DIR,
            "CLIPCHECK_TEST_FAULT_FILE": str(self.fault_file),
            **(env or {}),
        }
        self.process = None

    # Life cycle

    def start(self, *, healthy=True, timeout=90):
        """Start and wait until every worker has loaded (or failed to load) its model."""
        self._log = open(self.log_path, "ab")
        # Every analysis is stored: the server's database needs its tables
        # (a test of a database outage points at one that cannot be reached).
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, timeout=120,
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(REPO_ROOT / "gunicorn.conf.py"),
             "clipproject.wsgi:application"],
            cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_ready(healthy=healthy, timeout=timeout, model_loads=self.workers)
        return self

    def wait_ready(self, *, model_loads, healthy=True, timeout=90):
        """Wait until ``model_loads`` load attempts are logged, all workers run
        and health answers as expected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            if self.model_loads() >= model_loads and len(self.worker_pids()) == self.workers:
                try:
                    status = self.request("GET", "/clip/health", timeout=5).status
                except OSError:
                    status = None
                if status == (200 if healthy else 503):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"gunicorn did not become ready:\n{self.log()}")

    def model_loads(self):
        """Model load attempts logged so far (successful or not)."""
        log = self.log()
        return log.count("Loaded CLIP model") + log.count("could not be loaded")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process:
            self._log.close()

    def reload(self):
        """SIGHUP: gunicorn replaces its workers; waits until the new ones have loaded."""
        loads = self.model_loads()
        old = set(self.worker_pids())
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while set(self.worker_pids()) & old and time.monotonic() < deadline:
            time.sleep(0.2)
        self.wait_ready(model_loads=loads + self.workers)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    # Introspection

    @property
    def arbiter_pid(self):
        return self.process.pid

    def worker_pids(self):
        children = Path(f"/proc/{self.arbiter_pid}/task/{self.arbiter_pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except FileNotFoundError:
            return []

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def set_fault(self, fault):
        self.fault_file.write_text(fault)

    def busy_workers(self):
        """Live workers inside a stalled inference (see tests.support.faults)."""
        marked = {int(path.name.rsplit(".", 1)[1]) for path in self.directory.glob("fault.busy.*")}
        return sorted(marked & set(self.worker_pids()))

    # HTTP

    def connection(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, *, connection=None, timeout=30):
        own = connection is None
        connection = connection or self.connection(timeout)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            payload = response.read()
            return Response(response.status, dict(response.getheaders()), payload, time.perf_counter() - started)
        finally:
            if own:
                connection.close()


def multipart(fields, files=()):
    """A multipart/form-data body: ``fields`` {name: text}, ``files`` [(name, filename, bytes, type)]."""
    boundary = "clipcheck-test-boundary"
    chunks = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, content, content_type in files:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def rss_bytes(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


_picture_numbers = itertools.count()


def unique_picture():
    """PNG bytes no earlier request sent: a known picture would be answered
    from the stored verdict or embedding without reaching the model."""
    from tests.support.images import image_bytes

    number = next(_picture_numbers)
    return image_bytes(color=(number % 256, number // 256 % 256, 90))
