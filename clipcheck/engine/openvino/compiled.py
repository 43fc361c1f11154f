"""Compiled models: the CPU plugin's settings, and compiled blobs kept in the cache.

A serving worker compiles nothing it finds compiled: each build's towers,
compiled for one precision and one set of lanes, are exported once to
``compiled/<build>-<precision>-<streams>x<threads>/{image,text}.blob``. A
worker maps each blob, checks the mapped bytes against the sha256 the
manifest recorded and imports that very mapping: a blob with flipped bytes,
one compiled from another IR (the manifest names the IR's manifest) or with
other settings is compiled and exported again, never imported. The cache
never writes a published file in place (builds are renamed into place), so
what was checked is what the model reads.
"""

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from clipcheck.engine.lanes import ForwardLanes
from clipcheck.engine.openvino.cache import (
    COMPILED_DIR,
    Manifest,
    RuntimeCache,
    RuntimeCacheError,
    check_made_from,
    library_versions,
    manifest_sha256,
    read_manifest,
)

logger = logging.getLogger(__name__)

TOWERS = ("image", "text")

# Prepared primitive executors the CPU plugin keeps per compiled model (its
# default: 5000). Every (batch, text length) pair is a shape with its own
# executors, about 25 of them on ViT-B/32's text tower, and each kept one
# holds memory: 190 random text shapes grew a worker by 1495 MB with the
# default, 486 MB with 256 and 397 MB with 32. A forward whose shape is no
# longer kept prepares it again, about 10 ms there: with 32 only the last
# shape was kept, and a pass over the audit's 9 text shapes ran 1.9x PyTorch
# bf16 instead of 2.3x with 256, which keeps the last nine or so.
RUNTIME_SHAPE_CACHE = 256


def compile_config(*, precision: str | None, threads: int, streams: int = 1) -> dict[str, Any]:
    """The CPU plugin's settings: ``streams`` inferences may run at once, each on ``threads`` threads
    (one stream per engine lane; the streams share the weights)."""
    import openvino as ov

    config: dict[str, Any] = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": str(int(streams)),
        "INFERENCE_NUM_THREADS": int(threads) * int(streams),
        "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_SHAPE_CACHE,
    }
    if "ENABLE_CPU_PINNING" in ov.Core().get_property("CPU", "SUPPORTED_PROPERTIES"):
        # The plugin pins each stream's thread to a core of its own (its
        # default on Linux). A worker's request threads decode and serialise
        # on the same cores: a pinned forward waited for its busy core while
        # the other idled. Unpinned, on 2 cores: sequential /clip/analyze
        # 13.9-14.1 -> 15.9-16.7 req/s, 8 clients 20.8-21.7 -> 22.2-22.3
        # req/s (the cores 87% -> 95% busy; docs/runtime.md).
        config["ENABLE_CPU_PINNING"] = False
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


def compile_model(path: Any, *, precision: str | None, threads: int, streams: int = 1) -> Any:
    """An IR file or a model in memory compiled for the CPU (``compile_config``)."""
    import openvino as ov

    model = path if isinstance(path, ov.Model) else str(path)
    return ov.Core().compile_model(model, "CPU", compile_config(precision=precision, threads=threads, streams=streams))


def ov_precision(dtype: str) -> str | None:
    """OpenVINO's inference precision for a dtype name (``"bfloat16"``); None keeps
    the CPU default (bf16 on CPUs with native bf16, else f32)."""
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(dtype)


def compiled_name(model_dir: Path, *, precision: str | None, lanes: ForwardLanes) -> str:
    return f"{COMPILED_DIR}/{model_dir.name}-{precision or 'default'}-{lanes.count}x{lanes.threads}"


def ensure_compiled(cache: RuntimeCache, model_dir: Path, *, precision: str | None,
                    lanes: ForwardLanes) -> dict[str, Any]:
    """Both towers of the verified IR in ``model_dir`` compiled for ``lanes``:
    imported from their verified blobs, compiled and exported once when missing."""
    config = compile_config(precision=precision, threads=lanes.threads, streams=lanes.count)
    made_from = {
        "source": manifest_sha256(model_dir),
        "config": {name: str(value) for name, value in config.items()},
        "versions": library_versions(),
    }

    def build(staging: Path) -> Manifest:
        for tower in TOWERS:
            compiled = compile_model(model_dir / f"{tower}.xml", precision=precision, threads=lanes.threads,
                                     streams=lanes.count)
            blob = io.BytesIO()
            compiled.export_model(blob)
            del compiled
            (staging / f"{tower}.blob").write_bytes(blob.getbuffer())
        return made_from

    _, towers = cache.ensure(
        compiled_name(model_dir, precision=precision, lanes=lanes),
        load=lambda directory: import_blobs(directory, made_from=made_from, config=config), build=build,
    )
    return towers


def import_blobs(directory: Path, *, made_from: Manifest, config: dict[str, Any]) -> dict[str, Any]:
    """The towers compiled in ``directory``, each imported from the bytes whose
    sha256 was checked; RuntimeCacheError for anything the manifest does not vouch for."""
    import openvino as ov

    manifest = read_manifest(directory)
    check_made_from(directory, manifest, made_from)
    core = ov.Core()
    towers = {}
    for tower in TOWERS:
        path = directory / f"{tower}.blob"
        try:
            # Copy-on-write: the mapping never writes the file, and its pages
            # stay the page cache's, shared by every worker on the host.
            mapped = np.memmap(path, dtype=np.uint8, mode="c")
        except (OSError, ValueError) as exc:
            raise RuntimeCacheError(f"{path} cannot be read ({exc.__class__.__name__})") from exc
        if hashlib.sha256(mapped.data).hexdigest() != manifest["files"].get(path.name):
            raise RuntimeCacheError(f"{path} does not match its recorded sha256")
        try:
            compiled = core.import_model(ov.Tensor(mapped, shared_memory=True), "CPU", config)
        except RuntimeError as exc:  # verified, yet not importable here (e.g. another CPU)
            raise RuntimeCacheError(f"{path} cannot be imported: {exc}") from exc
        # Imported without a copy: the model reads its constants from the
        # mapping, which must live as long as the model does.
        compiled.blob_mapping = mapped
        towers[tower] = compiled
    return towers
