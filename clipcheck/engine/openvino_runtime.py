"""The OpenVINO runtime: both CLIP towers converted from the checkpoint, an
int8 build quantised by NNCF, and the disk cache that keeps them.

Conversion is ``openvino.convert_model`` on two small ``torch.nn.Module``
wrappers around the transformers model (``get_image_features`` and
``get_text_features``, dynamic batch and sequence dimensions), not
``optimum-intel``: optimum-intel pins its own transformers range, which lags
the transformers 5 this project runs, and exports the whole model where we
need the two projected towers only.

Cache layout (``RUNTIME_CACHE_DIR``)::

    <key>/manifest.json         checkpoint digest, library versions, sha256 of every file
    <key>/fp32/{image,text}.{xml,bin}     exact IR (f32 weights)
    <key>/bf16w/{image,text}.{xml,bin}    the exact IR with its matmul weights stored in bf16 (served at bf16)
    <key>/int8/{image,text}.{xml,bin}     NNCF int8 IR + guard.json (its figures, calibration digest)
    <key>/compiled/{fp32,bf16w,int8}-<precision>/   OpenVINO's compiled-model cache (CACHE_DIR)

``<key>`` hashes the checkpoint files' contents and the openvino, nncf, torch
and transformers versions, so another checkpoint or library release never
reads a stale build. Builds are written to a temporary directory and renamed
into place; every load checks the recorded sha256 of each file and rebuilds
what does not match.
"""

import gc
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np

from clipcheck.engine.runtimes import available_cores, unit_rows

logger = logging.getLogger(__name__)

# NNCF post-training quantisation: SmoothQuant, transformer ignored patterns.
CALIBRATION_SIZE = 64
# The int8 guard: verdicts agree with float32 on at least this share of
# pairs, and no score moves by more than this.
GUARD_MIN_AGREEMENT = 0.995
GUARD_MAX_SCORE_GAP = 0.01
# Bumped whenever quantisation or the guard changes: a build made by another
# recipe is stale and made again.
INT8_RECIPE = 3
TOWERS = ("image", "text")

_build_lock = threading.Lock()


class RuntimeCacheError(Exception):
    """A cached build is missing or does not match its manifest."""


# Keys and integrity


