"""Random-weight checkpoints of each family the engine serves, built offline (deterministic).

CLIP, SigLIP (``SiglipModel`` with a ``SiglipTokenizer`` on a real
SentencePiece model trained here) and fixed-resolution SigLIP 2
(``SiglipModel`` with a Gemma-style BPE ``tokenizer.json`` built with the
``tokenizers`` library, ``tokenizer_class`` "GemmaTokenizer" as on the hub),
plus the checkpoints the engine refuses: a SigLIP 2 NaFlex (``Siglip2Model``)
and one naming code of its own (``auto_map``). Sizes: ``TINY`` (two layers
32 wide: the test suite's) and ``BASE`` (ViT-B/16 at 224 px: what a real base
checkpoint costs). Random weights give the real compute cost; the scores
themselves are meaningless.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Words of listings in the four catalogue languages: what the tokenizers learn their pieces from.
TOKENIZER_CORPUS = [
    "a photo of a red circle", "a blue square on a white background", "a green triangle", "a yellow star",
    "a purple cross", "an orange ring", "a black bag with a strap", "a long description of a product",
    "ein roter Stern", "ein blaues Quadrat", "ein grünes Dreieck", "ein weißer Kreis",
    "une étoile rouge", "un carré bleu", "une croix jaune", "un anneau violet",
    "una estrella roja", "un cuadrado azul", "una cruz amarilla", "un anillo morado",
]
SIGLIP_CONTEXT = 64
# A trained SigLIP's scale and bias are about exp(4.7) and -12.9: a random model gets milder ones.
SIGLIP_LOGIT_SCALE_LOG, SIGLIP_LOGIT_BIAS = 2.3, -1.5


@dataclass(frozen=True)
class Size:
    """Tower dimensions (both towers alike) and the image size."""

    name: str
    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    image_size: int
    patch_size: int

    def tower(self) -> dict[str, int]:
        return {"hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size,
                "num_hidden_layers": self.layers, "num_attention_heads": self.heads}


TINY = Size("tiny", hidden_size=32, intermediate_size=64, layers=2, heads=2, image_size=48, patch_size=16)
BASE = Size("base", hidden_size=768, intermediate_size=3072, layers=12, heads=12, image_size=224, patch_size=16)


def siglip_config(*, vocab_size: int, pad_token_id: int, eos_token_id: int, size: Size = TINY) -> Any:
    """A ``SiglipConfig`` of ``size``."""
    from transformers import SiglipConfig

    return SiglipConfig(
        text_config={**size.tower(), "vocab_size": vocab_size, "max_position_embeddings": SIGLIP_CONTEXT,
                     "pad_token_id": pad_token_id, "eos_token_id": eos_token_id, "bos_token_id": None},
        vision_config={**size.tower(), "image_size": size.image_size, "patch_size": size.patch_size},
    )


def siglip_model(config: Any, seed: int) -> Any:
    import torch
    from transformers import SiglipModel

    torch.manual_seed(seed)
    model = SiglipModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(SIGLIP_LOGIT_SCALE_LOG)
        model.logit_bias.fill_(SIGLIP_LOGIT_BIAS)
    return model


def sentencepiece_model_file(path: Path) -> Path:
    """A small unigram SentencePiece model trained offline on ``TOKENIZER_CORPUS`` (deterministic)."""
    import sentencepiece

    written = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TOKENIZER_CORPUS * 8), model_writer=written, vocab_size=160, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
    )
    path.write_bytes(written.getvalue())
    return path


def build_siglip(directory: str | Path, *, size: Size = TINY, seed: int = 0) -> Path:
    """Write a random SigLIP (``SiglipModel``, ``SiglipTokenizer`` on a real SentencePiece
    model, ``SiglipImageProcessor``) to ``directory``; returns the directory."""
    from transformers import SiglipImageProcessorPil, SiglipProcessor, SiglipTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_file = sentencepiece_model_file(directory / "spiece.model")
    tokenizer = SiglipTokenizer(vocab_file=str(model_file), model_max_length=SIGLIP_CONTEXT)
    config = siglip_config(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                           eos_token_id=tokenizer.eos_token_id, size=size)
    siglip_model(config, seed).save_pretrained(directory)
    image_processor = SiglipImageProcessorPil(size={"height": size.image_size, "width": size.image_size})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def gemma_style_tokenizer() -> Any:
    """A Gemma-style byte-fallback BPE tokenizer trained offline with ``tokenizers`` on ``TOKENIZER_CORPUS``."""
    from tokenizers import Tokenizer, models, normalizers, trainers
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    trained = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trained.normalizer = normalizers.Replace(" ", "▁")
    alphabet = sorted(set("".join(TOKENIZER_CORPUS).lower().replace(" ", "▁")))
    trained.train_from_iterator(
        [text.lower().replace(" ", "▁") for text in TOKENIZER_CORPUS * 8],
        trainers.BpeTrainer(vocab_size=200, special_tokens=specials, initial_alphabet=alphabet, show_progress=False),
    )
    model = json.loads(trained.to_str())["model"]
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in model["merges"]]
    # As the hub's SigLIP 2 checkpoints: no <bos>, an <eos> closing each text.
    return GemmaTokenizer(vocab=model["vocab"], merges=merges, add_bos_token=False, add_eos_token=True,
                          model_max_length=SIGLIP_CONTEXT)


def build_siglip2(directory: str | Path, *, size: Size = TINY, seed: int = 0) -> Path:
    """Write a random fixed-resolution SigLIP 2 (``SiglipModel`` with a Gemma tokenizer,
    as the hub's ``google/siglip2-*-patch16-224`` checkpoints) to ``directory``."""
    from transformers import SiglipImageProcessorPil, SiglipProcessor

    directory = Path(directory)
    tokenizer = gemma_style_tokenizer()
    config = siglip_config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                           eos_token_id=tokenizer.eos_token_id, size=size)
    siglip_model(config, seed).save_pretrained(directory)
    image_processor = SiglipImageProcessorPil(size={"height": size.image_size, "width": size.image_size})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def build_clip(directory: str | Path, *, size: Size = TINY, seed: int = 0) -> Path:
    """Write a random CLIP with a byte-level BPE tokenizer (no merges) to ``directory``."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    start, end = "<|startoftext|>", "<|endoftext|>"
    alphabet = sorted(ByteLevel.alphabet())
    tokens = alphabet + [symbol + "</w>" for symbol in alphabet] + [start, end]
    vocab = {token: index for index, token in enumerate(tokens)}
    config = CLIPConfig(
        text_config={**size.tower(), "vocab_size": len(vocab), "max_position_embeddings": 77,
                     "bos_token_id": vocab[start], "eos_token_id": vocab[end], "pad_token_id": vocab[end]},
        vision_config={**size.tower(), "image_size": size.image_size, "patch_size": size.patch_size},
        projection_dim=size.hidden_size // 2 if size is TINY else 512,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(directory)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size.image_size}, crop_size={"height": size.image_size, "width": size.image_size})
    CLIPProcessor(image_processor=image_processor, tokenizer=CLIPTokenizer(vocab=vocab, merges=[])).save_pretrained(
        directory)
    return Path(directory)


def build_naflex(directory: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random SigLIP 2 NaFlex (``Siglip2Model``, model_type "siglip2") to ``directory``."""
    import torch
    from transformers import Siglip2Config, Siglip2Model

    tokenizer = gemma_style_tokenizer()
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = Siglip2Config(
        text_config={**tower, "vocab_size": len(tokenizer), "max_position_embeddings": SIGLIP_CONTEXT},
        vision_config={**tower, "patch_size": 16, "num_patches": 16},
    )
    torch.manual_seed(seed)
    Siglip2Model(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return Path(directory)


def with_code_map(directory: str | Path, file_name: str = "config.json") -> Path:
    """``directory``'s checkpoint made to name code of its own (an ``auto_map``), as jina-clip-v2's does;
    the code, if it ever ran, would stop the process."""
    path = Path(directory) / file_name
    config = json.loads(path.read_text())
    config["auto_map"] = {"AutoModel": "modeling_clip.JinaCLIPModel", "AutoConfig": "configuration_clip.JinaCLIPConfig"}
    path.write_text(json.dumps(config, indent=2))
    (Path(directory) / "modeling_clip.py").write_text("raise SystemExit('remote code ran')\n")
    (Path(directory) / "configuration_clip.py").write_text("raise SystemExit('remote code ran')\n")
    return Path(directory)


FAMILY_BUILDERS = {"clip": build_clip, "siglip": build_siglip, "siglip2": build_siglip2}
