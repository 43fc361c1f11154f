"""End-to-end benchmark of the service, against the naive loop and the model alone.

Everything is measured in one run, in rounds (each round measures every figure once, so
load from other processes on a shared machine hits all of them alike):

- naive: ``CLIPProcessor`` + float32 ``CLIPModel``, one pair per forward (``bench.naive``);
- model alone: ``ClipEngine._forward_images`` on preprocessed tensors, batch 32 and batch 1,
  in the engine's own dtype - the ceiling for this machine;
- ``manage.py clip_audit --no-progress --recheck``, in this process, over listings stored
  through the local media storage in a throwaway SQLite database: JPEG bytes on disk to
  verdicts stored, each listing one image and two texts;
- ``/clip/analyze`` and ``/clip/classify`` over HTTP against real gunicorn processes
  (``-w 1 --threads 8 -k gthread``), one per ``CLIPCHECK_NUM_THREADS`` compared: latency of
  sequential requests, throughput of 8 concurrent clients, and the worker's peak RSS.

Every request sends new image bytes (the corpus JPEG with a unique comment segment: same
pixels, new SHA-256) and a new text, so neither the stored verdicts, the stored image
embeddings nor the text-embedding cache answer it; cached requests are measured apart.

The runner is ``python -m bench`` (``bench/__main__.py``).
"""

from __future__ import annotations

import http.client
import io
import json
import math
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.assets import FULL, SMOKE, Spec, load_manifest
from bench.timing import measure

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 8  # concurrent clients; gunicorn runs with as many threads


@dataclass(frozen=True)
class Config:
    """Sizes of one benchmark run."""

    spec: Spec
    threads: int  # torch threads of this process (naive, model alone, audit) and of the first server
    compare_threads: int | None  # CLIPCHECK_NUM_THREADS of a second server, or None
    rounds: int
    naive_pairs: int  # pairs per naive round
    forward_repeats: int  # single-image / single-text forwards per round
    audit_listings: int
    analyze_requests: int  # sequential uncached /clip/analyze per round and server
    cached_requests: int
    classify_requests: int
    requests_per_client: int  # per concurrent client, per round and server

    @classmethod
    def full(cls, *, threads: int = 1, compare_threads: int | None = 2, rounds: int = 3) -> Config:
        return cls(FULL, threads, compare_threads, rounds, naive_pairs=24, forward_repeats=8,
                   audit_listings=96, analyze_requests=20, cached_requests=8, classify_requests=12,
                   requests_per_client=3)

    @classmethod
    def smoke(cls, *, threads: int = 1, compare_threads: int | None = 2, rounds: int = 1) -> Config:
        return cls(SMOKE, threads, compare_threads, rounds, naive_pairs=4, forward_repeats=2,
                   audit_listings=6, analyze_requests=3, cached_requests=2, classify_requests=2,
                   requests_per_client=1)


# --- the table ---------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    label: str
    value: float
    unit: str
    ratio: float | None = None  # wall-clock ratio against what ``comparison`` names (memory: MB over)
    comparison: str = ""  # the ratio as shown, with what it compares to
    cpu_ratio: float | None = None  # the same ratio in CPU seconds: steadier when other processes load the machine
    target: str = ""  # judged on the wall-clock ratio
    met: bool | None = None
    note: str = ""


@dataclass(frozen=True)
class Target:
    text: str
    check: Callable[[float], bool]


TARGETS = {
    "audit_vs_naive": Target(">= 5x", lambda r: r >= 5.0),
    "audit_vs_model": Target(">= 80%", lambda r: r >= 0.80),
    "analyze_vs_forward": Target("<= 1.3x", lambda r: r <= 1.3),
    "concurrent_vs_sequential": Target(">= 2x", lambda r: r >= 2.0),
    "classify_vs_analyze": Target("<= 1.15x", lambda r: r <= 1.15),
    "rss_over_model": Target("<= +700 MB", lambda mb: mb <= 700.0),
}


def compared(row: Row, ratio: float, comparison: str, target: str | None = None, *,
             cpu_ratio: float | None = None) -> Row:
    row.ratio, row.comparison, row.cpu_ratio = ratio, comparison, cpu_ratio
    if target is not None:
        row.target, row.met = TARGETS[target].text, TARGETS[target].check(ratio)
    return row


