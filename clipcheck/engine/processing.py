"""The checkpoint's own preprocessing, without torch.

transformers' image processors, ``AutoTokenizer`` and ``CLIPConfig`` import
torch, its model code and scipy on the way in: about 330 MB resident in every
worker, although an OpenVINO worker never runs torch. What a CLIP checkpoint
asks of its inputs is small, so it is read here from the checkpoint's files:

* images: ``ImagePreprocessor`` performs ``CLIPImageProcessorPil``'s steps
  (PIL resize, centre crop, rescale, normalise) and ``SiglipImageProcessorPil``'s
  (exact resize, no crop, mean and std 0.5) with the same arithmetic, so its
  pixels are bit for bit transformers' (``tests/clipcheck/engine/
  test_processing.py`` compares them); a processor config with steps it does
  not know is handed to transformers' own processor instead;
* texts: transformers' ``CLIPTokenizer`` (the Rust tokenizer; importing it
  alone does not import torch), ``SiglipTokenizer`` (SentencePiece) for
  SigLIP, or ``AutoTokenizer`` for a checkpoint that names another tokenizer
  class (SigLIP 2's Gemma tokenizer);
* dimensions: ``ModelDims`` from ``config.json``, as its family reads it
  (``clipcheck.engine.families``).
"""

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# CLIPImageProcessor's defaults, for keys a processor config leaves out.
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_DEFAULTS = {
    "do_resize": True, "size": {"shortest_edge": 224}, "resample": Image.Resampling.BICUBIC,
    "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
    "do_rescale": True, "rescale_factor": 1 / 255,
    "do_normalize": True, "image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD,
    "do_convert_rgb": True,
}
# SiglipImageProcessor's defaults differ: an exact resize, no crop, mean and std 0.5.
SIGLIP_IMAGE_DEFAULTS = {
    **IMAGE_DEFAULTS, "size": {"height": 224, "width": 224}, "do_center_crop": False,
    "image_mean": (0.5, 0.5, 0.5), "image_std": (0.5, 0.5, 0.5),
}
# Keys that describe the processor rather than a step.
DESCRIPTIVE_KEYS = {"image_processor_type", "feature_extractor_type", "processor_class", "_processor_class"}
CLIP_PROCESSOR_TYPES = {None, "CLIPImageProcessor", "CLIPImageProcessorFast", "CLIPImageProcessorPil",
                        "CLIPFeatureExtractor"}
SIGLIP_PROCESSOR_TYPES = {"SiglipImageProcessor", "SiglipImageProcessorFast", "SiglipImageProcessorPil"}
CLIP_TOKENIZER_CLASSES = {None, "CLIPTokenizer", "CLIPTokenizerFast"}


class UnsupportedProcessor(Exception):
    """A processor config with steps ``ImagePreprocessor`` does not perform."""


