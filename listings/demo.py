"""A demo catalogue: listings with pictures of the known-answer domain.

Pictures come from ``knownanswer.domain.render`` and texts from its caption
templates, so the known-answer model (``knownanswer.CHECKPOINT``) knows every
colour and shape the catalogue uses, and the right answer for each listing is
known: the title always names what the picture shows; a share of the
descriptions names another colour or another shape (a seeded mismatch), and
nothing else in the texts names a colour or a shape.
``demo_catalogue_score`` then counts how many of those a check caught and how
many correct listings it flagged.
"""

import io
import os
import random
import re
import secrets
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from django.core.files.base import ContentFile
from PIL import Image

from clipcheck.hashes import content_hash
from clipcheck.nearduplicates import layout_signature, layout_similarity
from clipcheck.settings import clip_settings
from knownanswer import domain
from listings.models import Listing

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, Permission

# Seeds far above the trainer's (< TRAIN_SEED_LIMIT) and the held-out set's:
# the model has seen none of the demo pictures.
DEMO_SEED_BASE = 5_000_000
PICTURE_SIZE = 224
# Titles read like a shop's ("A red star", "Red star product", "A small red star",
# "The red star"); descriptions like a photo caption.
TITLE_TEMPLATES = (0, 3, 8, 9)
DESCRIPTION_TEMPLATES = (1, 2, 4, 5, 6, 7)
# How far below the near-duplicate layout threshold two demo pictures stay.
LAYOUT_MARGIN = 0.05


@dataclass(frozen=True)
class DemoScore:
    """How a check did on the demo catalogue's known answers."""

    mismatches: int
    caught: int
    correct: int
    flagged_correct: int
    unchecked: int

    @property
    def caught_rate(self) -> float:
        return self.caught / self.mismatches if self.mismatches else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.flagged_correct / self.correct if self.correct else 0.0

    def as_lines(self) -> list[str]:
        return [
            f"Seeded mismatches caught: {self.caught} of {self.mismatches} ({self.caught_rate:.0%}).",
            f"Correct listings flagged: {self.flagged_correct} of {self.correct} ({self.false_alarm_rate:.0%}).",
        ]


def demo_picture(*, shape: str, colour: str, seed: int, size: int = PICTURE_SIZE) -> bytes:
    """PNG bytes of one known-answer picture (lossless: the model sees what was drawn)."""
    return _png(domain.render(shape, colour, seed=DEMO_SEED_BASE + seed, size=size))


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _distinct_picture(*, shape: str, colour: str, seed: int, layouts: list[npt.NDArray[np.float32]]) -> bytes:
    """A picture whose layout is clearly apart from every one in ``layouts``.

    Two renderings of one shape and colour can come out near-identical (same
    backdrop, same spot), and the near-duplicate check would rightly call
    the second a reused photo: each demo listing gets a photo of its own, as
    sellers' photos are.
    """
    limit = float(clip_settings.NEAR_DUPLICATE_LAYOUT) - LAYOUT_MARGIN
    for attempt in range(50):
        picture = domain.render(shape, colour, seed=DEMO_SEED_BASE + seed + attempt * 1_000_003, size=PICTURE_SIZE)
        layout = layout_signature(picture)
        if all(layout_similarity(layout, other) < limit for other in layouts):
            break
    layouts.append(layout)
    return _png(picture)


def _mismatched_description(*, shape: str, colour: str, rng: random.Random, template: int) -> str:
    """A description naming another colour or another shape than the picture."""
    if rng.random() < 0.5:
        colour = rng.choice([other for other in domain.COLOURS if other != colour])
    else:
        shape = rng.choice([other for other in domain.SHAPES if other != shape])
    return domain.caption(shape, colour, template)


def demo_listings_create(*, count: int, seed: int = 0, mismatch_share: float = 0.2) -> list[Listing]:
    """Create ``count`` pending listings; returns them.

    ``mismatch_share`` of them describe another colour or shape than their
    picture shows. The same ``seed`` gives the same catalogue.
    """
    rng = random.Random(seed)
    created: list[Listing] = []
    layouts: list[npt.NDArray[np.float32]] = []
    for number in range(count):
        shape, colour = rng.choice(domain.SHAPES), rng.choice(domain.COLOURS)
        data = _distinct_picture(shape=shape, colour=colour, seed=seed * 100_000 + number, layouts=layouts)
        title = domain.caption(shape, colour, rng.choice(TITLE_TEMPLATES))
        description_template = rng.choice(DESCRIPTION_TEMPLATES)
        mismatched = rng.random() < mismatch_share
        if mismatched:
            description = _mismatched_description(shape=shape, colour=colour, rng=rng, template=description_template)
        else:
            description = domain.caption(shape, colour, description_template)
        listing = Listing(
            title=title[0].upper() + title[1:],
            description=description[0].upper() + description[1:],
            category=shape,
            price=rng.randint(3, 80),
            image_sha256=content_hash(data),
        )
        listing.image.save(f"demo-{number}.png", ContentFile(data), save=False)
        listing.save()
        created.append(listing)
    return created


def described_object(text: str) -> tuple[str, str] | None:
    """The (shape, colour) a demo text names, or None when it names not exactly one of each."""
    words = re.findall(r"[a-z]+", text.lower())
    shapes = {word for word in words if word in domain.SHAPES}
    colours = {word for word in words if word in domain.COLOURS}
    if len(shapes) != 1 or len(colours) != 1:
        return None
    return shapes.pop(), colours.pop()