def format_value(value: float, unit: str) -> str:
    if unit == "MB" or value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def format_table(rows: list[Row]) -> str:
    width = max(len(r.label) for r in rows)
    head = (f"{'measure':<{width}}  {'value':>8} {'unit':<6} {'comparison (wall)':<26} {'cpu':>6}  {'target':<11} "
            f"{'met':<4} note")
    lines = [head, "-" * len(head)]
    for r in rows:
        met = "" if r.met is None else "yes" if r.met else "NO"
        cpu = "" if r.cpu_ratio is None else f"{r.cpu_ratio:.0%}" if "%" in r.comparison else f"{r.cpu_ratio:.2f}x"
        lines.append(f"{r.label:<{width}}  {format_value(r.value, r.unit):>8} {r.unit:<6} {r.comparison:<26} "
                     f"{cpu:>6}  {r.target:<11} {met:<4} {r.note}".rstrip())
    return "\n".join(lines)


# --- inputs ------------------------------------------------------------------------------


def tagged_jpeg(data: bytes, tag: str) -> bytes:
    """``data`` with a JPEG comment segment holding ``tag`` after the JFIF header: new
    bytes (a new SHA-256, so no stored verdict or embedding matches) with identical pixels."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    at = 2
    if data[2:4] == b"\xff\xe0":  # keep APP0 (JFIF) first, where strict readers look for it
        at = 4 + struct.unpack(">H", data[4:6])[0]
    comment = tag.encode("ascii")
    return data[:at] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[at:]


class Inputs:
    """The corpus, cycled into image/text pairs that no cache has seen."""

    def __init__(self, spec: Spec):
        self.pairs = [(path.read_bytes(), text) for path, text in load_manifest(spec)]
        self.serial = 0

    def fresh(self) -> tuple[bytes, str]:
        data, text = self.pairs[self.serial % len(self.pairs)]
        self.serial += 1
        return tagged_jpeg(data, f"bench {uuid.uuid4().hex}"), f"{text} (ref {self.serial})"


def multipart(fields: dict[str, str], image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
                 f"Content-Type: image/jpeg\r\n\r\n".encode() + image + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- the throwaway project: database, media, Django in this process -----------------------


def http_request(port: int, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                 timeout: float = 300) -> tuple[int, bytes]:
    """One HTTP request to a server of the benchmark on loopback: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": content_type} if content_type else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def gunicorn_wait_healthy(process, port: int, *, timeout: float, log_tail=lambda: "") -> tuple[bytes, int]:
    """Poll /clip/health of the gunicorn ``process`` (one worker) on ``port`` until it answers 200:
    (the health body, the worker's pid). Raises when gunicorn exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_tail()}")
        try:
            status, body = http_request(port, "GET", "/clip/health", timeout=5)
        except (OSError, http.client.HTTPException):
            status = None
        if status == 200:
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            if len(children) != 1:
                raise RuntimeError(f"expected one gunicorn worker, found {children}")
            return body, int(children[0])
        time.sleep(0.25)
    raise RuntimeError(f"gunicorn not healthy within {timeout:.0f} s:\n{log_tail()}")


@dataclass
class Workspace:
    root: Path
    model_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "clipproject.settings",
            "DATABASE_URL": f"sqlite:///{self.root / 'bench.sqlite3'}",
            "DJANGO_MEDIA_ROOT": str(self.root / "media"),
            "CLIPCHECK_MODEL": str(self.model_dir),
            "DJANGO_LOG_LEVEL": "WARNING",
        }


def django_setup(workspace: Workspace, *, threads: int) -> None:
    """Configure Django in this process for ``workspace`` and create its tables."""
    if "django.conf" in sys.modules and sys.modules["django.conf"].settings.configured:
        raise RuntimeError("Django is already configured in this process: run the benchmark on its own.")
    os.environ.update({**workspace.env, "CLIPCHECK_NUM_THREADS": str(threads)})
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def listings_seed(inputs: Inputs, count: int) -> None:
    """``count`` pending listings, their images saved through the default storage."""
    from django.core.files.base import ContentFile

    from clipcheck.hashes import content_hash
    from listings.models import Listing

    for number in range(count):
        data, text = inputs.pairs[number % len(inputs.pairs)]
        data = tagged_jpeg(data, f"listing {number}")
        title, description = listing_texts(text)
        listing = Listing(title=title, description=description, image_sha256=content_hash(data))
        listing.image.save(f"bench-{number}.jpg", ContentFile(data), save=False)
        listing.save()


def audit_state_reset() -> None:
    """Back to freshly created listings: no stored verdicts or embeddings, nothing checked,
    and an engine without cached text embeddings (loaded here, before the timing)."""
    from clipcheck.engine import get_engine, reset_engine
    from clipcheck.models import Analysis, ImageEmbedding
    from listings.models import Listing, ListingCheckFailure

    Analysis.objects.all().delete()
    ImageEmbedding.objects.all().delete()
    ListingCheckFailure.objects.all().delete()
    Listing.objects.update(status=Listing.Status.PENDING, checked_at=None, checked_model="",
                           checked_image_sha256="", checked_texts_sha256="")
    reset_engine()
    get_engine()


def audit_timed(listings: int, text_batches: list | None = None) -> dict:
    """One ``clip_audit --no-progress --recheck``: wall seconds and the command's own summary.

    ``text_batches``, when given, receives the text forwards the audit ran (each a list of
    strings, as the engine batched them): the audit's own text work, which
    ``audit_text_forwards`` replays as "model alone" (passages, attribute rewrites and
    category prompts included, not only a title and a description per listing).
    """
    from django.core.management import call_command

    from clipcheck.engine import get_engine
    from clipcheck.models import Analysis

    engine = get_engine()
    if text_batches is not None:
        forward = engine._encode_text_batch

        def recorded(texts):  # a list append per forward: nothing next to the forward itself
            text_batches.append(list(texts))
            return forward(texts)

        engine._encode_text_batch = recorded
    out = io.StringIO()
    started = time.perf_counter()
    cpu_started = time.process_time()
    try:
        call_command("clip_audit", "--no-progress", "--recheck", stdout=out, stderr=io.StringIO())
    finally:
        cpu = time.process_time() - cpu_started
        wall = time.perf_counter() - started
        if text_batches is not None:
            del engine._encode_text_batch
    summary = {label.strip(): value for label, value in re.findall(r"^\s+(\S.*?)\s{2,}(\S+)$", out.getvalue(), re.M)}
    images = int(summary["images scored"])
    analyses = Analysis.objects.filter(source=Analysis.Source.AUDIT)
    if images != listings or analyses.count() != 2 * listings or analyses.filter(cached=True).exists():
        raise RuntimeError(f"the audit did not score every listing afresh:\n{out.getvalue()}")
    return {"images": images, "wall_s": wall, "cpu_s": cpu, "command_seconds": float(summary["seconds"]),
            "flagged": int(summary["flagged (mismatch)"])}


def audit_text_forwards(engine, text_batches: list) -> None:
    """The text forwards an audit ran (``audit_timed(text_batches=...)``), replayed on ``engine``
    batch for batch: the audit's text work with nothing around it."""
    for texts in text_batches:
        engine._encode_text_batch(texts)


