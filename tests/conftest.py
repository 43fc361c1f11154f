import io
import uuid

import pytest
from PIL import Image

from clipcheck.engine import reset_engine
from tests.checkpoints import build_tiny_clip


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return str(build_tiny_clip(tmp_path_factory.mktemp("tiny-clip")))


@pytest.fixture
def batch_root(tmp_path):
    root = tmp_path / "batch-root"
    root.mkdir()
    return root


@pytest.fixture(autouse=True)
def clip_config(settings, tiny_model_dir, batch_root):
    """Every test runs against the tiny checkpoint, loaded the production way."""
    settings.CLIPCHECK = {"MODEL": tiny_model_dir, "DEVICE": "cpu", "BATCH_ROOT": str(batch_root)}
    return settings.CLIPCHECK


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """Each test counts throttled requests in a process-local cache of its own,
    whatever REDIS_URL says (tests that need Redis configure it themselves)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{uuid.uuid4().hex}",
        }
    }


@pytest.fixture
def fresh_engine():
    reset_engine()
    yield
    reset_engine()


def image_bytes(format="PNG", size=(64, 48), color=(200, 30, 30), mode="RGB", **save_options):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=format, **save_options)
    return buffer.getvalue()


@pytest.fixture
def png_bytes():
    return image_bytes()
