"""Near-duplicate photos: the same picture re-encoded, resized, cropped a little or mirrored.

Two stages, both cheap:

1. retrieval by CLIP embedding: the nearest stored images whose cosine with
   the photo reaches ``NEAR_DUPLICATE_SIMILARITY`` (``clipcheck.vectors``:
   pgvector's HNSW index, or exact search in the process);
2. confirmation by layout: an 8x8 colour thumbnail of each image (its
   "layout", stored beside the embedding) must correlate at
   ``NEAR_DUPLICATE_LAYOUT`` or more, mirrored or not.

CLIP alone confuses two different photos of the same kind of product (that
is what it is trained to see as alike); the layout alone confuses two
photos that share a backdrop and a silhouette. A re-encoded, resized,
slightly cropped or mirrored copy passes both. ``docs/similarity.md`` gives
the rates measured on the known-answer checkpoint (``python -m bench.vectors
--only duplicates``).
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from clipcheck import selectors
from clipcheck.settings import clip_settings
from clipcheck.vectors import VectorLike, image_neighbours

LAYOUT_SIDE = 8
LAYOUT_SIZE = LAYOUT_SIDE * LAYOUT_SIDE * 3
# A thumbnail whose every cell is within this many levels (of 255) of its
# channel's mean is a plain picture.
PLAIN_TOLERANCE = 2.0
# Candidates fetched from the index per photo before the layout check.
CANDIDATES = 20


def layout_signature(picture: Image.Image) -> npt.NDArray[np.float32]:
    """The picture's 8x8 RGB thumbnail, mean-centred, of unit length (float32, 192 values).

    One mean over all channels: the backdrop's colour stays part of the
    layout (two photos of one product on different backdrops differ). A
    plain picture has no layout (all zeros) and matches nothing but itself
    (the same bytes).
    """
    thumbnail = picture if picture.mode == "RGB" else picture.convert("RGB")  # convert() would copy it
    # reduce() first: averaging a large photo straight down to 8x8 costs more.
    factor = max(1, min(thumbnail.size) // (LAYOUT_SIDE * 4))
    if factor > 1:
        thumbnail = thumbnail.reduce(factor)
    values = np.asarray(thumbnail.resize((LAYOUT_SIDE, LAYOUT_SIDE), Image.Resampling.BOX), dtype=np.float32)
    if float(np.abs(values - values.mean(axis=(0, 1))).max()) < PLAIN_TOLERANCE:
        return np.zeros(LAYOUT_SIZE, dtype=np.float32)
    values = values.reshape(-1) - values.mean()
    return (values / float(np.linalg.norm(values))).astype(np.float32)


def layout_mirrored(layout: VectorLike) -> npt.NDArray[np.float32]:
    return np.asarray(layout, dtype=np.float32).reshape(LAYOUT_SIDE, LAYOUT_SIDE, 3)[:, ::-1, :].reshape(-1)


def layout_similarity(first: VectorLike, second: VectorLike) -> float:
    """Correlation of two layouts, the better of ``second`` as is and mirrored."""
    first = np.asarray(first, dtype=np.float32)
    return float(max(first @ np.asarray(second, dtype=np.float32), first @ layout_mirrored(second)))


def is_near_duplicate(*, similarity: float, layout_similarity: float | None) -> bool:
    """The rule on the two measures; an image stored before layouts were kept
    (``layout_similarity`` None) is judged on the embedding alone."""
    if similarity < float(clip_settings.NEAR_DUPLICATE_SIMILARITY):
        return False
    return layout_similarity is None or layout_similarity >= float(clip_settings.NEAR_DUPLICATE_LAYOUT)


@dataclass(frozen=True)
class NearDuplicate:
    sha256: str
    similarity: float  # cosine of the CLIP embeddings
    layout_similarity: float | None  # None: the stored image has no layout yet


def near_duplicates(
    *, sha256: str, vector: VectorLike, layout: VectorLike | None, model: str, within: Iterable[str] | None = None,
    exclude: Iterable[str] = (), candidates: int = CANDIDATES,
) -> list[NearDuplicate]:
    """Stored images of ``model`` that are near-duplicates of the photo
    ``sha256`` with embedding ``vector`` and layout ``layout``, most similar
    first; the same bytes (``sha256``) always are.

    ``within`` / ``exclude`` restrict the images as in ``image_neighbours``
    (e.g. the catalogue's photos, without the listing's own).
    """
    found = image_neighbours(
        vector=vector, model=model, k=candidates, within=within, exclude=exclude,
        min_similarity=float(clip_settings.NEAR_DUPLICATE_SIMILARITY),
    )
    layouts = selectors.image_layouts_get(hashes=[neighbour.sha256 for neighbour in found], model=model)
    duplicates = []
    for neighbour in found:
        stored = layouts.get(neighbour.sha256)
        layout_score = None if stored is None or layout is None else round(layout_similarity(layout, stored), 4)
        if neighbour.sha256 == sha256 or is_near_duplicate(
            similarity=neighbour.similarity, layout_similarity=layout_score
        ):
            duplicates.append(NearDuplicate(neighbour.sha256, round(min(neighbour.similarity, 1.0), 4), layout_score))
    return duplicates
