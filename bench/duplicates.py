"""Near-duplicate detection on known answers (part ``duplicates`` of ``python -m bench.vectors``).

The known-answer checkpoint (``tests/fixtures/known_answer_clip``) knows a domain of coloured
shapes (``knownanswer/domain.py``). A catalogue of originals (every shape in every
colour, several photos of each: other backdrop, position, size, rotation) is stored through
``image_embeddings_compute``; then every original is sent again as a copy, each made one way:

- ``jpeg``: re-encoded at JPEG quality 60-95;
- ``resize``: scaled by 0.5-1.5;
- ``crop``: cut by up to 10% of its width and height in all;
- ``mirror``: flipped left to right.

Each copy goes through ``clipcheck.nearduplicates.near_duplicates`` (the function behind the
``photo_reused`` reason and ``clip_duplicates``). ``found`` is the share of copies whose
original is among the near-duplicates; ``same kind`` the share of (copy, other photo of the same
shape and colour) pairs wrongly reported as near-duplicates; ``other`` the share for all other
photos. The two measures are also swept over thresholds (CLIP cosine, layout correlation)
from the same copies.
"""

from __future__ import annotations

import io
import os
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KNOWN_ANSWER_MODEL = ROOT / "tests" / "fixtures" / "known_answer_clip"
# Thresholds for the known-answer checkpoint, chosen from the sweep (docs/similarity.md).
KNOWN_ANSWER_NEAR_DUPLICATE = {"NEAR_DUPLICATE_SIMILARITY": 0.8, "NEAR_DUPLICATE_LAYOUT": 0.93}
KINDS = ("jpeg", "resize", "crop", "mirror")
ORIGINAL_SIDE = 224


@dataclass(frozen=True)
class Photo:
    shape: str
    colour: str
    seed: int
    data: bytes

    @property
    def kind(self):
        return self.shape, self.colour


def jpeg_bytes(picture, quality=92):
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def originals(*, photos_per_kind, seed_base=7000):
    """Every shape in every colour, ``photos_per_kind`` different photos of each (JPEG bytes)."""
    sys.path.insert(0, str(ROOT))
    from knownanswer import domain

    return [
        Photo(shape, colour, seed_base + number,
              jpeg_bytes(domain.render(shape, colour, seed=seed_base + number, size=ORIGINAL_SIDE), quality=95))
        for shape in domain.SHAPES for colour in domain.COLOURS for number in range(photos_per_kind)
    ]


def copy_of(photo, how, rng):
    """``photo`` copied one way (see the module docstring), as JPEG bytes."""
    from PIL import Image, ImageOps

    picture = Image.open(io.BytesIO(photo.data)).convert("RGB")
    width, height = picture.size
    if how == "jpeg":
        return jpeg_bytes(picture, quality=rng.randint(60, 95))
    if how == "resize":
        scale = rng.uniform(0.5, 1.5)
        return jpeg_bytes(picture.resize((round(width * scale), round(height * scale)), Image.Resampling.BICUBIC))
    if how == "crop":
        cut_x, cut_y = round(width * rng.uniform(0.02, 0.10)), round(height * rng.uniform(0.02, 0.10))
        left, top = rng.randint(0, cut_x), rng.randint(0, cut_y)
        return jpeg_bytes(picture.crop((left, top, width - (cut_x - left), height - (cut_y - top))))
    if how == "mirror":
        return jpeg_bytes(ImageOps.mirror(picture))
    raise ValueError(how)


def copies(photos, *, seed=11):
    rng = random.Random(seed)
    return [(index, how, copy_of(photo, how, rng)) for index, photo in enumerate(photos) for how in KINDS]


@dataclass
class Rates:
    copies: int
    found: float
    same_kind: float
    other: float
    found_by_kind: dict

    def as_dict(self):
        return {"copies": self.copies, "found": round(self.found, 4), "same_kind_false": round(self.same_kind, 4),
                "other_false": round(self.other, 4), "found_by_kind": {k: round(v, 4) for k, v in self.found_by_kind.items()}}