# --- gunicorn ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise KeyError(field_name)


def cpu_ratio(numerator: float, denominator: float) -> float | None:
    """A ratio of two CPU figures, or None when either is 0: a worker's CPU time is read in clock
    ticks (10 ms), and a few cheap requests can finish within one tick (the smoke run, or a
    worker scheduled rarely on a busy machine): no ratio is better than a 0 or a division by 0."""
    if numerator <= 0 or denominator <= 0:
        return None
    return numerator / denominator


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def process_stop(process: subprocess.Popen) -> None:
    """SIGTERM, then after 30 s SIGKILL to the whole process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Server:
    """A gunicorn serving the project, with its own ``CLIPCHECK_NUM_THREADS``."""

    def __init__(self, workspace: Workspace, *, threads: int):
        self.threads = threads
        self.port = free_port()
        self.log_path = workspace.root / f"gunicorn-{threads}thr.log"
        # Every client's request is admitted (MAX_QUEUE), with threads to spare for health checks.
        env = {
            **os.environ, **workspace.env, "CLIPCHECK_NUM_THREADS": str(threads), "CLIPCHECK_MAX_QUEUE": str(CLIENTS),
            "DJANGO_SETTINGS_MODULE": "bench.server_settings",
        }
        # -w/--threads/-k as a deploy runs it; --timeout only so that a worker booting on a
        # loaded machine is not killed before the model is in memory.
        command = [sys.executable, "-m", "gunicorn", "clipproject.wsgi", "-w", "1", "--threads", str(CLIENTS + 2),
                   "-k", "gthread", "-b", f"127.0.0.1:{self.port}", "--timeout", "300"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.worker_pid: int | None = None
        self.memory_after_load: dict[str, float] = {}

    def wait_healthy(self, timeout: float = 600) -> None:
        _, self.worker_pid = gunicorn_wait_healthy(self.process, self.port, timeout=timeout, log_tail=self.log_tail)

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                timeout: float = 300) -> tuple[int, bytes]:
        return http_request(self.port, method, path, body, content_type, timeout)

    def post(self, path: str, body: tuple[bytes, str]) -> tuple[float, dict]:
        """Seconds from sending the request to the last byte of the answer, and the answer."""
        started = time.perf_counter()
        status, payload = self.request("POST", path, *body)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"POST {path} answered {status}: {payload[:500]!r}")
        return elapsed, json.loads(payload)

    def memory_mb(self) -> dict[str, float]:
        """The worker's resident memory now and its peak so far (VmHWM), in MB."""
        return {"rss": proc_status_kb(self.worker_pid, "VmRSS") / 1024,
                "peak": proc_status_kb(self.worker_pid, "VmHWM") / 1024}

    @property
    def worker_cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.worker_pid)

    def stop(self) -> None:
        process_stop(self.process)


