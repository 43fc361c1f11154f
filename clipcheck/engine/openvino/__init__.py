"""The OpenVINO runtime: both CLIP towers converted from the checkpoint, an
int8 build quantised by NNCF, and the disk cache that keeps them.

One module per concern, each importing only those before it:

* ``cache``: content keys, sha-verified manifests, builds made once under a
  lock and published whole, stale staging swept, the fallback for a cache
  that cannot be used;
* ``conversion``: the exact IR (``fp32/``) from the transformers model;
* ``compiled``: the CPU plugin's settings and the verified compiled blobs;
* ``runtime``: ``OpenVinoRuntime``, the engine's ``Runtime`` on two
  compiled towers;
* ``bf16``: the bf16-weight build served at bf16 (``bf16w/``);
* ``guard``: the int8 guard's figures and the record a build keeps;
* ``search``: NNCF quantisation and the search for an int8 build that passes;
* ``int8``: the int8 build (``int8/``), made or reused;
* ``serving``: ``load_openvino_runtime``, what a worker loads.

openvino, nncf and torch are imported inside the functions that use them:
importing this package costs neither.
"""

from clipcheck.engine.openvino.bf16 import BF16_WEIGHTS, ensure_bf16_weights_build
from clipcheck.engine.openvino.cache import (
    RuntimeCache,
    RuntimeCacheError,
    build_dir,
    cache_key,
    file_sha256,
    sweep_staging,
    verify,
)
from clipcheck.engine.openvino.compiled import TOWERS, compile_model, ov_precision
from clipcheck.engine.openvino.conversion import ensure_exact_build
from clipcheck.engine.openvino.guard import (
    GUARD_MAX_SCORE_GAP,
    GUARD_MIN_AGREEMENT,
    INT8_RECIPE,
    guard_figures,
    int8_proven,
    int8_record,
)
from clipcheck.engine.openvino.int8 import CALIBRATION_SIZE, build_int8, ensure_int8_build, runtime_build
from clipcheck.engine.openvino.runtime import OpenVinoRuntime
from clipcheck.engine.openvino.search import (
    MAX_EXACT_SHARE,
    RESTORED_MAX_SCORE_GAP,
    int8_search,
    quantisable_groups,
    quantize_tower,
)
from clipcheck.engine.openvino.serving import load_openvino_runtime

__all__ = [
    "BF16_WEIGHTS", "CALIBRATION_SIZE", "GUARD_MAX_SCORE_GAP", "GUARD_MIN_AGREEMENT", "INT8_RECIPE",
    "MAX_EXACT_SHARE", "RESTORED_MAX_SCORE_GAP", "TOWERS", "OpenVinoRuntime", "RuntimeCache", "RuntimeCacheError",
    "build_dir", "build_int8", "cache_key", "compile_model", "ensure_bf16_weights_build", "ensure_exact_build",
    "ensure_int8_build", "file_sha256", "guard_figures", "int8_proven", "int8_record", "int8_search",
    "load_openvino_runtime", "ov_precision", "quantisable_groups", "quantize_tower", "runtime_build",
    "sweep_staging", "verify",
]