def library_versions():
    versions = {}
    for package in ("openvino", "nncf", "torch", "transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def file_sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


_digests = {}


def checkpoint_digest(checkpoint):
    """sha256 over the names and contents of the checkpoint's files.

    Remembered per process while no file's size or mtime changes: a worker
    asks several times while it loads, and hashing 600 MB takes a second.
    """
    files = sorted(path for path in Path(checkpoint).iterdir() if path.is_file() and not path.name.startswith("."))
    stamp = tuple((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    remembered = _digests.get(str(checkpoint))
    if remembered and remembered[0] == stamp:
        return remembered[1]
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    _digests[str(checkpoint)] = (stamp, digest.hexdigest())
    return digest.hexdigest()


def cache_key(checkpoint):
    payload = json.dumps({"checkpoint": checkpoint_digest(checkpoint), "versions": library_versions()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def build_dir(cache_dir, checkpoint):
    return Path(cache_dir) / cache_key(checkpoint)


def _write_manifest(directory, extra=None):
    files = {
        str(path.relative_to(directory)): file_sha256(path)
        for path in sorted(directory.rglob("*")) if path.is_file() and path.name != "manifest.json"
    }
    (directory / "manifest.json").write_text(json.dumps({"files": files, **(extra or {})}, indent=1, sort_keys=True))


def verify(directory):
    """The manifest of a build whose every file matches it; else RuntimeCacheError."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeCacheError(f"{directory}: no readable manifest ({exc.__class__.__name__})") from exc
    for name, expected in files.items():
        path = directory / name
        if not path.is_file() or file_sha256(path) != expected:
            raise RuntimeCacheError(f"{path} is missing or does not match its recorded sha256")
    return manifest


def _publish(staging, target):
    """Move a finished build into place atomically; a concurrent builder's
    identical result may already be there (then ours is dropped)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        # Another process published the same build between our check and rename.
        shutil.rmtree(staging, ignore_errors=True)


def _staging_dir(parent):
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".building-", dir=parent))


# Conversion


def _tower_modules(model):
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model.get_image_features(pixel_values=pixel_values).pooler_output

    class TextTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output

    return ImageTower().eval(), TextTower().eval()


# Tracing probes every attribute of every submodule (``hasattr``), and two of
# transformers' properties speak when read: the deprecated
# ``is_gradient_checkpointing`` alias and ``loss_function``, which names a
# training loss. The towers use neither; their notices are dropped here, and
# only they.
GRADIENT_CHECKPOINTING_NOTICE = r"`is_gradient_checkpointing` is deprecated"
LOSS_TYPE_NOTICE = "`loss_type="


class _LossTypeNoticeFilter(logging.Filter):
    def filter(self, record):
        return not str(record.msg).startswith(LOSS_TYPE_NOTICE)


@contextmanager
def _tracing_notices_dropped():
    loss_notice = _LossTypeNoticeFilter()
    modeling_logger = logging.getLogger("transformers.modeling_utils")
    modeling_logger.addFilter(loss_notice)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING_NOTICE, category=FutureWarning)
            yield
    finally:
        modeling_logger.removeFilter(loss_notice)


def convert(checkpoint, target):
    """Write the exact (f32-weight) IR of both towers of ``checkpoint`` to ``target``."""
    import openvino as ov
    import torch
    from transformers import CLIPModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # as clipcheck.engine.weights: no bar per start
    model = CLIPModel.from_pretrained(checkpoint, dtype=torch.float32).eval()
    image_tower, text_tower = _tower_modules(model)
    vision = model.config.vision_config
    size, channels = vision.image_size, vision.num_channels
    text_config = model.config.text_config
    ids = torch.full((2, 8), 2, dtype=torch.int64)
    ids[:, -1] = text_config.eos_token_id if text_config.eos_token_id is not None else 2
    with torch.no_grad(), warnings.catch_warnings(), _tracing_notices_dropped():
        # Tracing notes shape checks it freezes; the inputs keep them true
        # (texts are cut to the context, images have the model's size).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        image_ir = ov.convert_model(
            image_tower, example_input={"pixel_values": torch.zeros(2, channels, size, size)},
            input=[("pixel_values", [-1, channels, size, size], ov.Type.f32)],
        )
        text_ir = ov.convert_model(
            text_tower, example_input={"input_ids": ids, "attention_mask": torch.ones_like(ids)},
            input=[("input_ids", [-1, -1], ov.Type.i64), ("attention_mask", [-1, -1], ov.Type.i64)],
        )
    # f32 weights: the exact mode picks its precision at compile time.
    ov.save_model(image_ir, target / "image.xml", compress_to_fp16=False)
    ov.save_model(text_ir, target / "text.xml", compress_to_fp16=False)
    return {
        "logit_scale": float(model.logit_scale.detach().float().exp().item()),
        "embedding_dim": int(model.config.projection_dim),
    }


def ensure_exact_build(*, checkpoint, cache_dir):
    """The verified directory of the exact IR, converting it when missing or corrupt."""
    root = build_dir(cache_dir, checkpoint)
    target = root / "fp32"
    with _build_lock:
        try:
            return target, verify(target)
        except RuntimeCacheError as problem:
            if target.exists():
                logger.warning("Rebuilding the OpenVINO model: %s", problem)
        staging = _staging_dir(root)
        try:
            info = convert(checkpoint, staging)
            _write_manifest(staging, {**info, "versions": library_versions(), "checkpoint": str(checkpoint)})
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            # The float32 PyTorch model is gone after convert(); reclaim what its
            # reference cycles still hold before the worker compiles its own copy.
            gc.collect()
        # A rebuilt IR invalidates compiled blobs made from the old one.
        shutil.rmtree(root / "compiled", ignore_errors=True)
        _publish(staging, target)
        return target, verify(target)


# bf16 serving: the exact IR with its matmul weights stored in bfloat16
#
# At bf16 precision the CPU plugin rounds every MatMul weight to bf16 and
# packs it, yet keeps the float32 constants it read (mapped from the IR or
# the compiled blob) for as long as the model lives: the model's size twice
# over in a serving worker. Weights rounded ahead of time (round to nearest
# even, as the plugin rounds) behind a Convert marked as decompression are
# read as bf16, so what it keeps beside its packed copy is half the size
# (ViT-B/32: 236 MB less resident). Each build proves on
# fixed inputs that it answers bit for bit like the float32 IR at bf16;
# one that does not is recorded as such and the float32 IR is served.

BF16_WEIGHTS = "bf16w"


def round_matmul_weights(model):
    """Replace each float32 constant MatMul input of ``model`` (an ``ov.Model``)
    by its bf16 rounding behind a Convert to f32; the number replaced."""
    import openvino as ov
    import torch
    from openvino import opset13

    replaced = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        for index in range(op.get_input_size()):
            source = op.input_value(index).get_node()
            if source.get_type_name() != "Constant" or source.get_element_type() != ov.Type.f32:
                continue
            weights = np.array(source.get_data(), dtype=np.float32)
            # torch rounds to nearest even, as OpenVINO's CPU plugin does.
            rounded = torch.from_numpy(weights).to(torch.bfloat16).view(torch.int16).numpy()
            constant = ov.op.Constant(ov.Tensor(rounded, list(weights.shape), ov.Type.bf16), shared_memory=False)
            op.input(index).replace_source_output(opset13.convert(constant, ov.Type.f32).output(0))
            replaced += 1
    return replaced


def mark_decompression(xml_path):
    """Mark the IR's bf16 → f32 Converts as weight decompression; the number marked.

    ``ov.save_model`` does not write this mark for Converts made in Python, and
    without it the plugin folds them into float32 constants at compile time.
    The IR format: ``<rt_info><attribute name="decompression" version="0"/></rt_info>``
    after the layer's ``<data>``, as ``compress_to_fp16`` writes it.
    """
    tree = ElementTree.parse(xml_path)
    marked = 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("type") != "Convert":
            continue
        port = layer.find("input/port")
        data = layer.find("data")
        if port is None or port.get("precision") != "BF16" or data is None or data.get("destination_type") != "f32":
            continue
        rt_info = layer.find("rt_info")
        if rt_info is None:
            rt_info = ElementTree.Element("rt_info")
            layer.insert(list(layer).index(data) + 1, rt_info)
        if not any(attribute.get("name") == "decompression" for attribute in rt_info.iter("attribute")):
            ElementTree.SubElement(rt_info, "attribute", {"name": "decompression", "version": "0"})
            marked += 1
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)
    return marked