@dataclass
class ServerFigures:
    """Per-request seconds pooled over rounds; throughputs and CPU seconds per round."""

    analyze: list[float] = field(default_factory=list)
    analyze_throughput: list[float] = field(default_factory=list)
    analyze_cpu: list[float] = field(default_factory=list)  # worker CPU seconds per request
    cached: list[float] = field(default_factory=list)
    classify: list[float] = field(default_factory=list)
    classify_cpu: list[float] = field(default_factory=list)
    concurrent_throughput: list[float] = field(default_factory=list)
    concurrent_cpu: list[float] = field(default_factory=list)


def server_warm_up(server: Server, inputs: Inputs) -> None:
    """First requests pay for lazy imports, the first SQLite connection and the category prompts."""
    for _ in range(2):
        data, text = inputs.fresh()
        server.post("/clip/analyze", multipart({"text": text}, data))
    server.post("/clip/classify", multipart({}, inputs.fresh()[0]))


@dataclass
class AnalyzeLoad:
    """Uncached ``/clip/analyze`` requests sent one way (one after another, or by ``CLIENTS`` at once)."""

    latencies: list[float]  # seconds per request, from sending it to the last byte of the answer
    statuses: list[int]
    throughput: float  # requests per second over the whole phase
    cpu_per_request: float  # the worker's CPU seconds per request


def analyze_bodies(inputs: Inputs, count: int) -> list[tuple[bytes, str]]:
    """``count`` multipart bodies, each with new JPEG bytes and a new text: no cache answers them."""
    return [multipart({"text": text}, data) for data, text in (inputs.fresh() for _ in range(count))]


def analyze_sequential(send: Callable, bodies: list, cpu_seconds: Callable[[], float]) -> AnalyzeLoad:
    """``send(body) -> (status, payload)`` for each body in turn; every answer must be a fresh 200."""
    latencies, cpu, started = [], cpu_seconds(), time.perf_counter()
    for body in bodies:
        sent = time.perf_counter()
        status, payload = send(body)
        latencies.append(time.perf_counter() - sent)
        if status != 200 or json.loads(payload)["cached"]:
            raise RuntimeError(f"/clip/analyze answered {status}: {payload[:300]!r}")
    elapsed = time.perf_counter() - started
    return AnalyzeLoad(latencies, [200] * len(bodies), len(bodies) / elapsed, (cpu_seconds() - cpu) / len(bodies))


def analyze_concurrent(send: Callable, per_client: list[list], cpu_seconds: Callable[[], float]) -> AnalyzeLoad:
    """One client thread per list of bodies, all started at once; every status is kept (503s included)."""
    start, lock = threading.Barrier(len(per_client) + 1), threading.Lock()
    latencies, statuses, errors = [], [], []

    def client(bodies: list) -> None:
        start.wait()
        try:
            for body in bodies:
                sent = time.perf_counter()
                status, _ = send(body)
                with lock:
                    latencies.append(time.perf_counter() - sent)
                    statuses.append(status)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    clients = [threading.Thread(target=client, args=(bodies,)) for bodies in per_client]
    for thread in clients:
        thread.start()
    cpu = cpu_seconds()
    start.wait()
    started = time.perf_counter()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return AnalyzeLoad(latencies, statuses, len(statuses) / elapsed, (cpu_seconds() - cpu) / len(statuses))


# What ``analyze_round`` appends to, per server: latencies pooled over rounds, the rest one per round.
ANALYZE_FIGURES = ("latency", "sequential", "sequential_cpu", "concurrent", "concurrent_cpu", "statuses")


