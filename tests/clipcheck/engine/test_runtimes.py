"""Runtimes behind the engine: selection, the OpenVINO cache, concurrent encoders."""

import inspect
import shutil
import threading
import time
import typing
from pathlib import Path

import numpy as np
import openvino
import pytest
from django.core.management import call_command
from PIL import Image
from rest_framework.test import APIClient

from clipcheck.checks import check_clipcheck_settings
from clipcheck.engine import get_engine, reset_engine
from clipcheck.engine.lanes import ForwardLanes, forward_lanes
from clipcheck.engine.openvino import (
    BF16_WEIGHTS,
    OpenVinoRuntime,
    RuntimeCacheError,
    cache_key,
    compile_model,
    ensure_bf16_weights_build,
    ensure_exact_build,
    file_sha256,
    int8_proven,
    verify,
)
from clipcheck.engine.runtimes import Runtime, resolve_runtime
from tests.support.clip_settings import set_clip_settings
from tests.support.images import image_bytes
from tests.support.runtime import RUNTIME_CACHE_DIR


class TestSelection:
    def test_auto_is_torch_on_cuda_and_openvino_on_cpus(self):
        assert resolve_runtime("auto", device_type="cuda") == "torch"
        assert resolve_runtime("auto", device_type="cpu") == "openvino"

    def test_auto_takes_int8_only_where_its_guard_passed(self):
        assert resolve_runtime("auto", device_type="cpu", int8_proven=lambda: True) == "openvino-int8"
        assert resolve_runtime(" AUTO ", device_type="cpu", int8_proven=lambda: False) == "openvino"

    def test_openvino_on_cuda_and_unknown_names_are_refused(self):
        with pytest.raises(RuntimeError, match="CPU only"):
            resolve_runtime("openvino", device_type="cuda")
        with pytest.raises(RuntimeError, match="Unknown RUNTIME"):
            resolve_runtime("onnx", device_type="cpu")

    @pytest.mark.parametrize("value", ["onnx", 3, ""])
    def test_a_bad_runtime_setting_is_a_system_check_error(self, settings, value):
        set_clip_settings(settings, RUNTIME=value)
        assert "clipcheck.E016" in {error.id for error in check_clipcheck_settings()}

    def test_openvino_with_a_cuda_device_is_a_system_check_error(self, settings):
        set_clip_settings(settings, RUNTIME="openvino-int8", DEVICE="cuda")
        assert "clipcheck.E020" in {error.id for error in check_clipcheck_settings()}

    def test_the_threads_are_split_between_two_lanes(self):
        assert forward_lanes(2) == ForwardLanes(count=2, threads=1)
        assert forward_lanes(5) == ForwardLanes(count=2, threads=2)
        assert forward_lanes(1) == ForwardLanes(count=1, threads=1)
        assert forward_lanes(4, concurrent=False) == ForwardLanes(count=1, threads=4)


@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_both_runtimes_offer_the_runtime_protocol_alike(settings, runtime, fresh_engine):
    set_clip_settings(settings, RUNTIME=runtime, NUM_THREADS=2)
    engine = get_engine()
    loaded = engine.runtime
    assert loaded.lanes == engine.lanes == ForwardLanes(count=2, threads=1)
    for name, kind in typing.get_type_hints(Runtime).items():
        assert isinstance(getattr(loaded, name), kind), (name, getattr(loaded, name))
    for name in ("image_features", "text_features"):
        offered, declared = inspect.signature(getattr(type(loaded), name)), inspect.signature(getattr(Runtime, name))
        assert offered.parameters.keys() == declared.parameters.keys()
        assert offered.parameters["lane"].default == declared.parameters["lane"].default == 0
    # Nothing one runtime offers and the other does not: the engine calls the two forwards only.
    methods = [name for name, member in vars(type(loaded)).items() if inspect.isfunction(member)]
    assert [name for name in methods if not name.startswith("_")] == ["image_features", "text_features"]


def torch_reference(pictures, texts):
    engine = get_engine()
    assert engine.runtime_name == "torch"
    return engine.encode_images(pictures), engine.encode_texts(texts)[0]


PICTURES = [Image.new("RGB", (64, 48), colour) for colour in ((200, 30, 30), (20, 40, 220), (240, 240, 240))]
TEXTS = ["red", "a long blue description " * 3, "white"]


def openvino_embeddings(settings, cache_dir):
    set_clip_settings(settings, RUNTIME="openvino", DTYPE="float32", RUNTIME_CACHE_DIR=str(cache_dir))
    reset_engine()
    engine = get_engine()
    assert (engine.runtime_name, engine.precision) == ("openvino", "f32")
    return engine.encode_images(PICTURES), engine.encode_texts(TEXTS)[0]


