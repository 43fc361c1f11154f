"""Tiny checkpoints built offline, in the standard save_pretrained layout.

Hub downloads are impossible in tests, so the suite builds a small randomly
initialised CLIP with its tokenizer and image processor and loads it through
the production path (``CLIPCHECK["MODEL"] = <dir>``); SigLIP, SigLIP 2 and the
refused checkpoints (NaFlex, ``auto_map``) come from ``bench.family_assets``.
"""

import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

from bench.family_assets import TINY, build_naflex, build_siglip, build_siglip2, with_code_map  # noqa: F401

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


# The other families' tiny checkpoints (and the refused ones) are the family benchmark's, built the same way.
def build_tiny_siglip(directory, *, seed=0):
    return build_siglip(directory, size=TINY, seed=seed)


def build_tiny_siglip2(directory, *, seed=0):
    return build_siglip2(directory, size=TINY, seed=seed)


def build_tiny_naflex(directory, *, seed=0):
    return build_naflex(directory, seed=seed)


FAMILY_BUILDERS = {"clip": build_tiny_clip, "siglip": build_tiny_siglip, "siglip2": build_tiny_siglip2}
