"""The offline demo (manage.py clip_demo) and its catalogue, on the known-answer model."""

import importlib.util
import io
import re
import shlex
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import knownanswer
from clipcheck.images import decode_image
from knownanswer import domain
from listings import demo
from listings.models import Listing

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_run(fresh_engine, media_root):
    out = io.StringIO()
    call_command("clip_demo", "--no-serve", "--port", "8123", stdout=out)
    return out.getvalue()


@pytest.fixture
def small_demo_run(fresh_engine, media_root):
    out = io.StringIO()
    call_command("clip_demo", "--no-serve", "--count", "20", stdout=out)
    return out.getvalue()


def printed_credentials(output):
    return dict(re.findall(r"user (\S+)  password (\S+)", output))


def printed_token(output):
    return re.search(r"user demo-seller  token ([0-9a-f]+)", output).group(1)


def printed_upload(output):
    """The printed curl line, as the shell would split it."""
    line = next(line for line in output.splitlines() if line.strip().startswith("curl "))
    return shlex.split(line)


def test_the_demo_fills_the_review_queue_and_catches_the_seeded_mismatches(demo_run):
    assert Listing.objects.count() == 100
    score = demo.demo_catalogue_score()
    assert score.mismatches + score.correct == 100 and score.unchecked == 0
    # The known-answer model at its calibrated threshold (0.7121) on pictures it never saw.
    assert score.caught_rate >= 0.9, score
    assert score.false_alarm_rate <= 0.1, score
    assert Listing.objects.filter(status=Listing.Status.NEEDS_REVIEW).count() == score.caught + score.flagged_correct
    # The command prints what it measured.
    for line in score.as_lines():
        assert line in demo_run
    assert f"threshold {knownanswer.calibrated_threshold()}" in demo_run
    assert "0.7121" in demo_run
    assert "http://127.0.0.1:8123/admin/listings/reviewqueueitem/" in demo_run
    assert "http://127.0.0.1:8123/api/docs/" in demo_run


def test_the_printed_urls_use_the_host_of_the_docs(small_demo_run):
    """One host everywhere: the demo serves and prints 127.0.0.1, as every snippet in the docs does."""
    printed = set(re.findall(r"https?://([^/:\s]+)", small_demo_run))
    assert printed == {"127.0.0.1"}
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    snippets = {page.name: "".join(re.findall(r"```.*?\n(.*?)```", page.read_text(), re.S)) for page in pages}
    assert [name for name, code in snippets.items() if "localhost" in code] == []
    # docs/demo.md shows what the demo prints (at port 8000, its default).
    shown = set(re.findall(r"http://127\.0\.0\.1:8000/\S*", (REPO / "docs" / "demo.md").read_text()))
    out = io.StringIO()
    call_command("clip_demo", "--no-serve", stdout=out)
    assert {url for url in shown if url.endswith("/")} <= set(re.findall(r"http://127\.0\.0\.1:8000/\S*", out.getvalue()))


def test_the_printed_moderator_logs_in_and_sees_the_queue(small_demo_run, client):
    credentials = printed_credentials(small_demo_run)
    assert set(credentials) == {"demo-moderator", "demo-admin"}
    assert client.login(username="demo-moderator", password=credentials["demo-moderator"])
    queue = client.get("/admin/listings/reviewqueueitem/")
    assert queue.status_code == 200
    waiting = Listing.objects.filter(status=Listing.Status.NEEDS_REVIEW).first()
    assert waiting.title in queue.content.decode()
    # A moderator, not an administrator.
    moderator = get_user_model().objects.get(username="demo-moderator")
    assert moderator.is_staff and not moderator.is_superuser
    assert moderator.has_perm("listings.moderate_listing")
    assert not moderator.has_perm("auth.change_user")

    client.logout()
    assert client.login(username="demo-admin", password=credentials["demo-admin"])
    assert get_user_model().objects.get(username="demo-admin").is_superuser


def test_a_second_run_reuses_the_catalogue_and_keeps_the_credentials(small_demo_run, client):
    out = io.StringIO()
    call_command("clip_demo", "--no-serve", stdout=out)
    again = out.getvalue()
    assert Listing.objects.count() == 20
    assert "already seeded (20 listings)" in again
    assert "0 checked" in again
    # Nothing rotated: the first run's password still logs in, and the token is the same.
    assert printed_credentials(again) == {}
    assert "user demo-moderator  (password kept" in again
    assert client.login(username="demo-moderator", password=printed_credentials(small_demo_run)["demo-moderator"])
    assert printed_token(again) == printed_token(small_demo_run)


def test_reset_credentials_gives_new_passwords_and_a_new_token(small_demo_run, client):
    out = io.StringIO()
    call_command("clip_demo", "--no-serve", "--reset-credentials", stdout=out)
    before, after = printed_credentials(small_demo_run), printed_credentials(out.getvalue())
    assert set(after) == {"demo-moderator", "demo-admin"}
    assert after["demo-moderator"] != before["demo-moderator"]
    assert not client.login(username="demo-moderator", password=before["demo-moderator"])
    assert client.login(username="demo-moderator", password=after["demo-moderator"])
    assert printed_token(out.getvalue()) != printed_token(small_demo_run)
    assert not Token.objects.filter(key=printed_token(small_demo_run)).exists()