@pytest.mark.django_db
def test_converted_models_answer_like_torch_and_a_damaged_cache_is_rebuilt(
    settings, tmp_path, tiny_model_dir, fresh_engine
):
    set_clip_settings(settings, DTYPE="float32")
    reference_images, reference_texts = torch_reference(PICTURES, TEXTS)
    images, texts = openvino_embeddings(settings, RUNTIME_CACHE_DIR)
    assert np.abs(images - reference_images).max() < 1e-4
    assert np.abs(texts - reference_texts).max() < 1e-4

    # A copy of the build (conversion costs seconds) in a cache of this test's own.
    cache_dir = tmp_path / "runtime-cache"
    key = cache_key(tiny_model_dir)
    shutil.copytree(Path(RUNTIME_CACHE_DIR) / key / "fp32", cache_dir / key / "fp32")
    build = cache_dir / key / "fp32"
    assert verify(build)["files"]["image.bin"]
    # Zeroed bytes in the weights, a lost file: the next load must trust neither.
    weights = build / "image.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    weights.write_bytes(bytes(data))
    (build / "text.xml").unlink()
    with pytest.raises(RuntimeCacheError):
        verify(build)

    images, texts = openvino_embeddings(settings, cache_dir)
    assert np.abs(images - reference_images).max() < 1e-4
    assert np.abs(texts - reference_texts).max() < 1e-4
    assert verify(build)["files"]["text.xml"]  # rebuilt and recorded again


def test_openvino_text_forwards_run_at_widths_in_steps_of_eight(settings, monkeypatch, fresh_engine):
    # Each new input shape is prepared again by OpenVINO: fewer widths, fewer preparations.
    set_clip_settings(settings, RUNTIME="openvino", DTYPE="float32", RUNTIME_CACHE_DIR=RUNTIME_CACHE_DIR)
    engine = get_engine()
    widths = []
    forward = engine.runtime.text_features
    monkeypatch.setattr(engine.runtime, "text_features",
                        lambda ids, mask, lane=0: widths.append(ids.shape[1]) or forward(ids, mask, lane=lane))
    texts = ["red", "a blue bag with a strap", "a long green description " * 20]
    embeddings, _ = engine.encode_texts(texts)
    assert widths and all(width % 8 == 0 or width == engine.max_text_tokens for width in widths)
    assert engine.max_text_tokens in widths  # the long text: cut to the context, never past it
    # Each as alone, at its own width: the padding changes nothing.
    monkeypatch.setattr(engine.runtime, "text_width_step", 1)
    for text, embedding in zip(texts, embeddings, strict=True):
        alone = engine._encode_text_batch([text])[0][0]
        assert np.abs(alone - embedding).max() < 1e-5


def test_the_compiled_models_leave_their_threads_unpinned(settings, fresh_engine):
    # Pinned, a forward waits for its own core while request threads hold it and the other core idles.
    set_clip_settings(settings, RUNTIME="openvino", DTYPE="float32", RUNTIME_CACHE_DIR=RUNTIME_CACHE_DIR)
    for _ in range(2):  # compiled, then read back from the compiled-model cache
        reset_engine()
        engine = get_engine()
        for model in (engine.runtime.image_model, engine.runtime.text_model):
            assert model.get_property("ENABLE_CPU_PINNING") is False
            assert model.get_property("NUM_STREAMS") == engine.lanes.count  # one stream per lane, as before


