"""Calibration and guard sets for the int8 runtime: photos with their texts.

NNCF calibrates activation ranges on inputs like the ones the model will
see, so the best set is a sample of the project's own photos and texts
(a project builds one with ``calibration_set_build``). Without one, ``generic_calibration_set`` renders a shipped
generic set: flat-coloured shapes on plain, gradient and noisy backgrounds
with captions naming them, at the sizes product photos come in.
"""

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL.Image import Image

from clipcheck import scoring

BATCH = 8
SHAPES = ("circle", "square", "triangle", "diamond", "bar", "ring")
COLOURS = {
    "red": (220, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 220), "yellow": (240, 210, 20),
    "purple": (130, 40, 170), "orange": (245, 130, 20), "black": (20, 20, 20), "white": (245, 245, 245),
}


@dataclass
class CalibrationSet:
    """Preprocessed pictures and tokenised texts; pair ``i`` is (picture i, text i)."""

    pixels: np.ndarray  # (n, 3, h, w) float32, the engine's preprocessing
    texts: list[str]
    tokenizer: Any
    max_tokens: int
    source: str
    threshold: float = 0.25
    # Texts padded to the full context (SigLIP's text tower pools the last position): as the engine feeds them.
    fixed_text_width: bool = False

    def _tokens(self, texts: list[str]) -> dict[str, np.ndarray]:
        padding = "max_length" if self.fixed_text_width else len(texts) > 1
        encoded = self.tokenizer(texts, padding=padding, truncation=True, max_length=self.max_tokens,
                                 return_tensors="np")
        ids = encoded["input_ids"].astype(np.int64)
        mask = encoded.get("attention_mask")
        return {"input_ids": ids, "attention_mask": np.ones_like(ids) if mask is None else mask.astype(np.int64)}

    @property
    def size(self) -> int:
        return len(self.texts)

    @property
    def digest(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.pixels).tobytes())
        digest.update("\0".join(self.texts).encode())
        return digest.hexdigest()[:24]

    def pixel_batches(self) -> list[np.ndarray]:
        return [self.pixels[start:start + BATCH] for start in range(0, self.size, BATCH)]

    def image_items(self) -> list[dict[str, np.ndarray]]:
        """Calibration inputs of the image tower, one picture each."""
        return [{"pixel_values": self.pixels[index:index + 1]} for index in range(self.size)]

    def text_items(self) -> list[dict[str, np.ndarray]]:
        """Calibration inputs of the text tower, one text each (unpadded, but for a fixed-width family)."""
        return [self._tokens([text]) for text in self.texts]

    def token_batches(self) -> list[dict[str, np.ndarray]]:
        return [self._tokens(self.texts[start:start + BATCH]) for start in range(0, self.size, BATCH)]

    def pair_scores(self, image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> list[float]:
        """API scores of every matching pair and of each picture with another's text."""
        count = len(self.texts)
        shift = max(1, count // 2)
        cosines = [float(image_embeddings[i] @ text_embeddings[i]) for i in range(count)]
        cosines += [float(image_embeddings[i] @ text_embeddings[(i + shift) % count]) for i in range(count)]
        return [scoring.similarity_score(cosine) for cosine in cosines]


def calibration_set_build(*, checkpoint: str | os.PathLike[str], images: Sequence[Image], texts: Sequence[str],
                          source: str, threshold: float = 0.25) -> CalibrationSet:
    """A set from RGB PIL images and their texts, preprocessed by the checkpoint's own processor."""
    from clipcheck.engine.families import checkpoint_family
    from clipcheck.engine.processing import ModelDims, load_image_preprocessor, load_tokenizer, text_token_limit

    pixels = load_image_preprocessor(checkpoint)(list(images))
    tokenizer = load_tokenizer(checkpoint)
    max_tokens = text_token_limit(ModelDims.from_checkpoint(checkpoint), tokenizer)
    return CalibrationSet(pixels=pixels, texts=list(texts), tokenizer=tokenizer, max_tokens=max_tokens,
                          source=source, threshold=threshold,
                          fixed_text_width=checkpoint_family(checkpoint).fixed_text_width)


def generic_pictures(count: int = 64, seed: int = 0) -> list[tuple[Image, str]]:
    """(RGB PIL image, caption) pairs: one coloured shape each, deterministic."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    pairs = []
    for index in range(count):
        shape, colour = SHAPES[index % len(SHAPES)], names[(index // len(SHAPES) + index) % len(names)]
        size = int(rng.choice([160, 224, 320, 480]))
        background = rng.integers(90, 200, size=3)
        canvas = np.ones((size, size, 3)) * background
        if index % 3 == 1:  # gradient
            canvas = canvas * np.linspace(0.7, 1.2, size)[None, :, None]
        elif index % 3 == 2:  # noise
            canvas = canvas + rng.normal(0, 18, canvas.shape)
        image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        radius = size * rng.uniform(0.25, 0.4)
        cx, cy = size * rng.uniform(0.4, 0.6, size=2)
        box = [cx - radius, cy - radius, cx + radius, cy + radius]
        fill = COLOURS[colour]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        elif shape == "triangle":
            draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=fill)
        elif shape == "diamond":
            draw.polygon([(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)], fill=fill)
        elif shape == "bar":
            draw.rectangle([cx - radius, cy - radius / 3, cx + radius, cy + radius / 3], fill=fill)
        else:
            draw.ellipse(box, outline=fill, width=max(2, int(radius / 3)))
        pairs.append((image, f"a photo of a {colour} {shape}"))
    return pairs


def generic_calibration_set(checkpoint: str | os.PathLike[str], threshold: float = 0.25) -> CalibrationSet:
    pairs = generic_pictures()
    return calibration_set_build(
        checkpoint=checkpoint, images=[image for image, _ in pairs], texts=[text for _, text in pairs],
        source="generic", threshold=threshold,
    )
