import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from clipcheck import engine as engine_registry
from clipcheck.apps import is_serving_process
from clipcheck.engine import get_engine
from clipcheck.engine.clip import resolve_device
from clipcheck.errors import ModelUnavailable
from tests.clipcheck.test_api import assert_error, upload

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def test_the_engine_is_loaded_once_and_shared(fresh_engine):
    first = get_engine()
    assert get_engine() is first


def test_the_engine_takes_its_configuration_at_construction(tiny_model_dir, settings, monkeypatch):
    from PIL import Image

    from clipcheck.engine.clip import ClipEngine

    engine = ClipEngine.load(model_name=tiny_model_dir, device="cpu", runtime="torch", batch_size=2, text_cache_size=0)
    # Settings are the registry's business: the engine keeps what it was built with.
    settings.CLIPCHECK = {**settings.CLIPCHECK, "BATCH_SIZE": 1, "TEXT_CACHE_SIZE": 10}
    forwards, text_batches = [], []
    forward_images, encode_text_batch = engine._forward_images, engine._encode_text_batch
    monkeypatch.setattr(engine, "_forward_images", lambda pixels: forwards.append(len(pixels)) or forward_images(pixels))
    monkeypatch.setattr(
        engine, "_encode_text_batch", lambda texts: text_batches.append(len(texts)) or encode_text_batch(texts)
    )

    engine.encode_images([Image.new("RGB", (40, 40), (index * 40, 0, 0)) for index in range(5)])
    engine.encode_texts(["a", "b", "c"])
    engine.encode_texts(["a"])  # no text cache: encoded again

    assert forwards == [2, 2, 1]
    assert text_batches == [2, 1, 1]


def test_text_forwards_group_texts_of_similar_token_counts(tiny_model_dir, monkeypatch):
    """A batch is padded to its longest text: texts are batched by token count, not by
    characters (an attribute rewrite of one length can be 4 tokens or 20)."""
    from clipcheck.engine.clip import ClipEngine

    engine = ClipEngine.load(model_name=tiny_model_dir, device="cpu", runtime="torch", batch_size=2, text_cache_size=0)
    # Ordered by characters, the two 8-character texts (the most tokens) would go first.
    texts = ["x y z w v u", "#$%&#$%&", "a b c d e", "handbags"]
    tokens = dict(zip(texts, engine.count_tokens(texts)))
    assert sorted(texts, key=len)[:2] != sorted(texts, key=tokens.get)[:2]
    batches = []
    encode_text_batch = engine._encode_text_batch
    monkeypatch.setattr(engine, "_encode_text_batch", lambda chunk: batches.append(chunk) or encode_text_batch(chunk))

    vectors, _ = engine.encode_texts(texts)

    assert sorted(text for batch in batches for text in batch) == sorted(texts)
    batch_tokens = [[tokens[text] for text in batch] for batch in batches]
    assert all(max(first) <= min(second) for first, second in zip(batch_tokens, batch_tokens[1:]))
    # The answer is in the caller's order whatever the batching.
    alone = [engine._encode_text_batch([text])[0][0] for text in texts]
    assert all(abs(float(vector @ single) - 1.0) < 1e-4 for vector, single in zip(vectors, alone))


def test_a_settings_change_gives_an_engine_built_for_the_new_values(settings, fresh_engine):
    first = get_engine()
    settings.CLIPCHECK = {**settings.CLIPCHECK, "BATCH_SIZE": 3, "BATCH_WAIT_MS": 0, "TEXT_CACHE_SIZE": 7}
    second = get_engine()
    assert second is not first and get_engine() is second
    assert (second._image_batcher.max_rows, second._text_batcher.max_wait, second.text_cache_size) == (3, 0.0, 7)


