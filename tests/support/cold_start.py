"""One worker cold-starting on a shared runtime cache (run as a process, several at once).

    python -m tests.support.cold_start CHECKPOINT CACHE_DIR READY_DIR WORKERS

Imports the engine, marks itself ready in READY_DIR and waits until WORKERS
processes are ready, so that their loads start together; then loads
CHECKPOINT on OpenVINO (one lane, float32) and prints one JSON line: the
embedding of a text, and how many times this process converted the
checkpoint. A load that fails exits 1 with its traceback.
"""

import json
import os
import sys
import time
from pathlib import Path

READY_DEADLINE_SECONDS = 120


def main(checkpoint: str, cache_dir: str, ready_dir: str, workers: int) -> None:
    from clipcheck.engine.clip import ClipEngine
    from clipcheck.engine.openvino import conversion

    conversions = []
    convert = conversion.convert

    def counted(*args, **kwargs):
        conversions.append(1)
        return convert(*args, **kwargs)

    conversion.convert = counted
    Path(ready_dir, str(os.getpid())).touch()
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while len(os.listdir(ready_dir)) < workers and time.monotonic() < deadline:
        time.sleep(0.01)
    engine = ClipEngine.load(model_name=checkpoint, runtime="openvino", dtype="float32", num_threads=1,
                             runtime_cache_dir=cache_dir)
    embedding = engine.encode_texts(["a red square"])[0][0]
    print(json.dumps({"embedding": embedding.tolist(), "conversions": len(conversions),
                      "cache_problem": engine.cache_problem}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