def analyze_figures() -> dict[str, list]:
    return {key: [] for key in ANALYZE_FIGURES}


def analyze_round(send: Callable, inputs: Inputs, cpu_seconds: Callable[[], float], figures: dict, *,
                  sequential: int, per_client: int) -> None:
    """``sequential`` fresh requests one after another, then ``CLIENTS`` clients sending
    ``per_client`` each at once, into ``figures`` (``analyze_figures``)."""
    alone = analyze_sequential(send, analyze_bodies(inputs, sequential), cpu_seconds)
    figures["latency"] += alone.latencies
    figures["sequential"].append(alone.throughput)
    figures["sequential_cpu"].append(alone.cpu_per_request)
    together = analyze_concurrent(send, [analyze_bodies(inputs, per_client) for _ in range(CLIENTS)], cpu_seconds)
    figures["concurrent"].append(together.throughput)
    figures["concurrent_cpu"].append(together.cpu_per_request)
    figures["statuses"] += together.statuses


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def concurrency_ceiling(*, cores: int, sequential: float, cpu_per_request: float) -> float:
    """The most ``CLIENTS`` concurrent clients can gain over one: every core busy at the CPU per
    request they cost, against the sequential throughput (requests per second)."""
    return cores / cpu_per_request / sequential


def server_round(server: Server, inputs: Inputs, config: Config, figures: ServerFigures) -> None:
    send = lambda body: server.request("POST", "/clip/analyze", *body)  # noqa: E731
    cpu_seconds = lambda: server.worker_cpu_seconds  # noqa: E731
    bodies = analyze_bodies(inputs, config.analyze_requests)
    sequential = analyze_sequential(send, bodies, cpu_seconds)
    figures.analyze += sequential.latencies
    figures.analyze_throughput.append(sequential.throughput)
    figures.analyze_cpu.append(sequential.cpu_per_request)

    for body in bodies[:config.cached_requests]:
        elapsed, answer = server.post("/clip/analyze", body)
        if not answer["cached"]:
            raise RuntimeError("a repeated /clip/analyze request was not answered from the cache")
        figures.cached.append(elapsed)

    bodies = [multipart({}, inputs.fresh()[0]) for _ in range(config.classify_requests)]
    cpu = server.worker_cpu_seconds
    for body in bodies:
        elapsed, answer = server.post("/clip/classify", body)
        figures.classify.append(elapsed)
    figures.classify_cpu.append((server.worker_cpu_seconds - cpu) / len(bodies))

    concurrent = analyze_concurrent(
        send, [analyze_bodies(inputs, config.requests_per_client) for _ in range(CLIENTS)], cpu_seconds)
    if set(concurrent.statuses) != {200}:
        raise RuntimeError(f"concurrent /clip/analyze answered {sorted(set(concurrent.statuses))}")
    figures.concurrent_throughput.append(concurrent.throughput)
    figures.concurrent_cpu.append(concurrent.cpu_per_request)


# --- in-process measurements -------------------------------------------------------------


def listing_texts(text: str) -> tuple[str, str]:
    """A listing's title and description made from one corpus text."""
    return " ".join(text.split()[:8]), text


def engine_pixels(engine, images: list, batch: int):
    """``batch`` rows of preprocessed pictures (smoke: fewer pictures than a batch, repeated)."""
    pixels = engine.preprocess(images)
    return np.concatenate([pixels] * math.ceil(batch / len(pixels)))[:batch]


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


