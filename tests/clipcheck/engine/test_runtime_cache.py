"""The runtime cache trusts nothing it did not verify, builds once, and never takes a worker down.

- a compiled blob with flipped bytes, or a build of another checkpoint
  placed under this checkpoint's key, is built again, never served;
- workers cold-starting together on an empty cache all load (one builds,
  the others wait for it);
- a cache that cannot be written or read (read-only, full, unreadable,
  replaced by a file) leaves the worker serving, built in a temporary
  directory, and saying why;
- the staging directories of a killed build are removed by the next one.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image
from rest_framework.test import APIClient

from clipcheck.engine import engine_status, get_engine, reset_engine
from clipcheck.engine.openvino import cache_key, sweep_staging, verify
from clipcheck.engine.openvino.cache import STAGING_PREFIX, build_lock
from tests.checkpoints import build_tiny_clip
from tests.support.clip_settings import set_clip_settings
from tests.support.filesystem_faults import FAULTS, filesystem_fault, tree_files
from tests.support.runtime import RUNTIME_CACHE_DIR

ROOT = Path(__file__).resolve().parents[3]
TEXTS = ["red", "a blue bag with a strap"]
PICTURES = [Image.new("RGB", (64, 48), colour) for colour in ((200, 30, 30), (20, 40, 220))]
WORKERS = 4


def openvino_embeddings(settings, cache_dir, model=None):
    """Embeddings of ``PICTURES`` and ``TEXTS`` from a freshly loaded OpenVINO f32 engine on ``cache_dir``."""
    set_clip_settings(settings, RUNTIME="openvino", DTYPE="float32", NUM_THREADS=1, RUNTIME_CACHE_DIR=str(cache_dir),
                      **({"MODEL": model} if model else {}))
    reset_engine()
    engine = get_engine()
    assert (engine.runtime_name, engine.precision) == ("openvino", "f32")
    return np.concatenate([engine.encode_images(PICTURES), engine.encode_texts(TEXTS)[0]])


def flip_bytes(path, count=64):
    """``count`` bytes flipped at a third and at half of the file (weights, in a compiled blob)."""
    data = bytearray(path.read_bytes())
    for start in (len(data) // 3, len(data) // 2):
        data[start:start + count] = bytes(255 - byte for byte in data[start:start + count])
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory):
    """A second tiny checkpoint: the same architecture, other weights."""
    return str(build_tiny_clip(tmp_path_factory.mktemp("other-clip"), seed=1))


def exact_build_copied(tiny_model_dir, cache_dir):
    """The session's exact build of the tiny checkpoint in ``cache_dir`` (a conversion costs seconds)."""
    key = cache_key(tiny_model_dir)
    shutil.copytree(Path(RUNTIME_CACHE_DIR) / key / "fp32", Path(cache_dir) / key / "fp32")


@pytest.mark.django_db
def test_compiled_blobs_with_flipped_bytes_are_compiled_again_never_served(settings, tmp_path, tiny_model_dir,
                                                                          fresh_engine):
    reference = openvino_embeddings(settings, RUNTIME_CACHE_DIR)
    cache_dir = tmp_path / "cache"
    exact_build_copied(tiny_model_dir, cache_dir)
    assert np.array_equal(openvino_embeddings(settings, cache_dir), reference)  # compiled and exported
    assert APIClient().get("/clip/health").json()["runtime_cache"] is None
    assert np.array_equal(openvino_embeddings(settings, cache_dir), reference)  # read back from the compiled blobs
    compiled = [path for path in tree_files(cache_dir / cache_key(tiny_model_dir) / "compiled")
                if path.name != "manifest.json" and path.stat().st_size > 1024]
    assert compiled
    for blob in compiled:
        flip_bytes(blob)

    assert np.array_equal(openvino_embeddings(settings, cache_dir), reference)
    for directory in {blob.parent for blob in compiled}:
        verify(directory)  # compiled and recorded again


@pytest.mark.django_db
def test_a_build_of_another_checkpoint_under_this_key_is_rebuilt(settings, tmp_path, tiny_model_dir,
                                                                 other_checkpoint, fresh_engine):
    reference = openvino_embeddings(settings, RUNTIME_CACHE_DIR)
    other = openvino_embeddings(settings, tmp_path / "other", model=other_checkpoint)
    assert np.abs(other - reference).max() > 0.1  # the two checkpoints answer differently
    # The other checkpoint's whole build (IR, manifests, compiled blobs) under this one's key.
    cache_dir = tmp_path / "mixed"
    shutil.copytree(tmp_path / "other" / cache_key(other_checkpoint), cache_dir / cache_key(tiny_model_dir))

    assert np.array_equal(openvino_embeddings(settings, cache_dir, model=tiny_model_dir), reference)


