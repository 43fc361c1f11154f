"""A serving worker's OpenVINO runtime: the builds it needs, verified or made, compiled for its lanes."""

import os
from pathlib import Path
from typing import Any

from clipcheck.engine.lanes import ForwardLanes
from clipcheck.engine.openvino.bf16 import ensure_bf16_weights_build
from clipcheck.engine.openvino.cache import COMPILED_DIR, RuntimeCache, sweep_staging
from clipcheck.engine.openvino.compiled import ensure_compiled, ov_precision
from clipcheck.engine.openvino.conversion import ensure_exact_build
from clipcheck.engine.openvino.int8 import ensure_int8_build
from clipcheck.engine.openvino.runtime import OpenVinoRuntime


def load_openvino_runtime(*, checkpoint: str | os.PathLike[str], int8: bool, dtype: str, lanes: ForwardLanes,
                          cache_dir: str | os.PathLike[str], fallback: bool = True) -> OpenVinoRuntime:
    """The runtime for the checkpoint: the exact build (at bf16, its bf16-weight
    build), or with ``int8`` the int8 build its guard passed, compiled with one
    stream per lane.

    With ``fallback`` (a serving worker), a cache that cannot be read or
    written does not stop the worker: it builds in a temporary directory,
    serves, and its ``cache_problem`` says why (health reports it). The build
    command passes ``fallback=False``: filling the cache is its job.
    """
    cache = RuntimeCache(cache_dir, checkpoint, fallback=fallback)
    try:
        for parent in (cache.root, cache.root / COMPILED_DIR):
            sweep_staging(parent)
        exact_dir, manifest = ensure_exact_build(checkpoint=checkpoint, cache_dir=cache)
        model_dir: Path = exact_dir
        guard: dict[str, Any] | None = None
        precision = ov_precision(dtype)
        if int8:
            model_dir, guard = ensure_int8_build(checkpoint=checkpoint, cache_dir=cache, exact_dir=exact_dir)
            if guard.get("precision") and precision != "f32":
                # The int8 build was proven with its unquantised layers at this precision.
                precision = guard["precision"]
        elif precision == "bf16":
            model_dir = ensure_bf16_weights_build(checkpoint=checkpoint, cache_dir=cache, exact_dir=exact_dir)
        towers = ensure_compiled(cache, model_dir, precision=precision, lanes=lanes)
    finally:
        cache.close()
    return OpenVinoRuntime(
        image_model=towers["image"], text_model=towers["text"], logit_scale=manifest["logit_scale"], int8=int8,
        logit_bias=manifest.get("logit_bias"), guard=guard, lanes=lanes, cache_problem=cache.problem,
    )