def test_the_engine_runs_without_django_settings(tiny_model_dir):
    code = (
        "import sys\n"
        "from PIL import Image\n"
        "from clipcheck.engine.clip import ClipEngine\n"
        f"engine = ClipEngine.load(model_name={tiny_model_dir!r}, device='cpu', batch_size=2)\n"
        "vectors = engine.encode_images([Image.new('RGB', (40, 40))] * 3)\n"
        "texts, _ = engine.encode_texts(['a red shoe'])\n"
        "from django.conf import settings\n"
        "print(vectors.shape[0], texts.shape[0], settings.configured)\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "1", "False"]


def test_preprocessing_follows_the_checkpoint_config():
    engine = get_engine()
    from PIL import Image

    pixel_values = engine.preprocess([Image.new("RGB", (300, 120), (255, 0, 0))])
    assert tuple(pixel_values.shape) == (1, 3, 48, 48)  # the tiny checkpoint's 48 px, not 224


@pytest.fixture
def broken_model(settings, tmp_path, fresh_engine):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": str(broken)}
    return broken


def test_health_is_503_with_a_generic_message_when_the_model_cannot_load(broken_model, caplog):
    response = APIClient().get("/clip/health")
    assert response.status_code == 503
    body = response.json()
    assert body["model_loaded"] is False
    assert body["status"] == "unhealthy"
    assert body["error"]["code"] == "model_unavailable"
    # The path and the exception are internals: the log has them, the answer not.
    assert str(broken_model) not in response.content.decode()
    assert "Error" not in body["error"]["message"] and "detail" not in body["error"]
    assert body["model"] == broken_model.name
    assert str(broken_model) in caplog.text


def test_staff_see_why_the_model_cannot_load(broken_model, django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="ops", is_staff=True))
    body = client.get("/clip/health").json()
    assert body["model"] == str(broken_model)
    assert str(broken_model) in body["error"]["detail"]


@pytest.mark.parametrize("endpoint", ["/clip/analyze", "/clip/classify"])
def test_inference_endpoints_are_503_when_the_model_cannot_load(broken_model, endpoint):
    response = APIClient().post(endpoint, {"file": upload(), "text": "x"}, format="multipart")
    assert_error(response, 503, "model_unavailable")
    assert str(broken_model) not in response.content.decode()
    assert "Error" not in response.json()["error"]["message"]


def test_missing_model_directory_is_503_not_a_crash(settings, fresh_engine):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": "/nonexistent/clip-model"}
    assert APIClient().get("/clip/health").status_code == 503


def test_a_failed_load_is_remembered_then_retried(broken_model, settings, tiny_model_dir, monkeypatch):
    with pytest.raises(ModelUnavailable):
        get_engine()
    attempts = []
    from clipcheck.engine import clip

    monkeypatch.setattr(clip.ClipEngine, "load", classmethod(lambda cls, **kw: attempts.append(kw) or 1 / 0))
    with pytest.raises(ModelUnavailable):
        get_engine()
    assert attempts == []  # within LOAD_RETRY_SECONDS: no new attempt
    settings.CLIPCHECK = {**settings.CLIPCHECK, "LOAD_RETRY_SECONDS": 0}
    with pytest.raises(ModelUnavailable):
        get_engine()
    assert len(attempts) == 1


def test_the_engine_recovers_when_the_model_is_fixed(broken_model, settings, tiny_model_dir):
    assert APIClient().get("/clip/health").status_code == 503
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": tiny_model_dir}
    assert APIClient().get("/clip/health").status_code == 200


def test_cuda_on_a_machine_without_it_is_a_load_failure(settings, fresh_engine, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings.CLIPCHECK = {**settings.CLIPCHECK, "DEVICE": "cuda:0"}
    body = APIClient().get("/clip/health").json()
    assert body["model_loaded"] is False
    with pytest.raises(engine_registry.ModelUnavailable) as refused:
        engine_registry.get_engine()
    assert "CUDA is not available" in refused.value.reason


def test_auto_device_falls_back_to_cpu_without_cuda(monkeypatch, tmp_path):
    import torch

    from clipcheck.engine import clip

    # A GPU driver's device node: torch is asked.
    node = tmp_path / "nvidiactl"
    node.touch()
    monkeypatch.setattr(clip, "GPU_DEVICE_NODES", (str(node),))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    # None: CUDA cannot be there, and torch is not asked.
    monkeypatch.setattr(clip, "GPU_DEVICE_NODES", (str(tmp_path / "absent"),))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("torch was asked"))
    assert resolve_device("auto") == "cpu"


