"""Listing fixtures shared by every test directory (a pytest plugin of the root
conftest): listings with photos in storage, a moderator, thresholds that
decide which of the test texts match."""

import itertools

import pytest
from PIL.PngImagePlugin import PngInfo

# Django models are imported inside the fixtures: a plugin may be loaded before Django is set up.
from tests.support.clip_settings import set_clip_settings
from tests.support.images import image_bytes
from tests.support.listings import MATCHING_TEXT, MISMATCHING_TEXT, RED


@pytest.fixture
def split_threshold(settings):
    """Set the threshold so that MATCHING_TEXT matches the red photo and MISMATCHING_TEXT does not."""
    from clipcheck.images import decode_image
    from clipcheck.services.calibration_data import similarity_scores

    photo = decode_image(image_bytes(color=RED))
    high, low = similarity_scores(images=[photo, photo], texts=[MATCHING_TEXT, MISMATCHING_TEXT])
    assert high > low, "the test checkpoint no longer separates the two texts"
    threshold = round((high + low) / 2, 4)
    set_clip_settings(settings, THRESHOLD=threshold)
    return threshold


@pytest.fixture
def everything_matches(settings):
    set_clip_settings(settings, THRESHOLD=0.0)


@pytest.fixture
def nothing_matches(settings):
    set_clip_settings(settings, THRESHOLD=1.0)


@pytest.fixture
def make_listing(db):
    """A stored listing with its image in storage, not yet checked.

    Each listing gets its own photo file: a plain picture of ``color`` whose
    PNG carries the listing's number, so two listings never share a photo
    (which would be a reused photo) unless a test passes the same ``photo``.
    """
    from django.core.files.base import ContentFile

    from clipcheck.images import decode_image
    from listings.models import Listing

    numbers = itertools.count(1)

    def make(
        *, title=MATCHING_TEXT, description=MATCHING_TEXT, color=RED, status=Listing.Status.PENDING, photo=None,
        **fields,
    ):
        if photo is None:
            info = PngInfo()
            info.add_text("listing", str(next(numbers)))
            photo = image_bytes(color=color, pnginfo=info)
        data = photo
        listing = Listing(
            title=title, description=description, status=status, image_sha256=decode_image(data).sha256, **fields
        )
        listing.image.save("photo.png", ContentFile(data), save=False)
        listing.save()
        return listing

    return make


@pytest.fixture
def moderator(db):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("moderator", password="moderator-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="listings",
        codename__in=["view_listing", "change_listing", "add_listing", "moderate_listing"],
    ))
    return user


@pytest.fixture
def moderator_client(client, moderator):
    """pytest-django's client, logged in as ``moderator``."""
    client.force_login(moderator)
    return client
