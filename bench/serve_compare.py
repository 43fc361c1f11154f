"""Two (or more) source trees served side by side, in one run: ``python -m bench.serve_compare``.

    python -m bench.serve_compare --rounds 3 base=/tmp/clipcheck-main:auto new=.:auto \\
        base-torch=/tmp/clipcheck-main:torch new-torch=.:torch

Each ``label=tree[:runtime]`` starts a gunicorn from ``tree`` (a checkout with ``.venv`` and
``bench/.cache`` in place, e.g. ``git archive main | tar -x -C /tmp/clipcheck-main``) with its
shipped ``gunicorn.conf.py``, as ``bench/runtimes.py`` ``RuntimeServer`` does: one worker, its 8
threads, ``NUM_THREADS`` unset, default admission, runtime ``auto`` unless named. Rounds are
interleaved (each round measures every server in turn, so load from other processes hits them
alike): sequential uncached ``/clip/analyze`` requests (latency, throughput and the worker's CPU
per request), then 8 concurrent clients (throughput, CPU per request, statuses). Every request
sends new JPEG bytes and a new text (``bench.service.Inputs``): no cache answers. Prints one line
per server and its worker's peak RSS; this is how a change to the request path is measured
before and after on the same machine (docs/bench.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.assets import FULL, ensure_assets
from bench.service import (
    CLIENTS,
    Inputs,
    analyze_figures,
    analyze_round,
    concurrency_ceiling,
    free_port,
    gunicorn_wait_healthy,
    http_request,
    multipart,
    proc_cpu_seconds,
    proc_status_kb,
    process_stop,
    usable_cores,
)


class TreeServer:
    """gunicorn serving ``tree`` on ``runtime``, with a throwaway database of its own."""

    def __init__(self, label: str, tree: Path, runtime: str, root: Path, cache_dir: Path):
        self.label, self.port = label, free_port()
        env = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "bench.server_settings",
            "DATABASE_URL": f"sqlite:///{root / label}.sqlite3", "DJANGO_MEDIA_ROOT": str(root / f"media-{label}"),
            "CLIPCHECK_MODEL": str(FULL.model_dir),  # one checkpoint for every tree
            "DJANGO_LOG_LEVEL": "WARNING", "DJANGO_REQUEST_LOG_LEVEL": "WARNING",
            "CLIPCHECK_RUNTIME": runtime, "CLIPCHECK_RUNTIME_CACHE_DIR": str(cache_dir),
            "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "1", "GUNICORN_TIMEOUT": "600",
        }
        env.pop("CLIPCHECK_NUM_THREADS", None)  # the default: every core, split between the lanes
        python = str(tree / ".venv" / "bin" / "python")
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=tree, env=env, check=True)
        with (root / f"gunicorn-{label}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [python, "-m", "gunicorn", "-c", str(tree / "gunicorn.conf.py"), "clipproject.wsgi:application"],
                cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.worker_pid = None

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        return http_request(self.port, method, path, body, content_type)

    def wait_healthy(self, timeout: float = 900) -> None:
        _, self.worker_pid = gunicorn_wait_healthy(self.process, self.port, timeout=timeout)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.worker_pid)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("servers", nargs="+", metavar="label=tree[:runtime]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=12, help="sequential requests per round and server")
    parser.add_argument("--per-client", type=int, default=3, help="requests per concurrent client and round")
    parser.add_argument("--cache-dir", type=Path, default=FULL.root / "runtime",
                        help="runtime cache shared by the servers (kept between runs)")
    args = parser.parse_args(argv)
    ensure_assets(FULL)

    with tempfile.TemporaryDirectory(prefix="clipcheck-serve-compare-") as root:
        servers = []
        try:
            for spec in args.servers:
                label, _, rest = spec.partition("=")
                tree, _, runtime = rest.partition(":")
                servers.append(TreeServer(label, Path(tree).resolve(), runtime or "auto", Path(root), args.cache_dir))
            for server in servers:
                server.wait_healthy()
            inputs = Inputs(FULL)
            for server in servers:  # lazy imports, the first connection, the category prompts
                for _ in range(3):
                    data, text = inputs.fresh()
                    server.request("POST", "/clip/analyze", *multipart({"text": text}, data))
            figures = {server.label: analyze_figures() for server in servers}
            load_before, cores = os.getloadavg(), usable_cores()
            for _ in range(args.rounds):
                for server in servers:
                    analyze_round(lambda body, server=server: server.request("POST", "/clip/analyze", *body),
                                  inputs, server.cpu_seconds, figures[server.label], sequential=args.sequential,
                                  per_client=args.per_client)
            load_after = os.getloadavg()
            print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {args.rounds} rounds, "
                  f"medians of rounds, latency percentiles over every sequential request")
            for server in servers:
                f = figures[server.label]
                sequential, concurrent = statistics.median(f["sequential"]), statistics.median(f["concurrent"])
                ceiling = concurrency_ceiling(cores=cores, sequential=sequential,
                                              cpu_per_request=statistics.median(f["concurrent_cpu"]))
                ok = f["statuses"].count(200) / len(f["statuses"])
                print(f"{server.label:12s} p50 {statistics.median(f['latency']) * 1e3:5.0f} ms, sequential "
                      f"{sequential:5.2f} req/s (cpu {statistics.median(f['sequential_cpu']) * 1e3:3.0f} ms/req); "
                      f"{CLIENTS} clients {concurrent:5.2f} req/s (cpu {statistics.median(f['concurrent_cpu']) * 1e3:3.0f}"
                      f" ms/req) = {concurrent / sequential:.2f}x (at most {ceiling:.2f}x on {cores} cores); "
                      f"200s {ok:.0%}; "
                      f"peak RSS {proc_status_kb(server.worker_pid, 'VmHWM') / 1024:.0f} MB")
        finally:
            for server in servers:
                process_stop(server.process)


if __name__ == "__main__":
    main()