def test_workers_cold_starting_together_on_an_empty_cache_all_load(tmp_path, tiny_model_dir):
    cache_dir, ready = tmp_path / "cache", tmp_path / "ready"
    ready.mkdir()
    command = [sys.executable, "-m", "tests.support.cold_start", tiny_model_dir, str(cache_dir), str(ready),
               str(WORKERS)]

    def worker(_):
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        return done.returncode, done.stdout, done.stderr

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = list(pool.map(worker, range(WORKERS)))
    failed = [stderr for returncode, _, stderr in outcomes if returncode != 0]
    assert not failed, f"{len(failed)} of {WORKERS} workers failed to load; the first:\n{failed[0][-4000:]}"
    answers = [json.loads(stdout.splitlines()[-1]) for _, stdout, _ in outcomes]
    assert sum(answer["conversions"] for answer in answers) == 1  # one built, the others read its build
    assert all(answer["cache_problem"] is None for answer in answers)
    first = np.array(answers[0]["embedding"])
    assert all(np.array_equal(np.array(answer["embedding"]), first) for answer in answers)
    assert not list((cache_dir / cache_key(tiny_model_dir)).glob(f"{STAGING_PREFIX}*"))


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [*FAULTS, "replaced by a file"])
def test_a_cache_that_cannot_be_used_leaves_the_worker_serving_and_saying_so(settings, tmp_path, fault,
                                                                            fresh_engine):
    reference = openvino_embeddings(settings, RUNTIME_CACHE_DIR)
    temporary = set(Path(tempfile.gettempdir()).glob("clipcheck-runtime-*"))
    cache_dir = tmp_path / "cache"
    if fault == "replaced by a file":
        cache_dir.write_text("not a directory")
        texts = openvino_embeddings(settings, cache_dir)
    else:
        cache_dir.mkdir()
        with filesystem_fault(cache_dir, fault):
            texts = openvino_embeddings(settings, cache_dir)
    assert np.array_equal(texts, reference)
    status = engine_status()
    assert status["model_loaded"] and status["runtime"] == "openvino"
    assert str(cache_dir) in status["cache_problem"] and "temporary directory" in status["cache_problem"]
    # Health says so: in words for everyone, with the reason (the cache's path) for staff.
    client = APIClient()
    health = client.get("/clip/health")
    assert (health.status_code, health.json()["runtime"]) == (200, "openvino")
    assert "cannot be used" in health.json()["runtime_cache"] and str(cache_dir) not in health.json()["runtime_cache"]
    client.force_authenticate(User(username="staff", is_staff=True))
    assert client.get("/clip/health").json()["runtime_cache"] == status["cache_problem"]
    # The temporary builds are gone once the models are compiled.
    assert set(Path(tempfile.gettempdir()).glob("clipcheck-runtime-*")) == temporary


KILLED_BUILD = """
import sys
from clipcheck.engine.openvino import ensure_exact_build
ensure_exact_build(checkpoint=sys.argv[1], cache_dir=sys.argv[2])
"""


@pytest.mark.django_db
def test_the_staging_directory_of_a_killed_build_is_removed_by_the_next_build(settings, tmp_path, tiny_model_dir,
                                                                              fresh_engine):
    cache_dir = tmp_path / "cache"
    key_dir = cache_dir / cache_key(tiny_model_dir)
    build = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, tiny_model_dir, str(cache_dir)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not list(key_dir.glob(f"{STAGING_PREFIX}*")) and build.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        build.send_signal(signal.SIGKILL)
    finally:
        build.wait()
    assert list(key_dir.glob(f"{STAGING_PREFIX}*")), "the build finished before it could be killed"

    openvino_embeddings(settings, cache_dir)
    assert not list(key_dir.glob(f"{STAGING_PREFIX}*"))
    verify(key_dir / "fp32")


def test_staging_directories_of_running_builds_are_kept(tmp_path):
    running = tmp_path / f"{STAGING_PREFIX}int8.1234-aaaa"
    killed = tmp_path / f"{STAGING_PREFIX}fp32.1234-bbbb"
    unnamed_old, unnamed_new = tmp_path / f"{STAGING_PREFIX}x1y2z3w4", tmp_path / f"{STAGING_PREFIX}a1b2c3d4"
    for path in (running, killed, unnamed_old, unnamed_new):
        path.mkdir()
    two_hours_ago = time.time() - 7200
    os.utime(unnamed_old, (two_hours_ago, two_hours_ago))
    with build_lock(tmp_path / "int8"):  # another process's int8 build, still running
        removed = sweep_staging(tmp_path)
    assert sorted(removed) == sorted([killed, unnamed_old])
    assert running.exists() and unnamed_new.exists()
