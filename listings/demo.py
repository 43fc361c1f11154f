"""A demo catalogue: listings with generated pictures, for trying the admin and the audit.

Each picture shows one coloured shape; its title names that shape and
colour. A share of the listings gets a description of another shape or
colour, so a real CLIP checkpoint has mismatches to find.
"""

import io
import math
import random

from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from clipcheck.hashes import content_hash
from listings.models import Listing

COLOURS = {
    "red": (200, 30, 30), "green": (40, 160, 60), "blue": (30, 60, 200), "yellow": (230, 200, 30),
    "black": (20, 20, 20), "orange": (240, 130, 20), "purple": (120, 40, 160), "pink": (240, 130, 180),
}
SHAPES = ("circle", "square", "triangle", "star")
CATEGORIES = {"circle": "toys", "square": "home", "triangle": "toys", "star": "decor"}


def demo_picture(*, shape, colour, rng, size=256):
    """JPEG bytes of one shape on a light, slightly textured background."""
    background = tuple(rng.randint(215, 255) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for _ in range(12):  # texture, so that no two pictures are alike
        x, y = rng.randrange(size), rng.randrange(size)
        shade = tuple(max(0, channel - rng.randint(10, 40)) for channel in background)
        draw.line((x, y, x + rng.randint(-60, 60), y + rng.randint(-60, 60)), fill=shade, width=rng.randint(1, 4))
    half = rng.randint(size // 5, size // 3)
    cx, cy = rng.randint(half + 4, size - half - 4), rng.randint(half + 4, size - half - 4)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=fill)
    else:
        points = []
        for corner in range(10):
            radius = half if corner % 2 == 0 else half * 0.45
            angle = corner * math.pi / 5
            points.append((cx + radius * math.sin(angle), cy - radius * math.cos(angle)))
        draw.polygon(points, fill=fill)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def demo_listings_create(*, count, seed=0, mismatch_share=0.2):
    """Create ``count`` pending listings with generated pictures; returns them.

    ``mismatch_share`` of them describe another shape or colour than their
    picture shows. The same ``seed`` gives the same catalogue.
    """
    rng = random.Random(seed)
    created = []
    for number in range(count):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        data = demo_picture(shape=shape, colour=colour, rng=rng)
        described_shape, described_colour = shape, colour
        if rng.random() < mismatch_share:
            described_shape = rng.choice([other for other in SHAPES if other != shape])
            described_colour = rng.choice([other for other in COLOURS if other != colour])
        listing = Listing(
            title=f"{colour.capitalize()} {shape}",
            description=f"A photo of a {described_colour} {described_shape}.",
            category=CATEGORIES[shape],
            price=rng.randint(3, 80),
            image_sha256=content_hash(data),
        )
        listing.image.save(f"demo-{number}.jpg", ContentFile(data), save=False)
        listing.save()
        created.append(listing)
    return created
