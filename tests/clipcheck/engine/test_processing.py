"""Preprocessing without torch: transformers' answers, bit for bit, and an OpenVINO worker without torch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessorPil, SiglipConfig, SiglipImageProcessorPil

from clipcheck.engine.openvino import ensure_exact_build
from clipcheck.engine.processing import (
    ImagePreprocessor,
    ModelDims,
    load_image_preprocessor,
    load_tokenizer,
    text_token_limit,
)
from tests.checkpoints import build_tiny_siglip, build_tiny_siglip2
from tests.support.runtime import RUNTIME_CACHE_DIR

REPO_ROOT = Path(__file__).resolve().parents[3]
KNOWN_ANSWER = str(REPO_ROOT / "tests" / "fixtures" / "known_answer_clip")
# Smaller and larger than the crop, both orientations, odd sizes (rounding of the long edge and the crop offset).
SIZES = [(1, 1), (2, 300), (300, 2), (31, 64), (47, 48), (48, 48), (65, 63), (224, 224), (333, 777), (1000, 17)]


def random_pictures(seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for width, height in SIZES]


def transformers_pixels(checkpoint, images):
    return CLIPImageProcessorPil.from_pretrained(checkpoint)(images=images, return_tensors="np")["pixel_values"]


@pytest.mark.parametrize("checkpoint", ["tiny", "known_answer"])
def test_pixels_equal_transformers_bit_for_bit(checkpoint, tiny_model_dir):
    checkpoint = tiny_model_dir if checkpoint == "tiny" else KNOWN_ANSWER
    preprocess = load_image_preprocessor(checkpoint)
    assert isinstance(preprocess, ImagePreprocessor)
    images = random_pictures()
    ours = preprocess(images)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, transformers_pixels(checkpoint, images))


@pytest.fixture(scope="module")
def siglip_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("siglip-processing")
    return {"siglip": build_tiny_siglip(root / "siglip"), "siglip2": build_tiny_siglip2(root / "siglip2")}


@pytest.mark.parametrize("family", ["siglip", "siglip2"])
def test_siglip_pixels_equal_transformers_bit_for_bit(family, siglip_checkpoints):
    # An exact resize to the model's size (no crop), mean and std 0.5: SiglipImageProcessorPil's steps.
    checkpoint = siglip_checkpoints[family]
    preprocess = load_image_preprocessor(checkpoint)
    assert isinstance(preprocess, ImagePreprocessor) and preprocess.crop is None
    images = random_pictures(seed=3) + [picture.convert(mode) for mode in ("L", "RGBA", "P")
                                        for picture in random_pictures(seed=4)[3:5]]
    expected = SiglipImageProcessorPil.from_pretrained(checkpoint)(images=images, return_tensors="np")["pixel_values"]
    ours = preprocess(images)
    assert ours.shape == (len(images), 3, 48, 48)
    assert np.array_equal(ours, expected)


def test_a_siglip_config_silent_on_its_steps_takes_siglips_defaults(tmp_path, siglip_checkpoints):
    # The hub's SigLIP configs name no crop and no mean: SiglipImageProcessor's defaults, not CLIP's.
    checkpoint = tmp_path / "silent"
    shutil.copytree(siglip_checkpoints["siglip"], checkpoint)
    config_path = checkpoint / "processor_config.json"
    config = json.loads(config_path.read_text())
    for key in ("image_mean", "image_std", "do_normalize", "resample"):
        config["image_processor"].pop(key)
    config_path.write_text(json.dumps(config))
    images = random_pictures(seed=5)
    expected = SiglipImageProcessorPil.from_pretrained(checkpoint)(images=images, return_tensors="np")["pixel_values"]
    assert np.array_equal(load_image_preprocessor(checkpoint)(images), expected)


@pytest.mark.parametrize("family", ["siglip", "siglip2"])
def test_siglip_tokenizers_and_dimensions_equal_transformers(family, siglip_checkpoints):
    checkpoint = siglip_checkpoints[family]
    ours, theirs = load_tokenizer(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    assert type(ours).__name__ == {"siglip": "SiglipTokenizer", "siglip2": "GemmaTokenizer"}[family]
    texts = ["Red shoes.", "a very long title " * 30, "", "Ünïcödé étoile 漢字 😀"]
    options = {"padding": "max_length", "truncation": True, "max_length": 64, "return_tensors": "np"}
    encoded, expected = ours(texts, **options), theirs(texts, **options)
    assert all(np.array_equal(encoded[key], expected[key]) for key in ("input_ids", "attention_mask"))
    config, dims = SiglipConfig.from_pretrained(checkpoint), ModelDims.from_checkpoint(checkpoint)
    # SigLIP has no projection_dim: its embeddings are the heads' output size.
    assert dims == ModelDims(config.text_config.projection_size, config.text_config.max_position_embeddings)
    assert config.vision_config.hidden_size == config.text_config.projection_size


def test_a_legacy_preprocessor_config_is_read_as_transformers_reads_it(tmp_path, tiny_model_dir):
    # The old feature-extractor layout: integer size and crop, no processor_config.json.
    checkpoint = tmp_path / "legacy"
    shutil.copytree(tiny_model_dir, checkpoint)
    (checkpoint / "processor_config.json").unlink()
    (checkpoint / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "CLIPFeatureExtractor", "size": 40, "crop_size": 32, "resample": 2,
        "do_resize": True, "do_center_crop": True, "do_normalize": True,
        "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3],
    }))
    images = random_pictures(seed=1)
    ours = load_image_preprocessor(checkpoint)(images)
    assert ours.shape == (len(images), 3, 32, 32)
    assert np.array_equal(ours, transformers_pixels(checkpoint, images))


def test_a_processor_with_steps_it_does_not_know_is_left_to_transformers(tmp_path, tiny_model_dir):
    checkpoint = tmp_path / "padded"
    shutil.copytree(tiny_model_dir, checkpoint)
    config_path = checkpoint / "processor_config.json"
    config = json.loads(config_path.read_text())
    config["image_processor"]["size"] = {"shortest_edge": 40, "longest_edge": 60}
    config_path.write_text(json.dumps(config))
    preprocess = load_image_preprocessor(checkpoint)
    assert not isinstance(preprocess, ImagePreprocessor)
    images = random_pictures(seed=2)[3:8]  # not the extreme shapes, which its size rule shrinks to nothing
    assert np.array_equal(preprocess(images), transformers_pixels(checkpoint, images))


def test_tokenizer_and_dimensions_equal_transformers(tiny_model_dir):
    for checkpoint in (tiny_model_dir, KNOWN_ANSWER):
        ours, theirs = load_tokenizer(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
        texts = ["red shoes", "a very long title " * 30, "", "Ünïcödé 漢字 😀"]
        options = {"padding": True, "truncation": True, "max_length": 77, "return_tensors": "np"}
        encoded, expected = ours(texts, **options), theirs(texts, **options)
        assert all(np.array_equal(encoded[key], expected[key]) for key in ("input_ids", "attention_mask"))
        config, dims = CLIPConfig.from_pretrained(checkpoint), ModelDims.from_checkpoint(checkpoint)
        assert dims == ModelDims(config.projection_dim, config.text_config.max_position_embeddings)
        assert text_token_limit(dims, ours) == min(config.text_config.max_position_embeddings, theirs.model_max_length)


WORKER = """
import os, sys, django
django.setup()
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
from clipcheck.engine import get_engine
engine = get_engine()
response = Client().post("/clip/classify", {"file": open(sys.argv[1], "rb"), "categories": "red square,blue circle"})
print(engine.runtime_name, response.status_code, "torch" in sys.modules, "scipy" in sys.modules)
"""


def test_an_openvino_worker_answers_without_importing_torch(tmp_path):
    # The build is the deploy step's (it converts with torch); the worker only serves it.
    ensure_exact_build(checkpoint=KNOWN_ANSWER, cache_dir=RUNTIME_CACHE_DIR)
    picture = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (220, 20, 20)).save(picture)
    environment = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "clipproject.settings", "CLIPCHECK_MODEL": KNOWN_ANSWER,
        "CLIPCHECK_RUNTIME": "openvino", "CLIPCHECK_RUNTIME_CACHE_DIR": RUNTIME_CACHE_DIR,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "PYTHONPATH": str(REPO_ROOT),
    }
    result = subprocess.run([sys.executable, "-c", WORKER, str(picture)], cwd=REPO_ROOT, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-4:] == ["openvino", "200", "False", "False"]