def _probe_inputs(checkpoint, model_dir):
    """Fixed inputs for both towers: two noise images, two texts of eight tokens."""
    import openvino as ov
    from transformers import CLIPConfig

    text = CLIPConfig.from_pretrained(checkpoint).text_config
    shape = ov.Core().read_model(model_dir / "image.xml").input(0).get_partial_shape()
    channels, size = shape[1].get_length(), shape[2].get_length()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, text.vocab_size, (2, 8), dtype=np.int64)
    ids[:, -1] = text.eos_token_id if text.eos_token_id is not None and text.eos_token_id < text.vocab_size else 2
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    return {
        "image": {"pixel_values": rng.standard_normal((2, channels, size, size)).astype(np.float32)},
        "text": {"input_ids": ids, "attention_mask": mask},
    }


def same_answers(checkpoint, exact_dir, candidate_dir, *, precision):
    """Whether ``candidate_dir`` answers bit for bit like ``exact_dir`` at ``precision``."""
    inputs = _probe_inputs(checkpoint, exact_dir)
    threads = available_cores()
    for tower in TOWERS:
        # One tower at a time: two compiled copies of both would double the peak.
        answers = []
        for directory in (exact_dir, candidate_dir):
            compiled = compile_model(directory / f"{tower}.xml", precision=precision, threads=threads)
            answers.append(np.array(compiled.create_infer_request().infer(inputs[tower])[0]))
            del compiled
        if not np.array_equal(*answers):
            return False
    return True


