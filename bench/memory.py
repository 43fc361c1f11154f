"""Where a gunicorn worker's memory goes, phase by phase: ``python -m bench.memory``.

One gunicorn per runtime, started as ``bench.runtimes.RuntimeServer`` starts it (the shipped
gunicorn.conf.py, one worker with its 8 threads, ``bench.server_settings``, a throwaway SQLite
database), fed the runtime bench's request pattern three times: 20 sequential uncached
``/clip/analyze`` requests, then 8 concurrent clients with 3 requests each. After start and
after each step it prints the worker's ``VmRSS`` / ``VmHWM`` (peak) / ``RssAnon`` / ``RssFile``
in MB. File-backed pages count in RSS: a mapped checkpoint or compiled blob is resident memory
as far as a container limit or the OOM killer can tell.

    python -m bench.memory                                   # openvino then torch, warm cache
    python -m bench.memory --runtimes openvino --cache /tmp/empty-cache   # a cold start

The runtime cache (``--cache``, default the bench's own) is kept: the first run against an
empty one converts the model, and that start's peak is the cold one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.assets import FULL, ensure_assets
from bench.runtimes import RuntimeServer
from bench.service import CLIENTS, Inputs, Workspace, multipart, proc_cpu_seconds, proc_status_kb

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
STEPS = ("sequential", "concurrent") * 3


def memory_mb(pid: int) -> dict[str, int]:
    return {name: proc_status_kb(pid, name) // 1024 for name in FIELDS}


def send(server: RuntimeServer, inputs: Inputs, step: str) -> list[int]:
    """One step of the pattern; the statuses answered."""
    clients, per_client = (1, 20) if step == "sequential" else (CLIENTS, 3)
    bodies = [[multipart({"text": text}, data) for data, text in (inputs.fresh() for _ in range(per_client))]
              for _ in range(clients)]
    statuses: list[int] = []

    def client(own: list) -> None:
        for body in own:
            statuses.append(server.post(body)[1])

    threads = [threading.Thread(target=client, args=(own,)) for own in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", default="openvino,torch", help="comma-separated RUNTIME values")
    parser.add_argument("--cache", type=Path, default=FULL.root / "runtime", help="RUNTIME_CACHE_DIR of the servers")
    args = parser.parse_args(argv)
    ensure_assets(FULL)
    model_mb = sum(path.stat().st_size for path in FULL.model_dir.iterdir() if path.suffix == ".safetensors") / 2**20
    with tempfile.TemporaryDirectory(prefix="clipcheck-bench-memory-") as root:
        workspace = Workspace(root=Path(root), model_dir=FULL.model_dir)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env={**os.environ, **workspace.env},
                       check=True, capture_output=True)
        inputs = Inputs(FULL)
        for runtime in args.runtimes.split(","):
            server = RuntimeServer(workspace, runtime=runtime, cache_dir=args.cache, label=runtime)
            try:
                started = server.wait_healthy()
                pid = server.worker_pid
                print(f"{runtime} ({server.health['precision']}), healthy after {started:.1f} s; model {model_mb:.0f} MB")
                print(f"  {'after':<12}" + "".join(f"{name:>9}" for name in FIELDS))
                print(f"  {'start':<12}" + "".join(f"{value:>9}" for value in memory_mb(pid).values()))
                statuses, cpu = [], proc_cpu_seconds(pid)
                for step in STEPS:
                    statuses += send(server, inputs, step)
                    print(f"  {step:<12}" + "".join(f"{value:>9}" for value in memory_mb(pid).values()))
                cpu = (proc_cpu_seconds(pid) - cpu) / len(statuses)
                peak = memory_mb(pid)["VmHWM"]
                print(f"  peak {peak} MB = model {peak - model_mb:+.0f} MB; worker cpu {cpu * 1e3:.0f} ms/request; "
                      f"answers other than 200: {len(statuses) - statuses.count(200)} of {len(statuses)}")
            finally:
                server.stop()


if __name__ == "__main__":
    main()
