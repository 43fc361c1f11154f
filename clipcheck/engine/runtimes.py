"""Runtimes: what turns preprocessed tensors into embeddings.

The engine (``clipcheck.engine.clip``) owns everything else — preprocessing,
tokenisation, the text cache, micro-batching — so every runtime answers
through the same code path. What a runtime offers is the ``Runtime``
protocol; ``TorchRuntime`` (here) and ``OpenVinoRuntime``
(``clipcheck.engine.openvino``) implement it alike.

``CLIPCHECK["RUNTIME"]``:

* ``torch``: PyTorch eager, in ``DTYPE`` (bfloat16 on CPUs with native bf16);
* ``openvino``: OpenVINO on the CPU, the exact mode (bf16 where the CPU has
  it, else f32; ``DTYPE`` float32 forces f32), converted from the same
  checkpoint (``clipcheck.engine.openvino``);
* ``openvino-int8``: NNCF post-training int8 of the same model, usable only
  where a guard proved its verdicts agree with float32;
* ``auto``: PyTorch on CUDA; on CPUs ``openvino-int8`` when this checkpoint's
  int8 build passed the guard (``manage.py clip_build_runtime``), else
  ``openvino`` (docs/runtime.md has the measurements behind this choice).
"""

import importlib.util
import os
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from clipcheck.engine.families import ModelFamily
from clipcheck.engine.lanes import ForwardLanes
from clipcheck.engine.weights import checkpoint_logit_scalars, clip_model_load

RUNTIMES = ("auto", "torch", "openvino", "openvino-int8")
OPENVINO_RUNTIMES = ("openvino", "openvino-int8")


class Runtime(Protocol):
    """What every runtime offers the engine.

    A runtime is built for the engine's ``lanes`` (``clipcheck.engine.lanes``):
    forwards on different lanes may run at the same time, each with
    ``lanes.threads`` threads; ``lane`` names the lane a forward runs on.
    """

    name: str  # "torch", "openvino" or "openvino-int8"
    precision: str  # what it computes in: "bfloat16", "f32", "int8/bf16", ...
    logit_scale: float
    # A sigmoid-trained model's bias (SigLIP); None for a softmax-trained one (CLIP).
    logit_bias: float | None
    # Text forwards run at widths rounded up to a multiple of this (padding is masked).
    text_width_step: int
    lanes: ForwardLanes
    # Why the runtime serves without its cache (None: it keeps none, or used it).
    cache_problem: str | None

    def image_features(self, pixel_values: np.ndarray, lane: int = 0) -> np.ndarray:
        """(n, 3, h, w) float32 pixels → (n, dim) float32 unit rows."""
        ...

    def text_features(self, input_ids: np.ndarray, attention_mask: np.ndarray, lane: int = 0) -> np.ndarray:
        """(n, width) token ids and mask → (n, dim) float32 unit rows."""
        ...


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def resolve_runtime(requested: str | None, *, device_type: str,
                    int8_proven: Callable[[], bool] = lambda: False) -> str:
    """The concrete runtime for a ``RUNTIME`` setting on a device type."""
    requested = (requested or "auto").strip().lower()
    if requested not in RUNTIMES:
        raise RuntimeError(f"Unknown RUNTIME {requested!r}; use one of {', '.join(RUNTIMES)}.")
    if requested != "auto":
        if requested in OPENVINO_RUNTIMES and device_type != "cpu":
            raise RuntimeError(f"RUNTIME {requested!r} runs on the CPU only; DEVICE is {device_type!r}.")
        return requested
    if device_type != "cpu" or not openvino_available():
        return "torch"
    return "openvino-int8" if int8_proven() else "openvino"


def unit_rows(features: Any) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


class TorchRuntime:
    """PyTorch eager on ``device`` (``"cpu"``, ``"cuda:0"``) in ``dtype`` (its name: ``"bfloat16"``).

    torch needs nothing per lane (concurrent calls from several threads are
    safe); its intra-op thread count is process-wide and applies to each
    calling thread, so it is set here once: every lane's forward gets the
    lane's threads.
    """

    name = "torch"
    # Eager torch prepares nothing per input shape: texts run at their own width.
    text_width_step = 1
    cache_problem: str | None = None

    def __init__(self, *, model: Any, device: str, dtype: str, lanes: ForwardLanes = ForwardLanes(),
                 logit_scalars: tuple[float, float | None] | None = None):
        import torch

        self.model = model
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.precision = dtype
        self.lanes = lanes
        # The checkpoint's own scale and bias where given: the model's are rounded to its dtype.
        self.logit_scale, self.logit_bias = logit_scalars or (
            float(model.logit_scale.detach().float().exp().item()), model_logit_bias(model))
        torch.set_num_threads(max(1, lanes.threads))

    def image_features(self, pixel_values: np.ndarray, lane: int = 0) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pixels = torch.as_tensor(pixel_values).to(self.device, self.dtype)
            output = self.model.get_image_features(pixel_values=pixels)
            return _torch_unit_rows(output)

    def text_features(self, input_ids: np.ndarray, attention_mask: np.ndarray, lane: int = 0) -> np.ndarray:
        import torch

        with torch.inference_mode():
            output = self.model.get_text_features(
                input_ids=torch.as_tensor(input_ids).to(self.device),
                attention_mask=torch.as_tensor(attention_mask).to(self.device),
            )
            return _torch_unit_rows(output)


def model_logit_bias(model: Any) -> float | None:
    """A SigLIP model's ``logit_bias``; None for CLIP, which has none."""
    bias = getattr(model, "logit_bias", None)
    return None if bias is None else float(bias.detach().float().item())


def load_torch_runtime(*, checkpoint: str | os.PathLike[str], device: str, dtype: str,
                       lanes: ForwardLanes, family: ModelFamily | None = None) -> TorchRuntime:
    """The checkpoint in its serving dtype on ``device`` (``clipcheck.engine.weights``)."""
    import torch

    model = clip_model_load(checkpoint, getattr(torch, dtype), family)
    model.to(device)
    return TorchRuntime(model=model, device=device, dtype=dtype, lanes=lanes,
                        logit_scalars=checkpoint_logit_scalars(checkpoint))


def _torch_unit_rows(output: Any) -> np.ndarray:
    import torch

    # transformers 5 returns an output object; the projected embedding is
    # its pooler_output (older releases returned the tensor itself).
    features = getattr(output, "pooler_output", output)
    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