def ensure_bf16_weights_build(*, checkpoint, cache_dir, exact_dir):
    """The directory to serve at bf16 precision: the bf16-weight IR where it
    answers like the exact one, else ``exact_dir``. Built once per exact IR."""
    import openvino as ov

    root = exact_dir.parent
    target = root / BF16_WEIGHTS
    source = file_sha256(exact_dir / "manifest.json")
    with _build_lock:
        try:
            manifest = verify(target)
            if manifest.get("exact_manifest") != source:
                raise RuntimeCacheError(f"{target} was derived from another exact build")
        except RuntimeCacheError as problem:
            if target.exists():
                logger.warning("Rebuilding the bf16-weight model: %s", problem)
            staging = _staging_dir(root)
            try:
                core = ov.Core()
                replaced = {}
                for tower in TOWERS:
                    model = core.read_model(exact_dir / f"{tower}.xml")
                    replaced[tower] = round_matmul_weights(model)
                    ov.save_model(model, staging / f"{tower}.xml", compress_to_fp16=False)
                    del model
                    if mark_decompression(staging / f"{tower}.xml") != replaced[tower]:
                        raise RuntimeError(f"could not mark the {tower} tower's bf16 weights")
                equal = same_answers(checkpoint, exact_dir, staging, precision="bf16")
                _write_manifest(staging, {"exact_manifest": source, "same_answers": equal, "replaced": replaced,
                                          "versions": library_versions()})
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            for compiled in (root / "compiled").glob(f"{BF16_WEIGHTS}-*"):
                shutil.rmtree(compiled, ignore_errors=True)
            _publish(staging, target)
            manifest = verify(target)
    if not manifest["same_answers"]:
        logger.warning("The bf16-weight model does not answer like the float32 one here; serving the float32 IR.")
        return exact_dir
    return target


# Compilation and inference


# Prepared primitive executors the CPU plugin keeps per compiled model (its
# default: 5000). Every (batch, text length) pair is a shape with its own
# executors, about 25 of them on ViT-B/32's text tower, and each kept one
# holds memory: 190 random text shapes grew a worker by 1495 MB with the
# default, 486 MB with 256 and 397 MB with 32. A forward whose shape is no
# longer kept prepares it again, about 10 ms there: with 32 only the last
# shape was kept, and a pass over the audit's 9 text shapes ran 1.9x PyTorch
# bf16 instead of 2.3x with 256, which keeps the last nine or so.
RUNTIME_SHAPE_CACHE = 256
TEXT_WIDTH_STEP = 8


def compile_model(path, *, precision, threads, streams=1, cache_dir=None):
    """Compile for the CPU: ``streams`` inferences may run at once, each on ``threads`` threads
    (one stream per engine lane; the streams share the weights)."""
    import openvino as ov

    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": str(int(streams)),
        "INFERENCE_NUM_THREADS": int(threads) * int(streams),
        "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_SHAPE_CACHE,
    }
    core = ov.Core()
    if "ENABLE_CPU_PINNING" in core.get_property("CPU", "SUPPORTED_PROPERTIES"):
        # The plugin pins each stream's thread to a core of its own (its
        # default on Linux). A worker's request threads decode and serialise
        # on the same cores: a pinned forward waited for its busy core while
        # the other idled. Unpinned, on 2 cores: sequential /clip/analyze
        # 13.9-14.1 -> 15.9-16.7 req/s, 8 clients 20.8-21.7 -> 22.2-22.3
        # req/s (the cores 87% -> 95% busy; docs/runtime.md).
        config["ENABLE_CPU_PINNING"] = False
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    model = path if isinstance(path, ov.Model) else str(path)  # an IR file or a model in memory
    try:
        return core.compile_model(model, "CPU", config)
    except RuntimeError as exc:
        if cache_dir is None:
            raise
        # A damaged compiled blob: drop the compiled cache and compile afresh.
        logger.warning("OpenVINO compile with cache %s failed (%s); compiling without it.", cache_dir, exc)
        shutil.rmtree(cache_dir, ignore_errors=True)
        return core.compile_model(model, "CPU", config)


def ov_precision(dtype):
    """OpenVINO's inference precision for a dtype name (``"bfloat16"``); None keeps
    the CPU default (bf16 on CPUs with native bf16, else f32)."""
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(dtype)