def demo_catalogue_score(listings: Iterable[Listing] | None = None) -> DemoScore:
    """Count caught mismatches and flagged correct listings among demo listings.

    The truth is in the texts: a demo title names what its picture shows, so
    a listing is a seeded mismatch when its description names another object.
    Listings whose texts are not demo captions are left out.
    """
    if listings is None:
        listings = Listing.objects.only("title", "description", "status").iterator()
    flagged = {Listing.Status.NEEDS_REVIEW, Listing.Status.REJECTED}
    counts = {"mismatches": 0, "caught": 0, "correct": 0, "flagged_correct": 0, "unchecked": 0}
    for listing in listings:
        shown, described = described_object(listing.title), described_object(listing.description)
        if shown is None or described is None:
            continue
        counts["unchecked"] += listing.status == Listing.Status.PENDING
        if shown != described:
            counts["mismatches"] += 1
            counts["caught"] += listing.status in flagged
        else:
            counts["correct"] += 1
            counts["flagged_correct"] += listing.status in flagged
    return DemoScore(**counts)


# The demo's people: a moderator works the queue, an administrator sees
# everything, a seller uploads listings through the API with a token.
MODERATORS_GROUP = "Moderators"
# What docs/listings.md asks of a moderator's account.
MODERATOR_PERMISSIONS = ("listings.view_listing", "listings.change_listing", "listings.moderate_listing")
SELLER = "demo-seller"
# The photo the demo's printed upload command sends (a red circle: what Swagger
# UI's pre-filled texts describe on the demo's model), with a seed no catalogue
# picture has, so it is nobody's reused photo.
SAMPLE_PHOTO = ("circle", "red")
SAMPLE_PHOTO_SEED = -1


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str | None  # None: kept from an earlier run (only its hash is stored: not shown again)
    is_superuser: bool


@dataclass(frozen=True)
class DemoSeller:
    username: str
    token: str  # DRF token key: ``Authorization: Token <key>``


def moderators_group_get() -> "Group":
    """The ``Moderators`` group: the one a migration made if there is one, else
    a new group with the permissions the moderation docs name."""
    from django.contrib.auth.models import Group

    group, created = Group.objects.get_or_create(name=MODERATORS_GROUP)
    if created:
        group.permissions.add(*_permissions(MODERATOR_PERMISSIONS))
    return group


def _permissions(names: Iterable[str]) -> list["Permission"]:
    from django.contrib.auth.models import Permission

    return [
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in (name.split(".") for name in names)
    ]


def demo_users_create(
    *, moderator: str = "demo-moderator", admin: str = "demo-admin", reset_credentials: bool = False
) -> list[DemoUser]:
    """A staff moderator in the ``Moderators`` group and a superuser.

    A new account gets a random password; an existing one keeps the password
    an earlier run printed (``password`` is then None) unless
    ``reset_credentials``.
    """
    from django.contrib.auth import get_user_model

    User = get_user_model()
    users = []
    for username, is_superuser in ((moderator, False), (admin, True)):
        user, created = User.objects.get_or_create(username=username)
        user.is_staff, user.is_superuser, user.is_active = True, is_superuser, True
        password = None
        if created or reset_credentials or not user.password or not user.has_usable_password():
            password = secrets.token_urlsafe(9)
            user.set_password(password)
        user.save()
        if not is_superuser:
            user.groups.add(moderators_group_get())
        users.append(DemoUser(username=username, password=password, is_superuser=is_superuser))
    return users


def demo_seller_create(*, username: str = SELLER, reset_credentials: bool = False) -> DemoSeller:
    """A seller allowed to upload (the permissions of the ``upload`` access
    policy, which guards ``POST /upload``) with an API token. An existing token
    is kept unless ``reset_credentials``. No password: the seller only calls
    the API, and is no staff."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from clipcheck.access import access_table

    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
    user.is_staff, user.is_superuser, user.is_active = False, False, True
    user.save()
    user.user_permissions.add(*_permissions(access_table().get("upload", {}).get("permissions") or ()))
    if reset_credentials:
        Token.objects.filter(user=user).delete()
    token, _ = Token.objects.get_or_create(user=user)
    return DemoSeller(username=username, token=token.key)


def demo_sample_photo_write(directory: str | os.PathLike[str]) -> Path:
    """Write the sample photo (PNG) into ``directory``; returns its path."""
    shape, colour = SAMPLE_PHOTO
    path = Path(directory) / f"{colour}-{shape}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(demo_picture(shape=shape, colour=colour, seed=SAMPLE_PHOTO_SEED))
    return path


def demo_sample_texts() -> dict[str, str]:
    """``{"title", "description", "category"}`` of a listing of the sample photo, as a seller writes them."""
    shape, colour = SAMPLE_PHOTO
    title = domain.caption(shape, colour, TITLE_TEMPLATES[0])
    description = domain.caption(shape, colour, DESCRIPTION_TEMPLATES[0])
    return {"title": title[0].upper() + title[1:], "description": description[0].upper() + description[1:],
            "category": shape}


def demo_upload_curl(*, base_url: str, token: str, photo: str | os.PathLike[str]) -> str:
    """A shell command that uploads the sample photo as a listing with ``token``."""
    fields = [f"file=@{photo}", *(f"{name}={value}" for name, value in demo_sample_texts().items())]
    return " ".join([
        "curl -s", f'-H "Authorization: Token {token}"',  # a token key is hexadecimal: nothing to quote
        *(f"-F {shlex.quote(field)}" for field in fields), f"{base_url}/upload",
    ])