def image_processor_config(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The image processor's settings, from the file transformers reads first:
    ``processor_config.json``'s ``image_processor``, else ``preprocessor_config.json``."""
    checkpoint = Path(checkpoint)
    nested = _json_file(checkpoint / "processor_config.json")
    if isinstance(nested, dict) and isinstance(nested.get("image_processor"), dict):
        return nested["image_processor"]
    legacy = _json_file(checkpoint / "preprocessor_config.json")
    if isinstance(legacy, dict):
        return legacy
    raise OSError(f"{checkpoint} has no image processor config (processor_config.json or preprocessor_config.json)")


def _json_file(path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def load_image_preprocessor(
    checkpoint: str | os.PathLike[str],
) -> Callable[[Sequence[Image.Image]], np.ndarray]:
    """``ImagePreprocessor`` for the checkpoint, or transformers' own processor
    (with torch) for a config it does not cover."""
    config = image_processor_config(checkpoint)
    try:
        return ImagePreprocessor.from_config(config)
    except UnsupportedProcessor:
        import transformers

        kind = config.get("image_processor_type")
        name = "SiglipImageProcessorPil" if kind in SIGLIP_PROCESSOR_TYPES else "CLIPImageProcessorPil"
        processor = getattr(transformers, name).from_pretrained(checkpoint)
        return lambda images: processor(images=list(images), return_tensors="np")["pixel_values"].astype(np.float32)


@dataclass(frozen=True)
class ImagePreprocessor:
    """RGB PIL images → (n, 3, height, width) float32 pixels, as ``CLIPImageProcessorPil``
    (or ``SiglipImageProcessorPil`` for a SigLIP processor config)."""

    resize: tuple[str, Any] | None  # ("shortest_edge", n) or ("exact", (height, width)); None: no resize
    resample: int
    crop: tuple[int, int] | None  # (height, width)
    rescale_factor: float | None
    mean: np.ndarray | None
    std: np.ndarray | None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ImagePreprocessor":
        unknown = set(config) - set(IMAGE_DEFAULTS) - DESCRIPTIVE_KEYS
        kind = config.get("image_processor_type") or config.get("feature_extractor_type")
        if unknown or kind not in CLIP_PROCESSOR_TYPES | SIGLIP_PROCESSOR_TYPES:
            raise UnsupportedProcessor(f"processor {kind!r} with {sorted(unknown)}")
        defaults = SIGLIP_IMAGE_DEFAULTS if kind in SIGLIP_PROCESSOR_TYPES else IMAGE_DEFAULTS
        settings = {**defaults, **config}
        normalize = settings["do_normalize"]
        return cls(
            resize=_resize_rule(settings["size"]) if settings["do_resize"] else None,
            resample=int(settings["resample"]),
            crop=_crop_size(settings["crop_size"]) if settings["do_center_crop"] else None,
            rescale_factor=float(settings["rescale_factor"]) if settings["do_rescale"] else None,
            mean=np.array(settings["image_mean"], np.float32) if normalize else None,
            std=np.array(settings["image_std"], np.float32) if normalize else None,
        )

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([self.pixels(image) for image in images]).astype(np.float32, copy=False)

    def pixels(self, image: Image.Image) -> np.ndarray:
        """One RGB image → (3, height, width)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.resize is not None:
            image = image.resize(_resized_size(image.size, self.resize), resample=self.resample)
        pixels = np.asarray(image)  # (height, width, 3) uint8
        if self.crop is not None:
            pixels = _center_crop(pixels, self.crop)
        if self.rescale_factor is not None:
            # float64 first, then float32: transformers' rescale.
            pixels = (pixels.astype(np.float64) * self.rescale_factor).astype(np.float32)
        else:
            pixels = pixels.astype(np.float32)
        if self.mean is not None and self.std is not None:
            pixels = (pixels - self.mean) / self.std
        return pixels.transpose(2, 0, 1)


def _resized_size(size: tuple[int, int], rule: tuple[str, Any]) -> tuple[int, int]:
    """(width, height) for PIL, of an image of ``size`` (width, height) under ``rule``."""
    kind, target = rule
    if kind == "exact":
        height, width = target
        return width, height
    width, height = size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = target, int(target * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def _resize_rule(size: int | dict[str, int]) -> tuple[str, Any]:
    if isinstance(size, int):  # a legacy config: the shortest edge
        size = {"shortest_edge": size}
    if set(size) == {"shortest_edge"}:
        return ("shortest_edge", int(size["shortest_edge"]))
    if set(size) == {"height", "width"}:
        return ("exact", (int(size["height"]), int(size["width"])))
    raise UnsupportedProcessor(f"size {size!r}")


def _crop_size(crop_size: int | dict[str, int]) -> tuple[int, int]:
    if isinstance(crop_size, int):
        crop_size = {"height": crop_size, "width": crop_size}
    if set(crop_size) != {"height", "width"}:
        raise UnsupportedProcessor(f"crop_size {crop_size!r}")
    return (int(crop_size["height"]), int(crop_size["width"]))


def _center_crop(pixels: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    """transformers' centre crop of an (h, w, c) array, zero-padded where the image is smaller."""
    height, width = pixels.shape[:2]
    crop_height, crop_width = crop
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    if top >= 0 and left >= 0:
        return pixels[top:top + crop_height, left:left + crop_width]
    new_height, new_width = max(crop_height, height), max(crop_width, width)
    padded = np.zeros((new_height, new_width) + pixels.shape[2:], pixels.dtype)
    top_pad, left_pad = ceil((new_height - height) / 2), ceil((new_width - width) / 2)
    padded[top_pad:top_pad + height, left_pad:left_pad + width] = pixels
    top, left = top + top_pad, left + left_pad
    return padded[max(0, top):min(new_height, top + crop_height), max(0, left):min(new_width, left + crop_width)]


def load_tokenizer(checkpoint: str | os.PathLike[str]) -> Any:
    """The checkpoint's tokenizer; ``CLIPTokenizer`` or ``SiglipTokenizer`` without
    importing torch where it is one."""
    config = _json_file(Path(checkpoint) / "tokenizer_config.json") or {}
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class in CLIP_TOKENIZER_CLASSES:
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(checkpoint)
    if tokenizer_class == "SiglipTokenizer":
        from transformers import SiglipTokenizer

        return SiglipTokenizer.from_pretrained(checkpoint)
    # Other classes (SigLIP 2's GemmaTokenizer) through their auto class; never a checkpoint's
    # own code (clipcheck.engine.families refuses an auto_map before this).
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)


@dataclass(frozen=True)
class ModelDims:
    """What the engine needs of ``config.json`` (its configuration class's defaults where it is silent)."""

    projection_dim: int  # the embeddings' size (SigLIP has no projection: its heads' output size)
    max_position_embeddings: int

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike[str]) -> "ModelDims":
        from clipcheck.engine.families import checkpoint_family

        config = _json_file(Path(checkpoint) / "config.json")
        if not isinstance(config, dict):
            raise OSError(f"{checkpoint} has no config.json")
        family = checkpoint_family(checkpoint)
        return cls(projection_dim=family.embedding_dim(config), max_position_embeddings=family.context(config))


def text_token_limit(dims: ModelDims, tokenizer: Any) -> int:
    """Tokens a text keeps: the model's context, or the tokenizer's if shorter."""
    return min(dims.max_position_embeddings, getattr(tokenizer, "model_max_length", None) or 10**9)