def test_concurrent_requests_share_one_model_and_agree(fresh_engine):
    """Threaded workers: many threads, one engine, identical answers.

    Classify stores nothing, so the threads meet only in the engine (the
    in-memory SQLite test database refuses concurrent writers; concurrent
    writes are proven on PostgreSQL and under gunicorn elsewhere)."""
    data = upload().read()
    scores, errors = [], []

    def call():
        try:
            client = APIClient()
            from django.core.files.uploadedfile import SimpleUploadedFile

            file = SimpleUploadedFile("a.png", data, content_type="image/png")
            body = client.post("/clip/classify", {"file": file, "categories": "red square,shoe"}, format="multipart")
            scores.append(tuple((match["category"], match["similarity"]) for match in body.json()["top_matches"]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(scores) == 8 and len(set(scores)) == 1
    assert engine_registry._engine is get_engine()


# Start-up: which processes load the model

@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "check"], {}, False),
        (["manage.py", "collectstatic"], {}, False),
        (["manage.py", "runserver"], {}, False),  # the autoreloader's watcher
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["pytest"], {}, False),
    ],
)
def test_only_serving_processes_load_the_model(argv, environ, expected):
    assert is_serving_process(argv=argv, environ=environ) is expected


def test_the_gunicorn_arbiter_never_loads_the_model():
    environ = {"CLIPCHECK_GUNICORN_ARBITER_PID": str(os.getpid()), "RUN_MAIN": "true"}
    assert is_serving_process(argv=["manage.py", "runserver"], environ=environ) is False


def run_python(code, tmp_path, **env):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "clipproject.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_management_commands_never_import_torch_or_load_the_model(tmp_path, tiny_model_dir):
    code = """
import json, sys, django
django.setup()
from django.core.management import call_command
for command in ("check", "migrate", "makemigrations", "collectstatic"):
    args = ["--check", "--dry-run"] if command == "makemigrations" else []
    options = {"interactive": False} if command == "collectstatic" else {}
    call_command(command, *args, verbosity=0, **options)
from clipcheck import engine
print(json.dumps({"torch": "torch" in sys.modules, "loaded": engine._engine is not None}))
"""
    result = run_python(code, tmp_path, CLIPCHECK_MODEL=tiny_model_dir, DJANGO_STATIC_ROOT=str(tmp_path / "static"))
    assert result == {"torch": False, "loaded": False}


def test_the_wsgi_entry_point_loads_the_model_before_serving(tmp_path, tiny_model_dir):
    code = """
import json
from clipproject.wsgi import application
from clipcheck import engine
print(json.dumps({"loaded": engine._engine is not None, "device": engine._engine.device_name}))
"""
    assert run_python(code, tmp_path, CLIPCHECK_MODEL=tiny_model_dir) == {"loaded": True, "device": "cpu"}


def test_the_wsgi_entry_point_survives_a_broken_model(tmp_path):
    code = """
import json
from django.test import Client
from clipproject.wsgi import application
response = Client().get("/clip/health")
print(json.dumps({"status": response.status_code, "loaded": response.json()["model_loaded"]}))
"""
    result = run_python(code, tmp_path, CLIPCHECK_MODEL=str(tmp_path / "missing"))
    assert result == {"status": 503, "loaded": False}


def test_environment_variables_override_settings(tmp_path):
    code = """
import json, django
django.setup()
from django.conf import settings
from clipcheck.settings import clip_settings
print(json.dumps({key: getattr(clip_settings, key) for key in ("MODEL", "DEVICE", "THRESHOLD", "BATCH_SIZE", "BATCH_ROOT")}
                 | {"db": settings.DATABASES["default"]["ENGINE"], "debug": settings.DEBUG, "hosts": settings.ALLOWED_HOSTS,
                    "secret": settings.SECRET_KEY}))
"""
    result = run_python(
        code, tmp_path,
        CLIPCHECK_MODEL="/models/clip", CLIPCHECK_DEVICE="cuda:1", CLIPCHECK_THRESHOLD="0.31",
        CLIPCHECK_BATCH_SIZE="8", CLIPCHECK_BATCH_ROOT="/data/images", DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="shop.example, api.shop.example", DJANGO_SECRET_KEY="s3cret",
    )
    assert result == {
        "MODEL": "/models/clip", "DEVICE": "cuda:1", "THRESHOLD": 0.31, "BATCH_SIZE": 8,
        "BATCH_ROOT": "/data/images", "db": "django.db.backends.sqlite3", "debug": True,
        "hosts": ["shop.example", "api.shop.example"], "secret": "s3cret",
    }


