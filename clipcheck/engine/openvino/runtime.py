"""The OpenVINO runtime: two compiled towers, an infer request per tower and lane."""

from typing import Any

import numpy as np

from clipcheck.engine.lanes import ForwardLanes
from clipcheck.engine.runtimes import unit_rows

TEXT_WIDTH_STEP = 8


class OpenVinoRuntime:
    """The engine's ``Runtime`` (``clipcheck.engine.runtimes``) on two compiled towers.

    ``lanes``: the engine's ``ForwardLanes``; the towers were compiled with one
    stream per lane (``clipcheck.engine.openvino.serving``).
    """

    text_width_step = TEXT_WIDTH_STEP

    def __init__(self, *, image_model: Any, text_model: Any, logit_scale: float, int8: bool,
                 guard: dict[str, Any] | None = None, lanes: ForwardLanes = ForwardLanes(),
                 cache_problem: str | None = None, logit_bias: float | None = None):
        self.name = "openvino-int8" if int8 else "openvino"
        self.image_model = image_model
        self.text_model = text_model
        self.logit_scale = logit_scale
        self.logit_bias = logit_bias
        self.guard = guard
        self.lanes = lanes
        self.cache_problem = cache_problem
        # One infer request per tower and lane: a lane runs one forward at a
        # time (the engine's lanes), different lanes run at once on the
        # compiled models' streams.
        self._image_requests = [image_model.create_infer_request() for _ in range(lanes.count)]
        self._text_requests = [text_model.create_infer_request() for _ in range(lanes.count)]
        compute = image_model.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.precision: str = f"int8/{compute}" if int8 else compute
        self._prime()

    def _prime(self) -> None:
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

    def image_features(self, pixel_values: np.ndarray, lane: int = 0) -> np.ndarray:
        pixels = np.ascontiguousarray(_as_numpy(pixel_values), dtype=np.float32)
        return unit_rows(self._image_requests[lane].infer({"pixel_values": pixels})[0])

    def text_features(self, input_ids: np.ndarray, attention_mask: np.ndarray, lane: int = 0) -> np.ndarray:
        inputs = {
            "input_ids": np.ascontiguousarray(_as_numpy(input_ids), dtype=np.int64),
            "attention_mask": np.ascontiguousarray(_as_numpy(attention_mask), dtype=np.int64),
        }
        return unit_rows(self._text_requests[lane].infer(inputs)[0])


def _as_numpy(tensor: Any) -> np.ndarray:
    return tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)