class OpenVinoRuntime:
    text_width_step = TEXT_WIDTH_STEP

    def __init__(self, *, image_model, text_model, logit_scale, int8, guard=None, lanes=1):
        self.name = "openvino-int8" if int8 else "openvino"
        self.image_model = image_model
        self.text_model = text_model
        self.logit_scale = logit_scale
        self.guard = guard
        # One infer request per tower and lane: a lane runs one forward at a
        # time (the engine's lanes), different lanes run at once on the
        # compiled models' streams.
        self._image_requests = [image_model.create_infer_request() for _ in range(lanes)]
        self._text_requests = [text_model.create_infer_request() for _ in range(lanes)]
        compute = image_model.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.precision = f"int8/{compute}" if int8 else compute
        self._prime()

    def _prime(self):
        """One forward per tower and lane, here on the constructing thread, before any lane runs.

        The binding's first conversions between its tensors and numpy arrays
        (``Tensor.data``) run one-time initialisations: a C++ function-local
        static and pybind11's numpy API table, each behind its own lock. Two
        threads making their first forward at once (the image batcher and a
        lane splitting a text batch) took the GIL and the static's guard in
        opposite orders and hung the process for good: 3 of 12 fresh engines
        whose first image and text batches arrived together. Done here once,
        no later call can race for them (tests/clipcheck/engine/test_first_calls.py).
        """
        shape = self.image_model.input(0).get_partial_shape()  # [batch, channels, size, size]
        channels, size = shape[1].get_length(), shape[2].get_length()
        pixels = np.zeros((1, channels, size, size), np.float32)
        ids = np.zeros((1, TEXT_WIDTH_STEP), np.int64)
        for lane in range(len(self._image_requests)):
            self.image_features(pixels, lane=lane)
            self.text_features(ids, np.ones_like(ids), lane=lane)

    @classmethod
    def load(cls, *, checkpoint, int8, dtype, lanes, cache_dir):
        """``lanes``: the engine's ``ForwardLanes`` (one stream per lane)."""
        exact_dir, manifest = ensure_exact_build(checkpoint=checkpoint, cache_dir=cache_dir)
        model_dir, guard = exact_dir, None
        precision = ov_precision(dtype)
        if int8:
            model_dir, guard = ensure_int8_build(checkpoint=checkpoint, cache_dir=cache_dir)
            if guard.get("precision") and precision != "f32":
                # The int8 build was proven with its unquantised layers at this precision.
                precision = guard["precision"]
        elif precision == "bf16":
            model_dir = ensure_bf16_weights_build(checkpoint=checkpoint, cache_dir=cache_dir, exact_dir=exact_dir)
        compiled = exact_dir.parent / "compiled" / f"{model_dir.name}-{precision or 'default'}"
        towers = {
            tower: compile_model(model_dir / f"{tower}.xml", precision=precision, threads=lanes.threads,
                                 streams=lanes.count, cache_dir=compiled)
            for tower in TOWERS
        }
        return cls(
            image_model=towers["image"],
            text_model=towers["text"],
            logit_scale=manifest["logit_scale"],
            int8=int8,
            guard=guard,
            lanes=lanes.count,
        )

    def image_features(self, pixel_values, lane=0):
        pixels = np.ascontiguousarray(_as_numpy(pixel_values), dtype=np.float32)
        return unit_rows(self._image_requests[lane].infer({"pixel_values": pixels})[0])

    def text_features(self, input_ids, attention_mask, lane=0):
        inputs = {
            "input_ids": np.ascontiguousarray(_as_numpy(input_ids), dtype=np.int64),
            "attention_mask": np.ascontiguousarray(_as_numpy(attention_mask), dtype=np.int64),
        }
        return unit_rows(self._text_requests[lane].infer(inputs)[0])


def _as_numpy(tensor):
    return tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)


# int8: quantisation and its guard


def int8_record(*, checkpoint, cache_dir):
    """The guard record of this checkpoint's verified, current int8 build, or None."""
    try:
        return _verified_guard(build_dir(cache_dir, checkpoint) / "int8")
    except RuntimeCacheError:
        return None


def _verified_guard(target):
    guard = verify(target).get("guard")
    if not guard or guard.get("recipe") != INT8_RECIPE:
        raise RuntimeCacheError(f"{target} was built by another int8 recipe")
    return guard


def int8_proven(*, checkpoint, cache_dir):
    record = int8_record(checkpoint=checkpoint, cache_dir=cache_dir)
    return bool(record and record.get("passed"))