def test_an_unparseable_environment_value_is_reported_by_the_checks(tmp_path):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "clipproject.settings", "CLIPCHECK_THRESHOLD": "high"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "clipcheck.E003" in result.stderr


def test_auto_precision_is_bfloat16_only_on_cpus_with_native_bf16(monkeypatch):
    from clipcheck.engine import clip

    monkeypatch.setattr(clip, "cpu_has_native_bf16", lambda: True)
    assert clip.resolve_dtype("auto", "cpu") == "bfloat16"
    assert clip.resolve_dtype("auto", "cuda") == "float16"
    assert clip.resolve_dtype("auto", "cuda:1") == "float16"
    assert clip.resolve_dtype("float32", "cpu") == "float32"
    monkeypatch.setattr(clip, "cpu_has_native_bf16", lambda: False)
    assert clip.resolve_dtype("auto", "cpu") == "float32"


def test_reduced_precision_keeps_embeddings_close_to_float32(settings, fresh_engine):
    from PIL import Image

    images = [Image.new("RGB", (60, 60), (index * 40, 90, 250 - index * 40)) for index in range(5)]
    texts = ["red shoes", "a blue leather handbag with a gold clasp", "x"]
    embeddings = {}
    for dtype in ("float32", "bfloat16"):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "DTYPE": dtype}
        engine = get_engine()
        assert engine.dtype_name == dtype
        embeddings[dtype] = (engine.encode_images(images), engine.encode_texts(texts)[0])
    for reduced, exact in zip(embeddings["bfloat16"], embeddings["float32"]):
        assert (reduced * exact).sum(axis=1).min() >= 0.99


def test_a_corrupt_checkpoint_is_a_generic_503_for_anonymous_callers(settings, tmp_path, tiny_model_dir, fresh_engine,
                                                                      caplog):
    import shutil

    model = tmp_path / "srv-models-clip"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": str(model)}
    client = APIClient()
    answers = [client.get("/clip/health"), client.post("/clip/analyze", {"file": upload(), "text": "x"},
                                                        format="multipart")]
    for response in answers:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
        assert response.json()["error"]["message"] == "The model is not available on this server; retry later."
        assert str(tmp_path) not in response.content.decode() and "Safetensor" not in response.content.decode()
    assert str(model) in caplog.text and "Safetensor" in caplog.text  # the operator's log has it all


def test_counting_tokens_while_another_thread_tokenizes_a_batch_is_safe(tiny_model_dir):
    """The fast tokenizer holds its padding and truncation settings on one shared object:
    ``count_tokens`` (unpadded, in a caller's thread: passages, batch ordering) must not run
    inside the batcher's padded ``tokenize``, or a batch gets rows of different lengths."""
    from clipcheck.engine.clip import ClipEngine

    engine = ClipEngine.load(model_name=tiny_model_dir, device="cpu", runtime="torch", text_cache_size=0)
    texts = [("a red shoe " * (index % 7 + 1)).strip() for index in range(24)]
    errors, start = [], threading.Barrier(4)

    def tokenizing():
        start.wait()
        try:
            for _ in range(150):
                encoded, _ = engine.tokenize(texts)
                assert encoded["input_ids"].shape[0] == len(texts)
        except Exception as exc:  # reported below
            errors.append(exc)

    def counting():
        start.wait()
        try:
            for _ in range(150):
                assert len(engine.count_tokens(texts)) == len(texts)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=target) for target in (tokenizing, tokenizing, counting, counting)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []


def test_pixels_prepared_ahead_encode_as_their_pictures_do():
    import numpy as np
    from PIL import Image

    engine = get_engine()
    pictures = [Image.new("RGB", (90 + 10 * n, 60), (40 * n, 200, 90)) for n in range(3)]
    expected = engine.encode_images(pictures)
    prepared = engine.preprocess(pictures[:2])
    mixed = engine.encode_images([prepared[0], pictures[2], prepared[1]])
    assert np.abs(mixed - expected[[0, 2, 1]]).max() < 1e-6
