"""Tiny CLIP checkpoints built offline, in the standard save_pretrained layout.

Hub downloads are impossible in tests, so the suite builds a small randomly
initialised CLIP with its tokenizer and image processor and loads it through
the production path (``CLIPCHECK["MODEL"] = <dir>``).
"""

import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

START, END = "<|startoftext|>", "<|endoftext|>"


def byte_level_vocab():
    """A CLIP BPE vocabulary with no merges: every word spelled byte by byte."""
    alphabet = sorted(ByteLevel.alphabet())
    tokens = alphabet + [symbol + "</w>" for symbol in alphabet] + [START, END]
    return {token: index for index, token in enumerate(tokens)}


def build_tiny_clip(directory, *, image_size=48, seed=0, max_text_tokens=77):
    """Write a tiny random CLIP to ``directory``; returns the directory."""
    vocab = byte_level_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": max_text_tokens,
            "bos_token_id": vocab[START],
            "eos_token_id": vocab[END],
            "pad_token_id": vocab[END],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 16,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    model.save_pretrained(directory)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


# Words of listings in the four catalogue languages: what the tiny SigLIP tokenizers learn their pieces from.
TOKENIZER_CORPUS = [
    "a photo of a red circle", "a blue square on a white background", "a green triangle", "a yellow star",
    "a purple cross", "an orange ring", "a black bag with a strap", "a long description of a product",
    "ein roter Stern", "ein blaues Quadrat", "ein grünes Dreieck", "ein weißer Kreis",
    "une étoile rouge", "un carré bleu", "une croix jaune", "un anneau violet",
    "una estrella roja", "un cuadrado azul", "una cruz amarilla", "un anillo morado",
]
SIGLIP_CONTEXT = 64
# A trained SigLIP's scale and bias are about exp(4.7) and -12.9: a tiny model gets the same order.
SIGLIP_LOGIT_SCALE_LOG, SIGLIP_LOGIT_BIAS = 2.3, -1.5


def siglip_config(*, vocab_size, pad_token_id, eos_token_id, image_size=48, model_type_class=None):
    """A tiny two-layer SigLIP configuration (``SiglipConfig``, or ``model_type_class``)."""
    from transformers import SiglipConfig

    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    return (model_type_class or SiglipConfig)(
        text_config={**tower, "vocab_size": vocab_size, "max_position_embeddings": SIGLIP_CONTEXT,
                     "pad_token_id": pad_token_id, "eos_token_id": eos_token_id, "bos_token_id": None},
        vision_config={**tower, "image_size": image_size, "patch_size": 16},
    )


def tiny_siglip_model(config, seed):
    from transformers import SiglipModel

    torch.manual_seed(seed)
    model = SiglipModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(SIGLIP_LOGIT_SCALE_LOG)
        model.logit_bias.fill_(SIGLIP_LOGIT_BIAS)
    return model


def sentencepiece_model_file(path):
    """A small unigram SentencePiece model trained offline on ``TOKENIZER_CORPUS`` (deterministic)."""
    import io

    import sentencepiece

    written = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TOKENIZER_CORPUS * 8), model_writer=written, vocab_size=160, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
    )
    path.write_bytes(written.getvalue())
    return path


def build_tiny_siglip(directory, *, image_size=48, seed=0):
    """Write a tiny random SigLIP (``SiglipModel``, ``SiglipTokenizer`` on a real SentencePiece
    model, ``SiglipImageProcessor``) to ``directory``; returns the directory."""
    from pathlib import Path

    from transformers import SiglipImageProcessorPil, SiglipProcessor, SiglipTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    scratch = directory / "spiece.model"
    tokenizer = SiglipTokenizer(vocab_file=str(sentencepiece_model_file(scratch)), model_max_length=SIGLIP_CONTEXT)
    config = siglip_config(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                           eos_token_id=tokenizer.eos_token_id, image_size=image_size)
    tiny_siglip_model(config, seed).save_pretrained(directory)
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def gemma_style_tokenizer():
    """A Gemma-style byte-fallback BPE tokenizer trained offline with ``tokenizers`` on ``TOKENIZER_CORPUS``."""
    import json

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


def build_tiny_siglip2(directory, *, image_size=48, seed=0):
    """Write a tiny random fixed-resolution SigLIP 2 (``SiglipModel`` with a Gemma tokenizer,
    as the hub's ``google/siglip2-*-patch16-224`` checkpoints) to ``directory``."""
    from transformers import SiglipImageProcessorPil, SiglipProcessor

    tokenizer = gemma_style_tokenizer()
    config = siglip_config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                           eos_token_id=tokenizer.eos_token_id, image_size=image_size)
    tiny_siglip_model(config, seed).save_pretrained(directory)
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def build_tiny_naflex(directory, *, seed=0):
    """Write a tiny random SigLIP 2 NaFlex (``Siglip2Model``, model_type "siglip2") to ``directory``."""
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
    return directory


def with_code_map(directory, file_name="config.json"):
    """``directory``'s checkpoint made to name code of its own (an ``auto_map``), as jina-clip-v2's does."""
    import json
    from pathlib import Path

    path = Path(directory) / file_name
    config = json.loads(path.read_text())
    config["auto_map"] = {"AutoModel": "modeling_clip.JinaCLIPModel", "AutoConfig": "configuration_clip.JinaCLIPConfig"}
    path.write_text(json.dumps(config, indent=2))
    (Path(directory) / "modeling_clip.py").write_text("raise SystemExit('remote code ran')\n")
    return directory


FAMILY_BUILDERS = {"clip": build_tiny_clip, "siglip": build_tiny_siglip, "siglip2": build_tiny_siglip2}
