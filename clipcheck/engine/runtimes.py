"""Runtimes: what turns preprocessed tensors into embeddings.

The engine (``clipcheck.engine.clip``) owns everything else — preprocessing,
tokenisation, the text cache, micro-batching — so every runtime answers
through the same code path. A runtime only implements two forwards:

* ``image_features(pixel_values, lane=0)`` → (n, dim) float32 unit rows;
* ``text_features(input_ids, attention_mask, lane=0)`` → (n, dim) float32 unit rows;

and says what it is (``name``, ``precision``). ``lane`` is one of the engine's
lanes (``clipcheck.engine.lanes``): forwards on different lanes may run at the
same time, each with the lane's threads.

``CLIPCHECK["RUNTIME"]``:

* ``torch``: PyTorch eager, in ``DTYPE`` (bfloat16 on CPUs with native bf16);
* ``openvino``: OpenVINO on the CPU, the exact mode (bf16 where the CPU has
  it, else f32; ``DTYPE`` float32 forces f32), converted from the same
  checkpoint (``clipcheck.engine.openvino_runtime``);
* ``openvino-int8``: NNCF post-training int8 of the same model, usable only
  where a guard proved its verdicts agree with float32;
* ``auto``: PyTorch on CUDA; on CPUs ``openvino-int8`` when this checkpoint's
  int8 build passed the guard (``manage.py clip_build_runtime``), else
  ``openvino`` (docs/runtime.md has the measurements behind this choice).
"""

import importlib.util
import os

import numpy as np

RUNTIMES = ("auto", "torch", "openvino", "openvino-int8")
OPENVINO_RUNTIMES = ("openvino", "openvino-int8")


def openvino_available():
    return importlib.util.find_spec("openvino") is not None


def resolve_runtime(requested, *, device_type, int8_proven=lambda: False):
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


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def unit_rows(features):
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


class TorchRuntime:
    """PyTorch eager on ``device`` (``"cpu"``, ``"cuda:0"``) in ``dtype`` (its name: ``"bfloat16"``)."""

    name = "torch"
    # Eager torch prepares nothing per input shape: texts run at their own width.
    text_width_step = 1

    def __init__(self, *, model, device, dtype):
        import torch

        self.model = model
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.precision = dtype
        self.logit_scale = float(model.logit_scale.detach().float().exp().item())

    def set_threads(self, lanes):
        import torch

        # torch's intra-op thread count is process-wide and applies to each
        # calling thread: every lane's forward gets the lane's threads.
        torch.set_num_threads(max(1, lanes.threads))

    # torch needs nothing per lane: concurrent calls from several threads are safe.

    def image_features(self, pixel_values, lane=0):
        import torch

        with torch.inference_mode():
            pixels = torch.as_tensor(pixel_values).to(self.device, self.dtype)
            output = self.model.get_image_features(pixel_values=pixels)
            return _torch_unit_rows(output)

    def text_features(self, input_ids, attention_mask, lane=0):
        import torch

        with torch.inference_mode():
            output = self.model.get_text_features(
                input_ids=torch.as_tensor(input_ids).to(self.device),
                attention_mask=torch.as_tensor(attention_mask).to(self.device),
            )
            return _torch_unit_rows(output)


def _torch_unit_rows(output):
    import torch

    # transformers 5 returns an output object; the projected embedding is
    # its pooler_output (older releases returned the tensor itself).
    features = getattr(output, "pooler_output", output)
    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