def test_the_cache_key_follows_the_checkpoint_content(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert cache_key(copy) == cache_key(tiny_model_dir)
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"logit_scale_init_value"', ' "logit_scale_init_value"'))
    assert cache_key(copy) != cache_key(tiny_model_dir)


@pytest.mark.django_db
def test_health_reports_the_runtime_and_its_precision(settings, fresh_engine):
    set_clip_settings(settings, RUNTIME="openvino", DTYPE="float32")
    body = APIClient().get("/clip/health").json()
    assert (body["runtime"], body["precision"]) == ("openvino", "f32")
    set_clip_settings(settings, RUNTIME="torch")
    body = APIClient().get("/clip/health").json()
    assert (body["runtime"], body["precision"]) == ("torch", "float32")


class Overlap:
    """Wraps the runtime's two forwards, recording when each ran."""

    def __init__(self, engine, monkeypatch, barrier=None):
        self.intervals = {}
        self.barrier = barrier
        runtime = engine.runtime
        for kind, name in (("image", "image_features"), ("text", "text_features")):
            monkeypatch.setattr(runtime, name, self.recorded(kind, getattr(runtime, name)))

    def recorded(self, kind, forward):
        def wrapper(*args, **kwargs):
            started = time.monotonic()
            if self.barrier is not None and kind not in self.intervals:
                # The request's first image and first text forward: returns
                # only when the other one has started too. (A mismatch's
                # reason may encode category prompts afterwards.)
                self.barrier.wait()
            else:
                time.sleep(0.2)
            result = forward(*args, **kwargs)
            self.intervals.setdefault(kind, []).append((started, time.monotonic()))
            return result

        return wrapper

    def overlapped(self):
        (image_start, image_end), (text_start, text_end) = self.intervals["image"][0], self.intervals["text"][0]
        return image_start < text_end and text_start < image_end


def analyze(text):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("a.png", image_bytes(color=(10, 200, 90)), content_type="image/png")
    return APIClient().post("/clip/analyze", {"file": upload, "text": text}, format="multipart")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_one_uncached_analyze_runs_its_image_and_text_forwards_at_once(settings, monkeypatch, runtime, fresh_engine):
    set_clip_settings(settings, RUNTIME=runtime, NUM_THREADS=2)
    engine = get_engine()
    assert engine.lanes == ForwardLanes(count=2, threads=1)
    overlap = Overlap(engine, monkeypatch, barrier=threading.Barrier(2, timeout=10))
    response = analyze("green square")
    assert response.status_code == 200, response.content
    assert overlap.overlapped()


@pytest.mark.django_db(transaction=True)
def test_with_one_thread_the_forwards_take_turns(settings, monkeypatch, fresh_engine):
    set_clip_settings(settings, NUM_THREADS=1)
    engine = get_engine()
    assert not engine.concurrent
    overlap = Overlap(engine, monkeypatch)
    assert analyze("green square").status_code == 200
    assert not overlap.overlapped()


@pytest.mark.django_db
def test_the_build_command_reports_the_guard_and_fills_the_cache(settings, tiny_model_dir, fresh_engine, capsys):
    call_command("clip_build_runtime")
    output = capsys.readouterr().out
    assert "verdict agreement int8 vs float32:" in output and "max score gap int8 vs float32:" in output
    build = Path(RUNTIME_CACHE_DIR) / cache_key(tiny_model_dir)
    guard = verify(build / "int8")["guard"]
    assert f"{guard['agreement']:.2%}" in output and f"{guard['max_score_gap']:.4f}" in output
    assert f"int8 layers: {guard['int8_layers']} of {guard['matmul_layers']} matmuls" in output
    assert all(f"max score gap {step['max_score_gap']:.4f}" in output for step in guard["steps"])
    assert guard["calibration"]["source"] == "generic" and guard["pairs"] == 128
    enabled = "int8 enabled" in output
    assert enabled == guard["passed"] == int8_proven(
        checkpoint=tiny_model_dir, cache_dir=RUNTIME_CACHE_DIR
    )
    assert any((build / "compiled").iterdir())  # compiled-model cache filled for the workers


@pytest.mark.django_db
def test_at_bf16_the_bf16_weight_build_answers_bit_for_bit_like_the_float32_ir(
    settings, tmp_path, tiny_model_dir, fresh_engine
):
    cache_dir = tmp_path / "runtime-cache"
    set_clip_settings(settings, RUNTIME="openvino", DTYPE="bfloat16", RUNTIME_CACHE_DIR=str(cache_dir))
    engine = get_engine()
    served_images, served_texts = engine.encode_images(PICTURES), engine.encode_texts(TEXTS)[0]
    build = Path(cache_dir) / cache_key(tiny_model_dir)
    manifest = verify(build / BF16_WEIGHTS)
    # Every matmul weight of both towers rounded, and marked so that the plugin keeps it in bf16.
    assert manifest["replaced"] == {"image": 13, "text": 13}
    core = openvino.Core()
    for tower in ("image", "text"):
        ops = core.read_model(build / BF16_WEIGHTS / f"{tower}.xml").get_ordered_ops()
        marked = [op for op in ops if op.get_type_name() == "Convert"
                  and any(key.startswith("decompression") for key in op.get_rt_info().keys())]
        assert len(marked) == 13

    # The float32 IR compiled at bf16, as served before: the same answers, bit for bit.
    exact = OpenVinoRuntime(
        image_model=compile_model(build / "fp32" / "image.xml", precision="bf16", threads=1),
        text_model=compile_model(build / "fp32" / "text.xml", precision="bf16", threads=1),
        logit_scale=engine.logit_scale, int8=False,
    )
    pixels = engine.preprocess(PICTURES)
    encoded, _ = engine.tokenize(TEXTS)
    assert np.array_equal(served_images, exact.image_features(pixels))
    assert np.array_equal(served_texts, exact.text_features(encoded["input_ids"], encoded["attention_mask"]))


def test_a_bf16_weight_build_of_another_exact_build_is_made_again(tiny_model_dir, tmp_path):
    exact_dir, _ = ensure_exact_build(checkpoint=tiny_model_dir, cache_dir=str(tmp_path))
    served = ensure_bf16_weights_build(
        checkpoint=tiny_model_dir, cache_dir=str(tmp_path), exact_dir=exact_dir)
    target = exact_dir.parent / BF16_WEIGHTS
    manifest_path = target / "manifest.json"
    manifest = manifest_path.read_text()
    manifest_path.write_text(manifest.replace('"exact_manifest": "', '"exact_manifest": "0'))
    again = ensure_bf16_weights_build(
        checkpoint=tiny_model_dir, cache_dir=str(tmp_path), exact_dir=exact_dir)
    assert again == served
    # Rebuilt from the exact build it now names (the tampered record is gone).
    source = file_sha256(exact_dir / "manifest.json")
    assert verify(target)["exact_manifest"] == source