def ensure_int8_build(*, checkpoint, cache_dir, calibration=None, threshold=None):
    """The verified int8 build and its guard record.

    A missing or corrupt build is quantised again, with ``calibration`` or
    the shipped generic set; a build whose guard failed is refused
    (``RuntimeError``): int8 runs only where its verdicts are proven.
    """
    target = build_dir(cache_dir, checkpoint) / "int8"
    try:
        guard = _verified_guard(target)
    except RuntimeCacheError as problem:
        if target.exists():
            logger.warning("Rebuilding the int8 model: %s", problem)
        guard = build_int8(checkpoint=checkpoint, cache_dir=cache_dir, calibration=calibration, threshold=threshold)
    if not guard["passed"]:
        raise RuntimeError(
            f"The int8 model failed its guard (verdict agreement {guard['agreement']:.2%}, "
            f"max score gap {guard['max_score_gap']:.4f}; needed >= {GUARD_MIN_AGREEMENT:.1%} "
            f"and <= {GUARD_MAX_SCORE_GAP}): use RUNTIME 'openvino'."
        )
    return target, guard


def runtime_build(*, checkpoint, cache_dir, calibration=None, sample=None, threshold=None, rebuild=False):
    """Build (or reuse) the int8 model for this calibration set; its guard record.

    A build is reused when it verifies and was calibrated on the same set;
    otherwise the towers are quantised again and the guard rerun.
    """
    record = int8_record(checkpoint=checkpoint, cache_dir=cache_dir)
    wanted = calibration.digest if calibration is not None else "generic"
    if record and not rebuild:
        built = record["calibration"]["digest"] if record["calibration"]["source"] != "generic" else "generic"
        if built == wanted and (threshold is None or record["threshold"] == float(threshold)):
            return record
    return build_int8(checkpoint=checkpoint, cache_dir=cache_dir, calibration=calibration, sample=sample,
                      threshold=threshold)


def build_int8(*, checkpoint, cache_dir, calibration=None, threshold=None, sample=None):
    """Quantise both towers with NNCF, run the guard, store build and figures.

    ``calibration`` and ``sample`` are ``CalibrationSet``s (pixel arrays and
    texts, already preprocessed the engine's way); by default the shipped
    generic set. The guard compares int8 with float32 scores on ``sample``
    (by default the calibration set) at ``threshold``; ``int8_search``
    keeps layers exact until it passes, if it can. Returns the guard record.
    """
    import openvino as ov

    exact_dir, _ = ensure_exact_build(checkpoint=checkpoint, cache_dir=cache_dir)
    if calibration is None:
        from clipcheck.engine.calibration_set import generic_calibration_set

        calibration = generic_calibration_set(checkpoint)
    sample = sample or calibration
    root = exact_dir.parent
    staging = _staging_dir(root)
    try:
        towers, guard = int8_search(
            exact_dir=exact_dir, calibration=calibration, sample=sample,
            threshold=threshold if threshold is not None else sample.threshold,
        )
        for kind, model in towers.items():
            ov.save_model(model, staging / f"{kind}.xml")
        guard["calibration"] = {"digest": calibration.digest, "size": calibration.size, "source": calibration.source}
        guard["sample_source"] = sample.source
        _write_manifest(staging, {"guard": guard, "versions": library_versions()})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for compiled in (root / "compiled").glob("int8-*"):
        shutil.rmtree(compiled, ignore_errors=True)
    with _build_lock:
        _publish(staging, root / "int8")
    return guard


# Restoration may keep at most this share of the layers its recipe quantises
# exact: past it the build would be int8 in name only, and it is refused.
MAX_EXACT_SHARE = 0.5
# Restoration stops below the guard's limit, not at it: the held-out sample
# is finite, and a build that just scrapes through is fragile.
RESTORED_MAX_SCORE_GAP = 0.8 * GUARD_MAX_SCORE_GAP
# Layers are ranked on a calibration subset this big (the final build uses all).
RANKING_CALIBRATION_SIZE = 16