@dataclass
class Timings:
    """Wall and CPU seconds of repeated calls, pooled over rounds."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, fn: Callable[[], object], *, repeats: int, warmup: int = 0) -> None:
        timing = measure(fn, repeats=repeats, warmup=warmup)
        self.wall += timing.runs
        self.cpu += timing.cpu

    @property
    def median(self) -> float:
        return median(self.wall)

    @property
    def cpu_median(self) -> float:
        return median(self.cpu)


# --- the run -----------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[bench] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def run(config: Config) -> dict:
    """Measure everything; returns the rows and the raw figures."""
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clipcheck-bench-")))
        workspace = Workspace(root=root, model_dir=config.spec.model_dir)
        django_setup(workspace, threads=config.threads)
        server_threads = [config.threads] + ([config.compare_threads] if config.compare_threads else [])
        # Started first: the servers load their models while this process loads its own.
        servers = {}
        for threads in server_threads:
            servers[threads] = Server(workspace, threads=threads)
            stack.callback(servers[threads].stop)
        return _measure(config, servers)


def _measure(config: Config, servers: dict[int, Server]) -> dict:
    import torch

    from bench import quiet_transformers
    from bench.naive import load_fp32, naive_score, stage_ms
    from clipcheck.engine.clip import ClipEngine
    from clipcheck.images import decode_image
    from clipcheck.settings import clip_settings

    quiet_transformers()
    batch = int(clip_settings.BATCH_SIZE)  # the engine's own batch
    torch.set_num_threads(config.threads)
    inputs = Inputs(config.spec)
    progress(f"seeding {config.audit_listings} listings")
    listings_seed(inputs, config.audit_listings)

    progress("loading the naive float32 model and the engine")
    naive_model, processor = load_fp32(config.spec)
    naive_pairs = load_manifest(config.spec)[:config.naive_pairs]
    engine = ClipEngine.load(model_name=str(config.spec.model_dir), num_threads=config.threads, batch_size=batch)
    batch_jpegs = [data for data, _ in inputs.pairs[:batch]]
    pixels = engine_pixels(engine, [decode_image(data).image for data in batch_jpegs], batch)
    # The texts of one audit batch in the audit's order (title, description, title, ...),
    # cut into forwards of BATCH_SIZE texts like ``encode_texts`` does.
    listing_batch = [listing_texts(text) for _, text in inputs.pairs[:min(batch, config.audit_listings)]]
    listing_text_batch = [text for pair in listing_batch for text in pair]

    def listing_texts_pass() -> None:
        for start in range(0, len(listing_text_batch), batch):
            engine._encode_text_batch(listing_text_batch[start:start + batch])
    text = min((t for _, t in inputs.pairs), key=lambda t: abs(len(t.split()) - 30))  # a typical text

    def naive_pass() -> None:
        for path, pair_text in naive_pairs:
            naive_score(naive_model, processor, path, pair_text)

    # Warm-up, untimed: first calls allocate and pick kernels.
    naive_score(naive_model, processor, *naive_pairs[0])
    engine._forward_images(pixels[:4])
    engine._encode_text_batch(listing_text_batch[:4])

    for threads, server in servers.items():
        progress(f"waiting for gunicorn (CLIPCHECK_NUM_THREADS={threads}) on port {server.port}")
        server.wait_healthy()
        server.memory_after_load = server.memory_mb()
        server_warm_up(server, inputs)

    naive, model, forward, text_forward, listing_texts_forward, decode, audit_texts = (Timings() for _ in range(7))
    audits, audit_text_rows = [], []
    figures = {threads: ServerFigures() for threads in servers}
    for round_number in range(1, config.rounds + 1):
        progress(f"round {round_number}/{config.rounds}: naive")
        naive.add(naive_pass, repeats=1)
        progress(f"round {round_number}/{config.rounds}: model alone")
        model.add(lambda: engine._forward_images(pixels), repeats=2)
        listing_texts_forward.add(listing_texts_pass, repeats=1)
        forward.add(lambda: engine._forward_images(pixels[:1]), repeats=config.forward_repeats)
        text_forward.add(lambda: engine._encode_text_batch([text]), repeats=config.forward_repeats)
        decode.add(lambda: engine.preprocess([decode_image(data).image for data in batch_jpegs]), repeats=1)
        progress(f"round {round_number}/{config.rounds}: clip_audit")
        audit_state_reset()
        text_batches = []
        audits.append(audit_timed(config.audit_listings, text_batches))
        # The same text forwards alone, on the bench's engine (same runtime and batch).
        audit_texts.add(lambda: audit_text_forwards(engine, text_batches), repeats=1)
        audit_text_rows.append(sum(len(texts) for texts in text_batches))
        for threads, server in servers.items():
            progress(f"round {round_number}/{config.rounds}: gunicorn CLIPCHECK_NUM_THREADS={threads}")
            server_round(server, inputs, config, figures[threads])
    memory = {str(threads): {"after_load": server.memory_after_load, "end": server.memory_mb()}
              for threads, server in servers.items()}
    progress("naive stage breakdown")
    stages = stage_ms(naive_model, processor, naive_pairs[:8])

    model_mb = sum(f.stat().st_size for f in config.spec.model_dir.glob("*.safetensors")) / 2**20
    raw = {
        "threads": config.threads,
        "dtype": engine.dtype_name,
        "naive": {"pairs": len(naive_pairs), **asdict(naive), "stage_ms": stages},
        "model_alone": {"batch": batch, **asdict(model)},
        "listing_texts": {"texts": len(listing_text_batch), "listings": len(listing_batch),
                          **asdict(listing_texts_forward)},
        "audit_texts": {"rows": audit_text_rows, "listings": config.audit_listings, **asdict(audit_texts)},
        "decode_preprocess": {"images": len(batch_jpegs), **asdict(decode)},
        "forward_1": asdict(forward),
        "text_forward_1": asdict(text_forward),
        "audit": audits,
        "servers": {str(k): asdict(v) for k, v in figures.items()},
        "worker_memory": memory,
        "model_on_disk_mb": model_mb,
    }
    return {"rows": build_rows(config, raw), "raw": raw}


def build_rows(config: Config, raw: dict) -> list[Row]:
    t, batch = raw["threads"], raw["model_alone"]["batch"]
    wall, cpu = (lambda part: median(part["wall"])), (lambda part: median(part["cpu"]))
    naive = raw["naive"]["pairs"] / wall(raw["naive"])
    naive_cpu_ms = cpu(raw["naive"]) / raw["naive"]["pairs"] * 1e3
    model_cpu_ms = cpu(raw["model_alone"]) / batch * 1e3
    model = batch / wall(raw["model_alone"])
    texts = raw["listing_texts"]
    # The audit's own work with nothing around it: one image forward and two text forwards per listing.
    listing_s = wall(raw["model_alone"]) / batch + wall(texts) / texts["listings"]
    listing_cpu_ms = (cpu(raw["model_alone"]) / batch + cpu(texts) / texts["listings"]) * 1e3
    # The model work the audit actually needs: the same image forwards, and the text forwards
    # it ran (passages, attribute rewrites, category prompts) replayed alone.
    audit_texts = raw["audit_texts"]
    text_rows = median(audit_texts["rows"]) / audit_texts["listings"]
    own_s = wall(raw["model_alone"]) / batch + wall(audit_texts) / audit_texts["listings"]
    own_cpu_ms = (cpu(raw["model_alone"]) / batch + cpu(audit_texts) / audit_texts["listings"]) * 1e3
    audit = median([a["images"] / a["wall_s"] for a in raw["audit"]])
    audit_cpu_ms = median([a["cpu_s"] / a["images"] for a in raw["audit"]]) * 1e3
    audit_cores = median([a["cpu_s"] / a["wall_s"] for a in raw["audit"]])
    forward, forward_cpu = wall(raw["forward_1"]) * 1e3, cpu(raw["forward_1"]) * 1e3
    decode = raw["decode_preprocess"]
    stages = ", ".join(f"{k} {v:.0f}" for k, v in raw["naive"]["stage_ms"].items())
    rows = [
        Row("naive", f"naive: CLIPProcessor + fp32 CLIPModel, 1 pair/forward [{t} thr]", naive, "img/s",
            note=f"cpu {naive_cpu_ms:.0f} ms/pair; median ms: {stages}"),
        Row("model_alone", f"model alone: image encoder, batch {batch}, {raw['dtype']} [{t} thr]", model, "img/s",
            note=f"cpu {model_cpu_ms:.0f} ms/img"),
        Row("model_listing", f"model alone: 1 image + 2 texts per listing, batch {batch} [{t} thr]", 1 / listing_s,
            "img/s", note=f"cpu {listing_cpu_ms:.0f} ms/listing ({texts['texts']} texts, {batch} per forward)"),
        Row("decode_preprocess", "decode_image + engine preprocess, per image",
            wall(decode) / decode["images"] * 1e3, "ms", note=f"cpu {cpu(decode) / decode['images'] * 1e3:.0f} ms"),
        compared(Row("audit_vs_naive", f"clip_audit --recheck, {config.audit_listings} listings [{t} thr]", audit,
                     "img/s", note=f"1 image + 2 texts each; cpu {audit_cpu_ms:.0f} ms/img, {audit_cores:.2f} cores"),
                 audit / naive, f"{audit / naive:.2f}x naive", "audit_vs_naive", cpu_ratio=naive_cpu_ms / audit_cpu_ms),
        compared(Row("audit_vs_model", "clip_audit vs model alone (image encoder)", audit, "img/s"),
                 audit / model, f"{audit / model:.0%} of model alone", "audit_vs_model",
                 cpu_ratio=model_cpu_ms / audit_cpu_ms),
        compared(Row("audit_vs_listing", "clip_audit vs model alone (image + 2 texts)", audit, "img/s",
                     note="the old definition: understates the audit's text forwards"),
                 audit * listing_s, f"{audit * listing_s:.0%} of that", cpu_ratio=listing_cpu_ms / audit_cpu_ms),
        compared(Row("audit_vs_own_forwards", "clip_audit vs model alone (its own forwards)", audit, "img/s",
                     note=f"1 image + {text_rows:.1f} text rows per listing (passages, rewrites, prompts); "
                          f"cpu {own_cpu_ms:.0f} ms/listing"),
                 audit * own_s, f"{audit * own_s:.0%} of that", cpu_ratio=own_cpu_ms / audit_cpu_ms),
        Row("forward_1", f"model alone: one image forward, batch 1 [{t} thr]", forward, "ms",
            note=f"cpu {forward_cpu:.0f} ms"),
        Row("text_forward", f"model alone: one text forward (~30 words) [{t} thr]", wall(raw["text_forward_1"]) * 1e3,
            "ms", note=f"cpu {cpu(raw['text_forward_1']) * 1e3:.0f} ms"),
    ]
    for threads, figures in raw["servers"].items():
        tag = f"[NUM_THREADS={threads}]"
        p50, p95 = (percentile(figures["analyze"], q) * 1e3 for q in (50, 95))
        sequential = median(figures["analyze_throughput"])
        concurrent = median(figures["concurrent_throughput"])
        classify = percentile(figures["classify"], 50) * 1e3
        memory = raw["worker_memory"][threads]
        peak = memory["end"]["peak"]
        over_model = peak - raw["model_on_disk_mb"]
        sequential_cpu, concurrent_cpu = median(figures["analyze_cpu"]), median(figures["concurrent_cpu"])
        classify_cpu = median(figures["classify_cpu"])
        rows += [
            compared(Row(f"analyze_p50@{threads}", f"/clip/analyze p50, uncached {tag}", p50, "ms",
                         note=f"{len(figures['analyze'])} requests; worker cpu {sequential_cpu * 1e3:.0f} ms/req"),
                     p50 / forward, f"{p50 / forward:.2f}x one forward", "analyze_vs_forward",
                     cpu_ratio=cpu_ratio(sequential_cpu * 1e3, forward_cpu)),
            compared(Row(f"analyze_p95@{threads}", f"/clip/analyze p95, uncached {tag}", p95, "ms"),
                     p95 / forward, f"{p95 / forward:.2f}x one forward"),
            Row(f"analyze_cached_p50@{threads}", f"/clip/analyze p50, stored verdict {tag}",
                percentile(figures["cached"], 50) * 1e3, "ms", note=f"{len(figures['cached'])} requests"),
            Row(f"sequential@{threads}", f"/clip/analyze sequential throughput {tag}", sequential, "req/s",
                note=f"worker used {sequential * sequential_cpu:.2f} cores"),
            compared(Row(f"concurrent@{threads}", f"/clip/analyze {CLIENTS} concurrent clients {tag}", concurrent,
                         "req/s", note=f"{CLIENTS * config.requests_per_client} requests/round; worker cpu "
                                       f"{concurrent_cpu * 1e3:.0f} ms/req, used {concurrent * concurrent_cpu:.2f} cores"),
                     concurrent / sequential, f"{concurrent / sequential:.2f}x sequential", "concurrent_vs_sequential",
                     cpu_ratio=cpu_ratio(sequential_cpu, concurrent_cpu)),
            compared(Row(f"classify_p50@{threads}", f"/clip/classify p50, 45 categories {tag}", classify, "ms",
                         note=f"{len(figures['classify'])} requests; prompts cached; worker cpu "
                              f"{classify_cpu * 1e3:.0f} ms/req"),
                     classify / p50, f"{classify / p50:.2f}x analyze p50", "classify_vs_analyze",
                     cpu_ratio=cpu_ratio(classify_cpu, sequential_cpu)),
            compared(Row(f"worker_rss@{threads}", f"gunicorn worker peak RSS (VmHWM) {tag}", peak, "MB",
                         note=f"after load: RSS {memory['after_load']['rss']:.0f}, peak {memory['after_load']['peak']:.0f}"
                              f"; at the end: RSS {memory['end']['rss']:.0f}"),
                     over_model, f"model {raw['model_on_disk_mb']:.0f} MB {over_model:+.0f} MB", "rss_over_model"),
        ]
    return rows


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine() -> dict:
    import torch

    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags.split(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
