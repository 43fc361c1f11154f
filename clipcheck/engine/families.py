"""The CLIP family of checkpoints the engine serves: CLIP, SigLIP and SigLIP 2.

A checkpoint is recognised from its ``config.json`` (``model_type``) and its
``tokenizer_config.json`` (``tokenizer_class``), before any of its code or
weights are touched, and everything that differs between the families is
said here once: the transformers model class, whether the model was trained
with a sigmoid loss (its own match probability is
``sigmoid(logit_scale * cos + logit_bias)``), how texts are padded, which
tokenizer and image processor it comes with, and its embedding size.

SigLIP 2 exists in two forms on the hub: fixed resolution (``model_type``
``siglip``, a Gemma tokenizer; served) and NaFlex (``model_type``
``siglip2``, variable resolution with patch masks; refused: the engine's
preprocessing, batching and compiled OpenVINO shapes take one image size).
Any other architecture, and any checkpoint that ships its own code
(``auto_map``, which would need ``trust_remote_code``), is refused at start
with one sentence: no code from a checkpoint is ever run.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipcheck.engine.checkpoints import CheckpointUnavailable

# The files whose ``auto_map`` would make transformers import the checkpoint's own code.
CODE_MAP_FILES = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")
GEMMA_TOKENIZER_CLASSES = frozenset({"GemmaTokenizer", "GemmaTokenizerFast", "Siglip2Tokenizer"})
SIGLIP_TOKENIZER_CLASSES = frozenset({"SiglipTokenizer"})
CLIP_TOKENIZER_CLASSES = frozenset({"CLIPTokenizer", "CLIPTokenizerFast"})
NAFLEX_ALTERNATIVE = "google/siglip2-base-patch16-224"


class UnsupportedCheckpoint(CheckpointUnavailable):
    """A checkpoint of an architecture the engine does not serve; the message says which and why."""


@dataclass(frozen=True)
class ModelFamily:
    """What differs between the checkpoints of the CLIP family."""

    name: str  # "clip", "siglip" or "siglip2": what /clip/health reports
    title: str  # for people: "CLIP", "SigLIP", "SigLIP 2"
    model_class: str  # the transformers class of both towers
    config_class: str
    # Trained with a sigmoid loss: sigmoid(logit_scale * cos + logit_bias) is the model's own match probability.
    sigmoid: bool
    # Every text padded to the full context: the text tower pools its LAST position, so the width is part of
    # the answer. CLIP pools the end-of-text token and takes any width.
    fixed_text_width: bool
    # The tokenizer classes its checkpoints name (SigLIP 2's Gemma tokenizer is what tells it from SigLIP).
    tokenizer_classes: frozenset[str]
    # The context when config.json leaves it out (the configuration classes' defaults).
    default_context: int

    def model_type(self) -> Any:
        """The transformers model class (imports torch)."""
        import transformers

        return getattr(transformers, self.model_class)

    def config_type(self) -> Any:
        import transformers

        return getattr(transformers, self.config_class)

    def embedding_dim(self, config: dict[str, Any]) -> int:
        """The size of the embeddings both towers give, from ``config.json``."""
        if self.name == "clip":
            return int(config.get("projection_dim", 512))
        # SigLIP has no projection: the text head maps to projection_size (its hidden size by default).
        text = config.get("text_config") or {}
        return int(text.get("projection_size") or text.get("hidden_size", 768))

    def context(self, config: dict[str, Any]) -> int:
        text = config.get("text_config") or {}
        return int(text.get("max_position_embeddings", self.default_context))


CLIP = ModelFamily(
    name="clip", title="CLIP", model_class="CLIPModel", config_class="CLIPConfig", sigmoid=False,
    fixed_text_width=False, tokenizer_classes=CLIP_TOKENIZER_CLASSES, default_context=77,
)
SIGLIP = ModelFamily(
    name="siglip", title="SigLIP", model_class="SiglipModel", config_class="SiglipConfig", sigmoid=True,
    fixed_text_width=True, tokenizer_classes=SIGLIP_TOKENIZER_CLASSES, default_context=64,
)
SIGLIP2 = ModelFamily(
    name="siglip2", title="SigLIP 2", model_class="SiglipModel", config_class="SiglipConfig", sigmoid=True,
    fixed_text_width=True, tokenizer_classes=GEMMA_TOKENIZER_CLASSES, default_context=64,
)


def checkpoint_family(checkpoint: str | os.PathLike[str]) -> ModelFamily:
    """The family of the checkpoint directory; ``UnsupportedCheckpoint`` (one sentence) for any other."""
    directory = Path(checkpoint)
    config = _json_object(directory / "config.json")
    if config is None:
        raise UnsupportedCheckpoint("it has no readable config.json.")
    for name in CODE_MAP_FILES:
        found = config if name == "config.json" else _json_object(directory / name)
        if found is not None and _has_code_map(found):
            raise UnsupportedCheckpoint(
                f"it ships its own model code ({name} has an auto_map) and would need trust_remote_code, "
                "which is never used: choose a CLIP, SigLIP or SigLIP 2 checkpoint that transformers loads by itself."
            )
    model_type = config.get("model_type")
    tokenizer_class = (_json_object(directory / "tokenizer_config.json") or {}).get("tokenizer_class")
    if model_type == "clip":
        family = CLIP
    elif model_type == "siglip":
        family = SIGLIP2 if tokenizer_class in GEMMA_TOKENIZER_CLASSES else SIGLIP
    elif model_type == "siglip2":
        raise UnsupportedCheckpoint(
            "it is a SigLIP 2 NaFlex checkpoint (model_type 'siglip2', variable resolution), which is not served: "
            f"use a fixed-resolution SigLIP 2 checkpoint such as {NAFLEX_ALTERNATIVE}."
        )
    else:
        raise UnsupportedCheckpoint(
            f"its architecture (model_type {model_type!r}) is not one the service runs: "
            "CLIP ('clip') or SigLIP and fixed-resolution SigLIP 2 ('siglip')."
        )
    return family


def _has_code_map(config: dict[str, Any]) -> bool:
    nested = [value for value in config.values() if isinstance(value, dict)]
    return "auto_map" in config or any("auto_map" in value for value in nested)


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None