def int8_search(*, exact_dir, calibration, sample, threshold):
    """The int8 towers to serve and their guard record.

    The most int8 first, less until the guard passes:

    1. every matmul int8, the unquantised ops in the CPU's default precision
       (bf16 where it has native bf16);
    2. the sensitive layers (``_sensitive``) exact;
    3. the same with the unquantised ops in f32;
    4. accuracy restoration: the other layer groups ranked by how far each
       alone, quantised, moves the scores; the worst kept exact one at a
       time until the max score gap is at most ``RESTORED_MAX_SCORE_GAP``,
       unless more than ``MAX_EXACT_SHARE`` of them would be exact.

    Large towers (ViT-B/32) pass at step 1; small ones, where int8 rounding
    does not average out, need the rest. Where nothing passes, the record
    holds step 1's figures and int8 is refused.
    """
    import openvino as ov

    core = ov.Core()
    models = {kind: exact_dir / f"{kind}.xml" for kind in TOWERS}
    reference = _scores(models, sample, precision="f32")
    groups = {kind: quantisable_groups(core.read_model(models[kind])) for kind in TOWERS}
    sensitive = {kind: [group for group in groups[kind] if _sensitive(group)] for kind in TOWERS}
    latest = {}  # kind -> (its exact groups, its quantised tower): a step changes one tower at most

    def tower(kind, exact_groups):
        exact = tuple(exact_groups.get(kind, ()))
        if kind not in latest or latest[kind][0] != exact:
            # Read afresh: NNCF rewrites the model it is given (a clone shares its weights).
            latest[kind] = exact, quantize_tower(
                core.read_model(models[kind]), _tower_items(calibration, kind), kind=kind,
                exact=[name for group in exact for name in groups[kind][group]],
            )
        return latest[kind][1]

    steps = []

    def attempt(label, exact_groups, precision):
        towers = {kind: tower(kind, exact_groups) for kind in TOWERS}
        guard = guard_figures(reference, _scores(towers, sample, precision=precision), threshold=threshold)
        return towers, _step_record(guard, label=label, precision=precision, steps=steps, exact_groups=exact_groups,
                                    groups=groups)

    first = attempt("every matmul int8", {}, None)
    if first[1]["passed"]:
        return first
    for precision in (None, "f32"):
        towers, record = attempt("sensitive layers exact", sensitive, precision)
        if record["passed"]:
            return towers, record
    ranked = _rank_groups(core, models, groups, sensitive, calibration, sample, reference)
    restored = _accuracy_restoration(attempt, ranked, groups=groups, sensitive=sensitive)
    if restored is not None:
        return restored
    # Refused: the record says what int8 would do (step 1) and every step tried.
    towers, record = first
    return towers, {**record, "steps": steps, "passed": False}


def _step_record(guard, *, label, precision, steps, exact_groups, groups):
    """One step of ``int8_search``, logged and added to ``steps``; the guard record it would store."""
    steps.append({"step": label, "precision": precision, "max_score_gap": guard["max_score_gap"],
                  "agreement": guard["agreement"]})
    logger.info("int8 %s, unquantised ops at %s: max score gap %.4f, agreement %.2f%%", label,
                precision or "the CPU default", guard["max_score_gap"], 100 * guard["agreement"])
    return {**guard, "recipe": INT8_RECIPE, "precision": precision, "steps": steps,
            "exact_groups": sorted(f"{kind}:{group}" for kind, names in exact_groups.items() for group in names),
            "int8_layers": _layer_count(groups) - _layer_count(groups, exact_groups),
            "matmul_layers": _layer_count(groups)}


def _accuracy_restoration(attempt, ranked, *, groups, sensitive):
    """Step 4 of ``int8_search``: the ``ranked`` groups kept exact one at a time (f32) beside the
    sensitive ones, until ``attempt`` passes with a gap of at most ``RESTORED_MAX_SCORE_GAP``
    (its towers and record) or more than ``MAX_EXACT_SHARE`` of them would be exact (None)."""
    restorable = _layer_count(groups) - _layer_count(groups, sensitive)
    exact_groups = sensitive
    for kind, group in ranked:
        restored = _layer_count(groups, exact_groups) - _layer_count(groups, sensitive) + len(groups[kind][group])
        if restored > MAX_EXACT_SHARE * restorable:
            return None
        exact_groups = {**exact_groups, kind: [*exact_groups[kind], group]}
        towers, record = attempt(f"{kind}:{group} restored", exact_groups, "f32")
        if record["passed"] and record["max_score_gap"] <= RESTORED_MAX_SCORE_GAP:
            return towers, record
    return None