def test_the_printed_seller_token_uploads_with_the_printed_command(small_demo_run):
    """The printed curl line, sent as printed: token, sample photo, texts."""
    seller = get_user_model().objects.get(username="demo-seller")
    assert seller.has_perm("listings.add_listing") and not seller.is_staff and not seller.has_usable_password()
    args = printed_upload(small_demo_run)
    assert args[args.index("-H") + 1] == f"Authorization: Token {printed_token(small_demo_run)}"
    fields = dict(args[index + 1].split("=", 1) for index, arg in enumerate(args) if arg == "-F")
    photo = Path(fields.pop("file").removeprefix("@"))
    assert photo.is_file() and demo.described_object(fields["title"]) == ("circle", "red")
    assert args[-1] == "http://127.0.0.1:8000/upload"

    client = APIClient()
    assert client.post("/upload", {**fields, "file": photo.open("rb")}).status_code == 401  # no token: refused
    with photo.open("rb") as upload:
        response = client.post(
            "/upload", {**fields, "file": upload}, HTTP_AUTHORIZATION=args[args.index("-H") + 1].split(": ", 1)[1]
        )
    assert response.status_code == 201, response.content
    assert Listing.objects.get(pk=response.json()["listing_id"]).seller == seller


def test_without_no_serve_it_serves_the_known_answer_model_on_the_port(fresh_engine, media_root, monkeypatch):
    from clipcheck.settings import clip_settings
    from listings.management.commands import clip_demo

    served = []

    def call_command_recording(name, *args, **options):
        if name == "runserver":
            served.append((args, options, clip_settings.MODEL, clip_settings.THRESHOLD))
            return None
        return call_command(name, *args, **options)

    monkeypatch.setattr(clip_demo, "call_command", call_command_recording)
    call_command("clip_demo", "--count", "5", "--port", "8765", stdout=io.StringIO())
    assert served == [(("127.0.0.1:8765",), {"use_reloader": False}, str(knownanswer.CHECKPOINT), 0.7121)]
    # The demo's settings end with the command.
    assert clip_settings.MODEL != str(knownanswer.CHECKPOINT)


def test_an_existing_moderators_group_is_used_as_it_is(db):
    group = Group.objects.get(name="Moderators")  # created by listings' migration 0008
    view = Permission.objects.get(content_type__app_label="listings", codename="view_listing")
    group.permissions.set([view])
    demo.demo_users_create()
    assert list(group.permissions.all()) == [view]
    assert get_user_model().objects.get(username="demo-moderator").groups.get() == group


def test_the_catalogue_speaks_only_the_known_answer_vocabulary(media_root):
    listings = demo.demo_listings_create(count=40, seed=3, mismatch_share=0.5)
    mismatched = 0
    for listing in listings:
        shown = demo.described_object(listing.title)
        described = demo.described_object(listing.description)
        assert shown is not None and described is not None
        assert shown[0] in domain.SHAPES and shown[1] in domain.COLOURS
        assert listing.category == shown[0]
        mismatched += shown != described
        # The stored picture is the domain's rendering of what the title names.
        with listing.image.open("rb") as stored:
            picture = decode_image(stored.read())
        assert picture.image.size == (demo.PICTURE_SIZE, demo.PICTURE_SIZE)
    assert 10 <= mismatched <= 30


def test_no_two_demo_photos_are_near_duplicates(media_root, settings):
    """Each listing has a photo of its own: the reused-photo check finds nothing to report."""
    from clipcheck.nearduplicates import layout_signature, layout_similarity
    from clipcheck.settings import clip_settings

    listings = demo.demo_listings_create(count=100, seed=0)  # the demo's own catalogue
    layouts = []
    for listing in listings:
        with listing.image.open("rb") as stored:
            layouts.append(layout_signature(decode_image(stored.read()).image))
    closest = max(
        layout_similarity(first, second) for i, first in enumerate(layouts) for second in layouts[i + 1:]
    )
    assert closest < float(clip_settings.NEAR_DUPLICATE_LAYOUT)


def test_the_same_seed_gives_the_same_catalogue(media_root):
    first = [(item.title, item.description, item.image_sha256) for item in demo.demo_listings_create(count=5, seed=9)]
    second = [(item.title, item.description, item.image_sha256) for item in demo.demo_listings_create(count=5, seed=9)]
    assert first == second


def test_the_trainer_and_the_demo_draw_from_one_domain_module():
    spec = importlib.util.spec_from_file_location("train_known_answer", REPO / "scripts" / "train_known_answer.py")
    trainer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainer)
    assert trainer.dom is domain is demo.domain
    assert not (REPO / "scripts" / "known_answer_domain.py").exists()
    assert (knownanswer.CHECKPOINT / "model.safetensors").is_file()
