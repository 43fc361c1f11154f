"""gunicorn settings for clipcheck: ``gunicorn clipproject.wsgi`` picks this file up.

Each worker process holds its own copy of the CLIP model, so the worker
count is sized by memory, not by cores; threads let one worker serve health
checks and metrics while its model computes. Every value can be set from
the environment (docs/deployment.md).
"""

import os
import shutil
import tempfile

from clipcheck.apps import GUNICORN_ARBITER_PID_ENV

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"

# One model per worker (~600 MB for ViT-B/32 in float32 on CPU).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))

# The model must load after the fork, in each worker: torch's thread pools
# and CUDA state do not survive fork(). clipproject.wsgi loads it on import.
preload_app = False

# A worker has this long to import Django and load the model before the
# arbiter kills it, and this long to finish requests on shutdown.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "120"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))

# Recycle workers now and then to bound slow leaks in native libraries; the
# jitter keeps them from restarting (and reloading the model) together.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "2000"))

# The heartbeat file on tmpfs: a busy or slow disk must not look like a hung worker.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else None)

# Requests are logged as JSON by clipcheck.middleware; gunicorn logs its own events.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# gunicorn >= 25.1 opens a control socket at one fixed path per user, which
# two instances on a host would share; only where a path is given.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# Trust X-Forwarded-Proto etc. only from these proxy addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus multiprocess mode: every worker writes its samples here and
# /metrics adds them up. Workers inherit the variable from the arbiter.
_metrics_dir_created = False
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="clipcheck-metrics-")
    _metrics_dir_created = True


def on_starting(server):
    # A configuration mistake stops the arbiter with one line, before any worker boots.
    from clipproject.startup import settings_or_exit

    settings_or_exit()
    # The arbiter never initialises torch: clipcheck.apps recognises this
    # process by its pid and skips the model load, even with preload_app.
    os.environ[GUNICORN_ARBITER_PID_ENV] = str(os.getpid())
    # Samples of a previous run would be added to this one's.
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if os.path.isdir(metrics_dir):
        for name in os.listdir(metrics_dir):
            if name.endswith(".db"):
                os.unlink(os.path.join(metrics_dir, name))
    else:
        os.makedirs(metrics_dir, exist_ok=True)


def post_fork(server, worker):
    # Before the worker's threads start: bounded malloc arenas, so that what
    # request threads free goes back instead of raising the worker's RSS with
    # every burst of clients (clipproject/malloc.py).
    from clipproject.malloc import malloc_limit, memory_releaser

    malloc_limit()
    # Collects finished requests' reference cycles and returns free malloc
    # pages once the worker falls idle (or every few hundred requests).
    memory_releaser.start()


def pre_request(worker, req):
    from clipproject.malloc import memory_releaser

    memory_releaser.request_started()


def post_request(worker, req, environ, resp):
    # After the response is sent.
    from clipproject.malloc import memory_releaser

    memory_releaser.request_finished()


def child_exit(server, worker):
    # Drops the dead worker's live gauges (queue depth, model loaded).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_dir_created:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
