"""The PyTorch model in its serving dtype, without the float32 file in memory beside it.

The model class is the checkpoint family's (``clipcheck.engine.families``:
``CLIPModel`` or ``SiglipModel``). ``from_pretrained(dtype=bfloat16)`` maps the whole float32
checkpoint and casts from the mapping: for the length of the load the worker
holds the file's pages (577 MB for ViT-B/32) and the bf16 model, and its peak
resident memory (what the OOM killer and a container limit see) is the sum.
Here the model is built empty in the serving dtype and each tensor is read
into a buffer of its own, cast into its parameter, and dropped: the peak is
the model plus its largest tensor. The cast is the same (``Tensor.copy_``
rounds to nearest even, as ``.to()`` does), so the parameters are
bit-for-bit those of ``from_pretrained``.

Checkpoints this does not cover (sharded, ``pytorch_model.bin``, names that
differ from the model's own, a damaged file) load through ``from_pretrained``
as before, which also refuses a damaged file with its own message.
"""

import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

from clipcheck.engine.families import ModelFamily, checkpoint_family

logger = logging.getLogger(__name__)

SAFETENSORS_FILE = "model.safetensors"


def clip_model_load(checkpoint: str | os.PathLike[str], dtype: Any, family: ModelFamily | None = None) -> Any:
    """The family's model (``CLIPModel``, ``SiglipModel``) of the checkpoint directory in ``dtype``, in eval mode."""
    import torch
    from transformers.initialization import no_init_weights
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    family = family or checkpoint_family(checkpoint)
    model_class = family.model_type()

    path = Path(checkpoint) / SAFETENSORS_FILE
    tensors = safetensors_index(path) if path.is_file() else None
    if tensors is None:
        return model_class.from_pretrained(checkpoint, dtype=dtype).eval()
    config = family.config_type().from_pretrained(checkpoint)
    # Random initialisation would cost seconds for weights overwritten next.
    with no_init_weights():
        model = model_class._from_config(config, dtype=dtype)
    state = model.state_dict()
    if set(state) != set(tensors):
        logger.info("%s names other tensors than %s has; loading it with from_pretrained.", path, family.model_class)
        del model, state
        return model_class.from_pretrained(checkpoint, dtype=dtype).eval()
    with path.open("rb") as handle, torch.no_grad():
        for name, (source_dtype, shape, start, end) in tensors.items():
            buffer = torch.empty(end - start, dtype=torch.uint8)
            handle.seek(start)
            if handle.readinto(memoryview(buffer.numpy())) != end - start:
                raise OSError(f"{path} is truncated at tensor {name!r}")
            state[name].copy_(buffer.view(source_dtype).reshape(shape))
    return model.eval()


def checkpoint_logit_scalars(checkpoint: str | os.PathLike[str]) -> tuple[float, float | None] | None:
    """``(exp(logit_scale), logit_bias or None)`` as the checkpoint's file stores them, or None where
    this loader cannot read them. A model cast to bf16 rounds both (SigLIP's 51.68 to 51.29, its
    bias -11.708 to -11.6875): a probability made of them would move by more than its cosine's error."""
    import math

    import torch

    path = Path(checkpoint) / SAFETENSORS_FILE
    tensors = safetensors_index(path) if path.is_file() else None
    if tensors is None or "logit_scale" not in tensors:
        return None
    values = {}
    with path.open("rb") as handle:
        for name in ("logit_scale", "logit_bias"):
            if name in tensors:
                source_dtype, shape, start, end = tensors[name]
                handle.seek(start)
                values[name] = float(torch.frombuffer(bytearray(handle.read(end - start)), dtype=source_dtype)[0])
    return math.exp(values["logit_scale"]), values.get("logit_bias")


def safetensors_index(path: str | os.PathLike[str]) -> dict[str, tuple[Any, tuple[int, ...], int, int]] | None:
    """``{name: (torch dtype, shape, start, end)}`` with absolute offsets, or None
    for a file this loader does not read: a dtype it does not know, or a file
    whose header is unreadable or whose size is not what the header says (then
    ``from_pretrained`` refuses it with the safetensors library's own message)."""
    import torch

    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
    try:
        with open(path, "rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_length))
        base = 8 + header_length
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            if entry["dtype"] not in dtypes:
                return None
            start, end = entry["data_offsets"]
            tensors[name] = (dtypes[entry["dtype"]], tuple(entry["shape"]), base + start, base + end)
    except (struct.error, ValueError, KeyError, TypeError, AttributeError):
        return None
    if Path(path).stat().st_size != max((end for *_, end in tensors.values()), default=base):
        return None
    return tensors
