"""Clusters of near-duplicate photos across the catalogue (``manage.py clip_duplicates``).

The catalogue is read in keyset-paginated chunks over the primary key; each
listing's photo is looked up in the vector index (``near_duplicates``: CLIP
neighbours confirmed by layout), and every near-duplicate pair, or pair of
listings showing the same bytes, joins two listings. Union-find over those
pairs gives the clusters.

A run is resumable: after each chunk the pairs found and the last primary
key done are saved to a state file, and a run with the same state file
continues after that key.
"""

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from clipcheck import selectors as clip_selectors
from clipcheck.errors import ClipcheckError
from clipcheck.nearduplicates import NearDuplicate, near_duplicates
from clipcheck.paging import keyset_pages
from clipcheck.services.embeddings import image_embeddings_compute
from listings import selectors, services
from listings.models import Listing

# Two listings showing near-duplicate photos: (listing id, listing id, CLIP similarity, layout similarity or None).
Pair = tuple[int, int, float, float | None]


class UnionFind:
    """Disjoint sets of listing ids (path halving, union by size)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}

    def find(self, item: int) -> int:
        self.parent.setdefault(item, item)
        self.size.setdefault(item, 1)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, first: int, second: int) -> None:
        first, second = self.find(first), self.find(second)
        if first == second:
            return
        if self.size[first] < self.size[second]:
            first, second = second, first
        self.parent[second] = first
        self.size[first] += self.size[second]

    def groups(self) -> list[list[int]]:
        grouped: dict[int, list[int]] = {}
        for item in self.parent:
            grouped.setdefault(self.find(item), []).append(item)
        return list(grouped.values())


@dataclass
class DuplicatesState:
    """What a run has done so far (saved after every chunk)."""

    model: str
    last_pk: int = 0
    pairs: list[Pair] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (listing id, reason)
    done: bool = False

    def save(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        # Written beside the target and renamed over it: a run killed while
        # saving leaves the previous state whole.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(self.__dict__, stream)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, model: str) -> "DuplicatesState":
        """The saved state of an unfinished run of ``model``, or a fresh one."""
        try:
            saved = json.loads(Path(path).read_text(encoding="utf-8"))
            state = cls(**saved)
        except (OSError, ValueError, TypeError):
            return cls(model=model)
        if state.done or state.model != model:
            return cls(model=model)
        state.pairs = [cast(Pair, tuple(pair)) for pair in state.pairs]  # JSON gave lists
        return state


def duplicates_chunks(*, state: DuplicatesState, chunk_size: int) -> Iterator[list[Listing]]:
    """Listings after ``state.last_pk``, ``chunk_size`` at a time, in pk order."""
    yield from keyset_pages(Listing.objects.all(), page_size=chunk_size, after=state.last_pk)


def duplicates_chunk(*, listings: Sequence[Listing], state: DuplicatesState) -> None:
    """Find the pairs of one chunk of listings and record them in ``state``."""
    model = state.model
    hashes = [listing.image_sha256 for listing in listings]
    vectors = clip_selectors.image_embeddings_get(hashes=hashes, model=model)
    layouts = clip_selectors.image_layouts_get(hashes=hashes, model=model)
    for listing in listings:
        if listing.image_sha256 not in vectors or listing.image_sha256 not in layouts:
            # Never checked, or checked before layouts were kept: embed it now.
            try:
                image = services.listing_image_decode(listing=listing)
            except ClipcheckError as exc:
                state.failed.append((listing.pk, f"{exc.code}: {exc.message}"))
                continue
            vectors[listing.image_sha256] = image_embeddings_compute(images=[image], model=model)[0]
            layouts.update(clip_selectors.image_layouts_get(hashes=[listing.image_sha256], model=model))
    others_of: dict[int, list[NearDuplicate]] = {}
    for listing in listings:
        if listing.image_sha256 not in vectors:
            continue
        others = Listing.objects.exclude(pk=listing.pk)
        found = near_duplicates(
            sha256=listing.image_sha256, vector=vectors[listing.image_sha256],
            layout=layouts.get(listing.image_sha256), model=model,
            within=selectors.catalogue_photo_hashes(listings=others),
        )
        others_of[listing.pk] = found
    showing = selectors.listings_showing_photos(
        hashes={duplicate.sha256 for found in others_of.values() for duplicate in found}
    )
    for listing_pk, found in others_of.items():
        for duplicate in found:
            for other in showing.get(duplicate.sha256, []):
                if other.pk != listing_pk:
                    pair = (min(listing_pk, other.pk), max(listing_pk, other.pk))
                    state.pairs.append((*pair, duplicate.similarity, duplicate.layout_similarity))
    state.last_pk = listings[-1].pk


@dataclass
class Cluster:
    number: int
    listings: list[Listing]  # oldest first
    pairs: list[Pair]


def duplicates_clusters(*, pairs: Iterable[Pair]) -> list[Cluster]:
    """Clusters of two or more listings joined by ``pairs``, largest first."""
    union = UnionFind()
    best: dict[tuple[int, int], Pair] = {}
    for first, second, similarity, layout in pairs:
        union.union(first, second)
        key = (first, second)
        if key not in best or similarity > best[key][2]:
            best[key] = (first, second, similarity, layout)
    groups = sorted(union.groups(), key=lambda group: (-len(group), min(group)))
    listings = Listing.objects.in_bulk([pk for group in groups for pk in group])
    clusters = []
    for number, group in enumerate(groups, start=1):
        members = sorted((listings[pk] for pk in group if pk in listings), key=lambda item: (item.created_at, item.pk))
        if len(members) < 2:
            continue  # deleted since the pair was found
        ids = {member.pk for member in members}
        clusters.append(Cluster(
            number=number, listings=members,
            pairs=sorted(pair for key, pair in best.items() if key[0] in ids and key[1] in ids),
        ))
    return clusters