def _layer_count(groups, only=None):
    return sum(
        len(names) for kind in TOWERS for group, names in groups[kind].items()
        if only is None or group in only.get(kind, ())
    )


def quantisable_groups(model):
    """The tower's matmuls (and the patch embedding's convolution) NNCF may
    quantise, grouped as restoration keeps them exact: one group per block's
    attention inputs (q, k, v share their input's quantiser), one per other
    matmul."""
    groups = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("MatMul", "Convolution"):
            continue
        name = op.get_friendly_name()
        module = name.removeprefix("__module.").split("/")[0]
        if "self_attn.q_proj" in module or "self_attn.k_proj" in module or "self_attn.v_proj" in module:
            module = module[:module.index("self_attn.") + len("self_attn.")] + "qkv"
        groups.setdefault(module, []).append(name)
    return groups


def _sensitive(group):
    # The patch embedding sees raw colours and each attention block's output
    # projection mixes heads: on the known-answer model int8 moved scores most there.
    return "patch_embedding" in group or "out_proj" in group


def _rank_groups(core, models, groups, sensitive, calibration, sample, reference):
    """The groups restoration may keep exact, as (tower, group), the one whose
    int8 alone moves scores most first (the other tower exact, unquantised
    ops in f32)."""
    gaps = []
    for kind in TOWERS:
        for group, names in groups[kind].items():
            if group in sensitive[kind]:
                continue
            alone = quantize_tower(
                core.read_model(models[kind]), _tower_items(calibration, kind, RANKING_CALIBRATION_SIZE), kind=kind,
                exact=[name for other, others in groups[kind].items() if other != group for name in others],
            )
            scores = _scores({**models, kind: alone}, sample, precision="f32")
            gaps.append((float(np.max(np.abs(np.asarray(scores) - np.asarray(reference)))), kind, group))
    return [(kind, group) for _, kind, group in sorted(gaps, key=lambda item: -item[0])]


def _tower_items(calibration, kind, limit=None):
    items = calibration.image_items() if kind == "image" else calibration.text_items()
    return items[:limit] if limit else items


def quantize_tower(model, items, *, kind, exact=()):
    """NNCF post-training int8 of one tower, calibrated on ``items`` (one input each).

    Settings chosen on the known-answer model, where they moved scores least:
    the mixed preset (asymmetric activations: GELU outputs are one-sided),
    SmoothQuant at 0.5 (NNCF's default 0.95 moved the known-answer model's
    text scores twice as far). The layers named in ``exact`` stay exact.
    """
    import nncf

    nncf.set_log_level(logging.ERROR)
    advanced = nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=0.5)
    )
    return nncf.quantize(
        model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(items), ignored_scope=nncf.IgnoredScope(names=list(exact), validate=False),
        advanced_parameters=advanced,
    )


def _scores(towers, sample, *, precision):
    """API similarity scores of the sample's pairs through ``towers`` (OpenVINO
    models, in memory or paths) compiled at ``precision``."""
    threads = available_cores()
    runtime = OpenVinoRuntime(
        image_model=compile_model(towers["image"], precision=precision, threads=threads),
        text_model=compile_model(towers["text"], precision=precision, threads=threads),
        logit_scale=1.0, int8=False,
    )
    images = np.concatenate([runtime.image_features(batch) for batch in sample.pixel_batches()])
    texts = np.concatenate([
        runtime.text_features(batch["input_ids"], batch["attention_mask"]) for batch in sample.token_batches()
    ])
    return sample.pair_scores(images, texts)


def guard_figures(exact_scores, int8_scores, *, threshold):
    """Verdict agreement and the largest score gap between two runtimes' scores."""
    exact_scores, int8_scores = np.asarray(exact_scores), np.asarray(int8_scores)
    agreement = float(np.mean((exact_scores < threshold) == (int8_scores < threshold)))
    gap = float(np.max(np.abs(exact_scores - int8_scores))) if len(exact_scores) else 0.0
    return {
        "pairs": int(len(exact_scores)),
        "threshold": float(threshold),
        "agreement": round(agreement, 6),
        "max_score_gap": round(gap, 6),
        "passed": agreement >= GUARD_MIN_AGREEMENT and gap <= GUARD_MAX_SCORE_GAP,
    }
