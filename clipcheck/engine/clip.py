"""CLIP through Hugging Face transformers: preprocessing, encoders, embeddings.

The checkpoint may be of any family of ``clipcheck.engine.families`` (CLIP,
SigLIP, fixed-resolution SigLIP 2), recognised before anything is loaded.
The checkpoint's own image processor and tokenizer define preprocessing
(image size, crop, mean/std, context length), performed without torch
(``clipcheck.engine.processing``): inputs travel as numpy arrays, and only
the PyTorch runtime imports torch, so an OpenVINO worker never loads it.
Embeddings come back as L2-normalised float32 numpy rows.

The engine reads no Django settings: its configuration is passed when it is
built (``clipcheck.engine.get_engine`` passes ``CLIPCHECK``'s values and
builds a new engine when they change), so it is usable outside Django too.
"""

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL.Image import Image

from clipcheck import metrics
from clipcheck.engine.batcher import MicroBatcher, padded_width, padding_groups
from clipcheck.engine.checkpoints import checkpoint_source
from clipcheck.engine.clock import forward_clock
from clipcheck.engine.families import CLIP, ModelFamily, checkpoint_family
from clipcheck.engine.lanes import ForwardLanes, LanePool, forward_lanes
from clipcheck.engine.openvino.guard import int8_proven
from clipcheck.engine.openvino.serving import load_openvino_runtime
from clipcheck.engine.processing import ModelDims, load_image_preprocessor, load_tokenizer, text_token_limit
from clipcheck.engine.runtimes import Runtime, load_torch_runtime, resolve_runtime

DTYPES = ("float32", "bfloat16", "float16")
# Device nodes of the GPU drivers torch's CUDA build (NVIDIA) and ROCm build (AMD) talk to.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/kfd")


def resolve_device(requested: str | None) -> str:
    """``"cpu"`` or ``"cuda[:n]"``. ``auto`` asks torch about CUDA only where a
    GPU driver's device node exists: without one CUDA cannot be available, and
    a CPU worker on OpenVINO never imports torch."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        if not any(Path(node).exists() for node in GPU_DEVICE_NODES):
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = requested.partition(":")
    if kind == "cpu":
        return "cpu"
    if kind != "cuda" or (index and not index.isdigit()):
        raise RuntimeError(f"Unsupported DEVICE {requested!r}.")
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"DEVICE is {requested!r} but CUDA is not available in this process.")
    if index and int(index) >= torch.cuda.device_count():
        raise RuntimeError(f"DEVICE is {requested!r} but only {torch.cuda.device_count()} CUDA devices exist.")
    return requested


def device_type(device: str) -> str:
    """``"cpu"`` or ``"cuda"`` for a resolved device."""
    return device.partition(":")[0]


def resolve_dtype(requested: str | None, device: str, family: ModelFamily = CLIP) -> str:
    """The dtype's name. ``auto``: float16 on CUDA, bfloat16 on CPUs with native
    bf16 (AVX-512-BF16 or AMX), float32 elsewhere. Reduced precision keeps
    embeddings within 0.9999 cosine of float32 here and runs about 2x faster
    (see bench/). A sigmoid-trained family (SigLIP) stays float32 on CPUs:
    its own probability multiplies a cosine's error by up to logit_scale / 4,
    and bf16 moved the known-answer SigLIP's cosines by up to 4.2e-3 (up to
    0.05 on its probabilities by that bound; docs/models.md)."""
    requested = (requested or "auto").strip().lower()
    if requested != "auto":
        if requested not in DTYPES:
            raise RuntimeError(f"Unsupported DTYPE {requested!r}; use one of auto, {', '.join(DTYPES)}.")
        return requested
    if device_type(device) == "cuda":
        return "float16"
    return "bfloat16" if cpu_has_native_bf16() and not family.sigmoid else "float32"


def load_runtime(name: str, *, checkpoint: str, device: str, dtype: str, lanes: ForwardLanes,
                 cache_dir: str | os.PathLike[str], family: ModelFamily | None = None) -> Runtime:
    """The runtime ``name`` for the checkpoint directory, for the engine's ``ForwardLanes``."""
    if name == "torch":
        return load_torch_runtime(checkpoint=checkpoint, device=device, dtype=dtype, lanes=lanes, family=family)
    return load_openvino_runtime(
        checkpoint=checkpoint, int8=name == "openvino-int8", dtype=dtype, lanes=lanes, cache_dir=cache_dir,
    )


def local_checkpoint(model_name: str) -> str:
    """The checkpoint's directory: ``model_name`` itself, or the hub snapshot
    transformers would load (downloaded on first use; ``checkpoint_source``
    says in one sentence why it cannot be had)."""
    source, local_files_only = checkpoint_source(model_name)
    if Path(source).is_dir():
        return str(Path(source).resolve())
    from huggingface_hub import snapshot_download

    return str(snapshot_download(source, local_files_only=local_files_only))