def detection_rates(*, photos, copied, model):
    """Store ``photos`` as the catalogue, look every copy up through ``near_duplicates``;
    Django configured, the model loaded. Returns ``Rates``."""
    from clipcheck.images import decode_image
    from clipcheck.nearduplicates import layout_signature, near_duplicates
    from clipcheck.services.embeddings import image_embeddings_compute

    decoded = [decode_image(photo.data) for photo in photos]
    image_embeddings_compute(images=decoded, model=model)
    hashes = [image.sha256 for image in decoded]
    found, same_kind, same_kind_pairs, other, other_pairs = 0, 0, 0, 0, 0
    found_by_kind = {how: [0, 0] for how in KINDS}
    batch = 64
    for start in range(0, len(copied), batch):
        part = copied[start:start + batch]
        images = [decode_image(data) for _, _, data in part]
        vectors = image_embeddings_compute(images=images, model=model, store=False)
        for (index, how, _), image, vector in zip(part, images, vectors):
            reported = {
                duplicate.sha256
                for duplicate in near_duplicates(
                    sha256=image.sha256, vector=vector, layout=layout_signature(image.image), model=model,
                )
            }
            hit = hashes[index] in reported
            found += hit
            found_by_kind[how][0] += hit
            found_by_kind[how][1] += 1
            for other_index, photo in enumerate(photos):
                if other_index == index:
                    continue
                wrong = hashes[other_index] in reported
                if photo.kind == photos[index].kind:
                    same_kind += wrong
                    same_kind_pairs += 1
                else:
                    other += wrong
                    other_pairs += 1
    return Rates(
        copies=len(copied), found=found / len(copied), same_kind=same_kind / max(same_kind_pairs, 1),
        other=other / max(other_pairs, 1),
        found_by_kind={how: hits / total for how, (hits, total) in found_by_kind.items() if total},
    )


def sweep(*, photos, copied):
    """CLIP cosine and layout correlation of every copy with every original, over thresholds."""
    from clipcheck.engine import get_engine
    from clipcheck.images import decode_image
    from clipcheck.nearduplicates import layout_signature, layout_similarity

    engine = get_engine()
    originals_decoded = [decode_image(photo.data) for photo in photos]
    original_vectors = engine.encode_images([image.image for image in originals_decoded])
    original_layouts = [layout_signature(image.image) for image in originals_decoded]
    copies_decoded = [decode_image(data) for _, _, data in copied]
    copy_vectors = engine.encode_images([image.image for image in copies_decoded])
    clip = copy_vectors @ original_vectors.T
    layout = np.array([[layout_similarity(layout_signature(image.image), stored) for stored in original_layouts]
                       for image in copies_decoded])
    own = np.zeros_like(clip, dtype=bool)
    same = np.zeros_like(clip, dtype=bool)
    for row, (index, _, _) in enumerate(copied):
        own[row, index] = True
        for column, photo in enumerate(photos):
            same[row, column] = column != index and photo.kind == photos[index].kind
    rows = []
    for clip_threshold in (0.6, 0.7, 0.8, 0.9, 0.95):
        for layout_threshold in (None, 0.8, 0.85, 0.9):
            judged = clip >= clip_threshold
            if layout_threshold is not None:
                judged &= layout >= layout_threshold
            rows.append({"clip": clip_threshold, "layout": layout_threshold,
                         "found": round(float(judged[own].mean()), 4),
                         "same_kind_false": round(float(judged[same].mean()), 4)})
    return rows


def measure(*, smoke=False):
    workdir = Path(tempfile.mkdtemp(prefix="clipcheck-bench-duplicates-"))
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "clipproject.settings", "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "CLIPCHECK_MODEL": str(KNOWN_ANSWER_MODEL), "CLIPCHECK_DEVICE": "cpu", "DJANGO_LOG_LEVEL": "WARNING",
    })
    import django
    from django.core.management import call_command
    from django.test import override_settings

    django.setup()
    call_command("migrate", verbosity=0)
    from clipcheck.services.thresholds import model_id

    photos = originals(photos_per_kind=1 if smoke else 3)
    copied = copies(photos)
    with override_settings(CLIPCHECK={"MODEL": str(KNOWN_ANSWER_MODEL), "DEVICE": "cpu",
                                      **KNOWN_ANSWER_NEAR_DUPLICATE}):
        rates = detection_rates(photos=photos, copied=copied, model=model_id())
        table = sweep(photos=photos, copied=copied)
    return {"photos": len(photos), "thresholds": KNOWN_ANSWER_NEAR_DUPLICATE, "rates": rates.as_dict(), "sweep": table}


def format_lines(result):
    rates = result["rates"]
    thresholds = result["thresholds"]
    lines = [
        f"near-duplicates, known-answer checkpoint: {result['photos']} photos, {rates['copies']} copies; "
        f"CLIP >= {thresholds['NEAR_DUPLICATE_SIMILARITY']} and layout >= {thresholds['NEAR_DUPLICATE_LAYOUT']}",
        f"  found {rates['found']:.2%} (" + ", ".join(f"{k} {v:.2%}" for k, v in rates["found_by_kind"].items())
        + f"); other photo of the same kind reported {rates['same_kind_false']:.2%}; "
        f"any other photo {rates['other_false']:.2%}",
        "  sweep (found / same kind reported):",
    ]
    for row in result["sweep"]:
        layout = "-" if row["layout"] is None else row["layout"]
        lines.append(f"    clip >= {row['clip']:<5} layout >= {layout!s:<5} found {row['found']:.2%}  "
                     f"same kind {row['same_kind_false']:.2%}")
    return lines
