"""Conversion: the checkpoint's two towers as OpenVINO IR with float32 weights (the exact build).

``openvino.convert_model`` on two small ``torch.nn.Module`` wrappers around
the transformers model (``get_image_features`` and ``get_text_features``,
dynamic batch and sequence dimensions), not ``optimum-intel``: optimum-intel
pins its own transformers range, which lags the transformers 5 this project
runs, and exports the whole model where the service needs the two projected
towers only. The model class is the checkpoint family's
(``clipcheck.engine.families``); the manifest records the family, the logit
scale and a sigmoid model's logit bias.
"""

import gc
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clipcheck.engine.families import checkpoint_family
from clipcheck.engine.openvino.cache import (
    Manifest,
    RuntimeCache,
    checkpoint_digest,
    library_versions,
    verify,
)

EXACT = "fp32"


def _tower_modules(model: Any) -> tuple[Any, Any]:
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            return self.model.get_image_features(pixel_values=pixel_values).pooler_output

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
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
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LOSS_TYPE_NOTICE)


@contextmanager
def _tracing_notices_dropped() -> Iterator[None]:
    loss_notice = _LossTypeNoticeFilter()
    modeling_logger = logging.getLogger("transformers.modeling_utils")
    modeling_logger.addFilter(loss_notice)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING_NOTICE, category=FutureWarning)
            yield
    finally:
        modeling_logger.removeFilter(loss_notice)


def convert(checkpoint: str | os.PathLike[str], target: Path) -> Manifest:
    """Write the exact (f32-weight) IR of both towers of ``checkpoint`` to ``target``;
    the family, logit scale and bias, and embedding size."""
    import openvino as ov
    import torch
    from transformers.utils import logging as transformers_logging

    from clipcheck.engine.runtimes import model_logit_bias

    transformers_logging.disable_progress_bar()  # as clipcheck.engine.weights: no bar per start
    family = checkpoint_family(checkpoint)
    model = family.model_type().from_pretrained(checkpoint, dtype=torch.float32).eval()
    image_tower, text_tower = _tower_modules(model)
    vision = model.config.vision_config
    size, channels = vision.image_size, vision.num_channels
    text_config = model.config.text_config
    ids = torch.full((2, 8), 2, dtype=torch.int64)
    eos = text_config.eos_token_id
    ids[:, -1] = eos if eos is not None and 0 <= eos < text_config.vocab_size else 2
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
        "family": family.name,
        "logit_scale": float(model.logit_scale.detach().float().exp().item()),
        "logit_bias": model_logit_bias(model),
        "embedding_dim": family.embedding_dim(model.config.to_dict()),
    }


def ensure_exact_build(*, checkpoint: str | os.PathLike[str],
                       cache_dir: str | os.PathLike[str] | RuntimeCache) -> tuple[Path, Manifest]:
    """The verified exact IR of this checkpoint and its manifest, converted when
    missing, corrupt or made from another checkpoint or library release."""
    cache = RuntimeCache.of(cache_dir, checkpoint)
    made_from = {"checkpoint_digest": checkpoint_digest(checkpoint), "versions": library_versions()}

    def build(staging: Path) -> Manifest:
        try:
            info = convert(checkpoint, staging)
        finally:
            # The float32 PyTorch model is gone after convert(); reclaim what its
            # reference cycles still hold before the worker compiles its own copy.
            gc.collect()
        return {**info, **made_from, "checkpoint": str(checkpoint)}

    return cache.ensure(EXACT, load=lambda directory: verify(directory, expected=made_from), build=build)
