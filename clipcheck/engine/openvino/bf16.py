"""bf16 serving: the exact IR with its matmul weights stored in bfloat16 (``bf16w/``).

At bf16 precision the CPU plugin rounds every MatMul weight to bf16 and
packs it, yet keeps the float32 constants it read (mapped from the IR or the
compiled blob) for as long as the model lives: the model's size twice over
in a serving worker. Weights rounded ahead of time (round to nearest even,
as the plugin rounds) behind a Convert marked as decompression are read as
bf16, so what it keeps beside its packed copy is half the size (ViT-B/32:
236 MB less resident). Each build proves on fixed inputs that it answers
bit for bit like the float32 IR at bf16; one that does not is recorded as
such and the float32 IR is served.
"""

import logging
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np

from clipcheck.engine.lanes import available_cores
from clipcheck.engine.openvino.cache import Manifest, RuntimeCache, library_versions, manifest_sha256, verify
from clipcheck.engine.openvino.compiled import TOWERS, compile_model

logger = logging.getLogger(__name__)

BF16_WEIGHTS = "bf16w"


def round_matmul_weights(model: Any) -> int:
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


def mark_decompression(xml_path: Path) -> int:
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


def _probe_inputs(checkpoint: str | os.PathLike[str], model_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Fixed inputs for both towers: two noise images, two texts of eight tokens."""
    import openvino as ov

    from clipcheck.engine.families import checkpoint_family

    text = checkpoint_family(checkpoint).config_type().from_pretrained(checkpoint).text_config
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


def same_answers(checkpoint: str | os.PathLike[str], exact_dir: Path, candidate_dir: Path, *, precision: str) -> bool:
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
        if not np.array_equal(answers[0], answers[1]):
            return False
    return True


def _bf16_weights(checkpoint: str | os.PathLike[str], exact_dir: Path, staging: Path) -> Manifest:
    """Write the bf16-weight IR of ``exact_dir`` to ``staging``; its manifest's fields."""
    import openvino as ov

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
    return {"same_answers": equal, "replaced": replaced, "versions": library_versions()}


def ensure_bf16_weights_build(*, checkpoint: str | os.PathLike[str],
                              cache_dir: str | os.PathLike[str] | RuntimeCache, exact_dir: Path) -> Path:
    """The directory to serve at bf16 precision: the bf16-weight IR where it
    answers like the exact one, else ``exact_dir``. Built once per exact IR."""
    cache = RuntimeCache.of(cache_dir, checkpoint)
    made_from = {"exact_manifest": manifest_sha256(exact_dir)}
    target, manifest = cache.ensure(
        BF16_WEIGHTS, load=lambda directory: verify(directory, expected=made_from),
        build=lambda staging: {**_bf16_weights(checkpoint, exact_dir, staging), **made_from},
    )
    if not manifest["same_answers"]:
        logger.warning("The bf16-weight model does not answer like the float32 one here; serving the float32 IR.")
        return exact_dir
    return target