def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


class ClipEngine:
    """One CLIP model with its processor; thread-safe.

    Request threads preprocess in parallel; their forward passes go through
    micro-batchers (one for images, one for texts) so that requests arriving
    together share one batched forward. The forwards themselves belong to a
    runtime (``clipcheck.engine.runtimes``: PyTorch or OpenVINO); everything
    else here is the same for every runtime.

    Forwards run on ``lanes`` (``clipcheck.engine.lanes``): with two, an
    uncached request's image and text forwards overlap, a long text batch
    (a mismatch's attribute rewrites) is split over both when both are idle,
    and queued forwards of either tower take whichever lane frees first; with
    one lane they take turns (concurrent forwards on the same cores only
    thrash). How many requests may wait and for how long is admission
    control's business (``clipcheck.engine.admission``), not the engine's.

    ``batch_size``: rows per forward pass; ``batch_wait_ms``: how long a
    batcher waits for requests on their way; ``text_cache_size``: text
    embeddings kept (0: none). The defaults are ``CLIPCHECK``'s.

    ``family``: the checkpoint's (``clipcheck.engine.families``); a SigLIP
    family's texts are all padded to the full context, as its reference
    processor pads them (its text tower pools the last position).
    """

    def __init__(
        self, *, model_name: str, runtime: Runtime, image_processor: Callable[[Sequence[Image]], np.ndarray],
        tokenizer: Any, dims: ModelDims, device: str, dtype: str, lanes: ForwardLanes = ForwardLanes(),
        batch_size: int = 32, batch_wait_ms: float = 5, text_cache_size: int = 4096, family: ModelFamily = CLIP,
    ):
        self.model_name = model_name
        self.model_family = family
        self.runtime = runtime
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.dims = dims
        self.device = device
        self.dtype = dtype
        self.lanes = lanes
        self.max_text_tokens = text_token_limit(dims, tokenizer)
        self.logit_scale = runtime.logit_scale
        self.logit_bias = runtime.logit_bias
        self._lane_pool = LanePool(lanes.count)
        self._text_cache: OrderedDict[str, tuple[np.ndarray, bool]] = OrderedDict()
        self._text_cache_lock = threading.Lock()
        # The fast tokenizer keeps its padding and truncation settings on the
        # shared Rust object while it encodes: two threads calling it with
        # different settings get each other's (unpadded rows in a padded batch).
        self._tokenizer_lock = threading.Lock()
        self.text_cache_size = int(text_cache_size)
        limits: dict[str, Any] = {
            "max_rows": int(batch_size), "max_wait": float(batch_wait_ms) / 1000.0,
            # A worker per lane: a tower's next batch may start on a lane the running one left idle.
            "workers": lanes.count, "ready": self._lane_pool.wait_free,
        }
        self._image_batcher = MicroBatcher(self._forward_image_payloads, name="clip-image-batcher", **limits)
        self._text_batcher = MicroBatcher(self._forward_text_payloads, name="clip-text-batcher", **limits)

    @classmethod
    def load(cls, *, model_name: str, device: str = "auto", dtype: str = "auto", num_threads: int | None = None,
             runtime: str = "auto", concurrent_encoders: bool | None = None, runtime_cache_dir: str = "var/runtime",
             **options: Any) -> "ClipEngine":
        """Load a checkpoint (hub id or directory) on a runtime (``clipcheck.engine.runtimes``);
        ``options`` are the engine's ``batch_size``, ``batch_wait_ms`` and ``text_cache_size``."""
        resolved_device = resolve_device(device)
        checkpoint = local_checkpoint(model_name)
        # Before anything of the checkpoint is loaded: another architecture is refused in one sentence.
        family = checkpoint_family(checkpoint)
        resolved_dtype = resolve_dtype(dtype, resolved_device, family)
        cache_dir = str(runtime_cache_dir)
        on_cpu = device_type(resolved_device) == "cpu"
        name = resolve_runtime(
            runtime, device_type=device_type(resolved_device),
            int8_proven=lambda: int8_proven(checkpoint=checkpoint, cache_dir=cache_dir),
        )
        # On CUDA the host threads only feed the device: one lane.
        lanes = forward_lanes(num_threads, concurrent=concurrent_encoders if on_cpu else False)
        loaded = load_runtime(name, checkpoint=checkpoint, device=resolved_device, dtype=resolved_dtype, lanes=lanes,
                              cache_dir=cache_dir, family=family)
        return cls(
            model_name=model_name,
            runtime=loaded,
            image_processor=load_image_preprocessor(checkpoint),
            tokenizer=load_tokenizer(checkpoint),
            dims=ModelDims.from_checkpoint(checkpoint),
            device=resolved_device,
            dtype=resolved_dtype,
            lanes=lanes,
            family=family,
            **options,
        )

    @property
    def family(self) -> str:
        """The checkpoint's family: "clip", "siglip" or "siglip2"."""
        return self.model_family.name

    @property
    def concurrent(self) -> bool:
        """Whether image and text forwards may run at the same time."""
        return self.lanes.concurrent

    @property
    def device_name(self) -> str:
        return self.device

    @property
    def dtype_name(self) -> str:
        return self.dtype

    @property
    def runtime_name(self) -> str:
        return self.runtime.name

    @property
    def precision(self) -> str:
        """What the runtime computes in: "bfloat16", "f32", "int8/bf16", ..."""
        return self.runtime.precision

    @property
    def cache_problem(self) -> str | None:
        """Why the runtime serves without its cache (None: it used it, or keeps none)."""
        return self.runtime.cache_problem

    def warm_up(self) -> None:
        from PIL import Image as PILImage

        self.encode_images([PILImage.new("RGB", (32, 32), (128, 128, 128))])
        self._encode_text_batch(["warm up"])

    # Images

    def encode_images(self, images: Sequence[Image | np.ndarray]) -> np.ndarray:
        """RGB PIL images → (n, dim) float32 unit vectors, in batches.

        An item may instead be an image's pixels as ``preprocess`` gives them
        ((3, height, width)): prepared ahead, off the forwards' path.
        """
        batch_size = self._image_batcher.max_rows
        rows = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            with self._image_batcher.reserve():
                future = self._image_batcher.submit(self._pixels(chunk), len(chunk))
            rows.append(future.result())
        return np.concatenate(rows) if rows else np.zeros((0, self.embedding_dim), np.float32)

    def preprocess(self, images: Sequence[Image]) -> np.ndarray:
        """RGB PIL images → (n, 3, height, width) float32 pixels."""
        return self.image_processor(images)

    def _pixels(self, items: Sequence[Image | np.ndarray]) -> np.ndarray:
        if not any(isinstance(item, np.ndarray) for item in items):
            return self.preprocess(cast(Sequence[Image], items))
        return np.stack([item if isinstance(item, np.ndarray) else self.preprocess([item])[0] for item in items])

    def _forward_image_payloads(self, payloads: list[np.ndarray]) -> list[np.ndarray]:
        embeddings = self._forward_images(np.concatenate(payloads))
        return np.split(embeddings, np.cumsum([len(payload) for payload in payloads])[:-1])

    def _forward_images(self, pixel_values: np.ndarray) -> np.ndarray:
        def forward(start: int, end: int, lane: int) -> np.ndarray:
            return self.runtime.image_features(pixel_values[start:end], lane=lane)

        rows = len(pixel_values)
        return self._lane_pool.run_rows(forward, rows, timed=lambda: _observed("image", rows))

    @property
    def embedding_dim(self) -> int:
        return self.dims.projection_dim

    # Texts

    def tokenize(self, texts: Sequence[str]) -> tuple[Any, list[bool]]:
        """Token ids cut to the model's context; flags the texts that were cut.

        Truncation keeps the first tokens and the end-of-text marker, so the
        same text always gives the same embedding.
        """
        # SigLIP: every row at the full context, as its processor's padding="max_length".
        padding = "max_length" if self.model_family.fixed_text_width else True
        with self._tokenizer_lock:
            full_lengths = self._token_counts(list(texts))
            encoded = self.tokenizer(
                list(texts), padding=padding, truncation=True, max_length=self.max_text_tokens, return_tensors="np"
            )
        truncated = [length > self.max_text_tokens for length in full_lengths]
        return encoded, truncated

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text with the special tokens, uncut (passages are sized with it)."""
        texts = list(texts)
        if not texts:
            return []
        with self._tokenizer_lock:
            return self._token_counts(texts)

    def _token_counts(self, texts: list[str]) -> list[int]:
        # Under ``_tokenizer_lock``.
        return [len(ids) for ids in self.tokenizer(texts, truncation=False)["input_ids"]]

    def encode_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Texts → ((n, dim) float32 unit vectors, [truncated?]); cached per text."""
        texts = list(texts)
        found: dict[str, tuple[np.ndarray, bool]] = {}
        with self._text_cache_lock:
            for text in texts:
                if text in self._text_cache:
                    self._text_cache.move_to_end(text)
                    found[text] = self._text_cache[text]
        # Batched by token count: a batch is padded to its longest text, so
        # mixing short titles with 77-token descriptions wastes most of the
        # work (characters are a poor proxy: the audit's attribute rewrites
        # of one length differ by many tokens).
        missing = sorted(dict.fromkeys(text for text in texts if text not in found), key=len)
        if len(missing) > self._text_batcher.max_rows:
            # Stable: texts of equal token count keep their order by characters.
            tokens = dict(zip(missing, self.count_tokens(missing), strict=True))
            missing.sort(key=lambda text: min(tokens[text], self.max_text_tokens))
        batch_size = self._text_batcher.max_rows
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            embeddings, truncated = self._text_batcher.run(chunk, len(chunk))
            for text, embedding, was_truncated in zip(chunk, embeddings, truncated, strict=True):
                found[text] = (embedding, was_truncated)
            self._remember(chunk, embeddings, truncated)
        if not texts:
            return np.zeros((0, self.embedding_dim), np.float32), []
        return np.stack([found[text][0] for text in texts]), [found[text][1] for text in texts]

    def _forward_text_payloads(self, payloads: list[list[str]]) -> list[tuple[np.ndarray, list[bool]]]:
        embeddings, truncated = self._encode_text_batch([text for payload in payloads for text in payload])
        outputs, start = [], 0
        for payload in payloads:
            outputs.append((embeddings[start:start + len(payload)], truncated[start:start + len(payload)]))
            start += len(payload)
        return outputs

    def _encode_text_batch(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """One batch of texts → ((n, dim) unit rows, [truncated?]), in order.

        Rows run shortest first, in forwards of similar lengths
        (``padding_groups``), each padded to its own longest row only, rounded
        up to the runtime's ``text_width_step``: the tokens past a row's end
        are padding, masked out, whatever their number.
        """
        encoded, truncated = self.tokenize(texts)
        input_ids = encoded["input_ids"]
        attention_mask = encoded.get("attention_mask")
        if attention_mask is None:  # a tokenizer that gives none: every position counts
            attention_mask = np.ones_like(input_ids)
        if self.model_family.fixed_text_width:
            # The width is part of the answer: one forward at the full context, padding as tokenised.
            return self._forward_texts(input_ids, attention_mask), truncated
        lengths = attention_mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        embeddings = np.empty((len(texts), self.embedding_dim), np.float32)
        step, limit = self.runtime.text_width_step, self.max_text_tokens
        side, pad_id = self.tokenizer.padding_side, self.tokenizer.pad_token_id or 0
        for start, end in padding_groups(lengths[order].tolist(), width_step=step, limit=limit):
            rows = order[start:end]
            width = padded_width(lengths[rows].max(), step, limit)
            embeddings[rows] = self._forward_texts(
                _padded_to(input_ids[rows], width, side, pad_id), _padded_to(attention_mask[rows], width, side, 0),
            )
        return embeddings, truncated

    def _forward_texts(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        def forward(start: int, end: int, lane: int) -> np.ndarray:
            return self.runtime.text_features(input_ids[start:end], attention_mask[start:end], lane=lane)

        rows = len(input_ids)
        return self._lane_pool.run_rows(forward, rows, timed=lambda: _observed("text", rows))

    def _remember(self, texts: list[str], embeddings: np.ndarray, truncated: list[bool]) -> None:
        capacity = self.text_cache_size
        if capacity <= 0:
            return
        with self._text_cache_lock:
            for text, embedding, was_truncated in zip(texts, embeddings, truncated, strict=True):
                # A copy: a row view would keep its whole forward's batch alive.
                self._text_cache[text] = (embedding.copy(), was_truncated)
            while len(self._text_cache) > capacity:
                self._text_cache.popitem(last=False)


def _padded_to(tokens: np.ndarray, width: int, padding_side: str, pad_value: int) -> np.ndarray:
    """Token rows cut, or padded with ``pad_value``, to ``width`` columns, keeping
    the tokens (padding is on ``padding_side``)."""
    missing = width - tokens.shape[1]
    if missing > 0:
        padding = np.full((len(tokens), missing), pad_value, tokens.dtype)
        return np.concatenate([padding, tokens] if padding_side == "left" else [tokens, padding], axis=1)
    return tokens[:, -width:] if padding_side == "left" else tokens[:, :width]


@contextmanager
def _observed(kind: str, batch_size: int) -> Iterator[None]:
    """Records a forward pass's batch size and duration in the metrics."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.INFERENCE_BATCH_SIZE.labels(kind=kind).observe(batch_size)
        elapsed = time.perf_counter() - started
        metrics.INFERENCE_LATENCY.labels(kind=kind).observe(elapsed)
        forward_clock.observe(elapsed, batch_size)

