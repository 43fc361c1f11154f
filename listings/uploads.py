"""Writing an upload's photos to storage, and deleting them again when the upload fails.

Each photo is named before its first byte is written, so a write that fails
half-way (a full disk leaves a zero-byte or partial file) is deleted with the
others; a full disk or spent quota is ``StorageFull`` (507), not a bug.
"""

import errno
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db.models.fields.files import FieldFile, FileField

from clipcheck.images import DecodedImage
from listings.errors import StorageFull
from listings.models import FORMAT_SUFFIXES, Listing, ListingPhoto

logger = logging.getLogger(__name__)

# A full disk, or the media owner's quota spent: an answer for the client (507), not a bug.
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def upload_photos_write(
    *, listing: Listing, photos: Sequence[tuple[bytes, DecodedImage]], stored: list[tuple[Storage, str]]
) -> list[ListingPhoto]:
    """Write the photos to storage (each one named in ``stored`` before its
    first byte is written); returns the unsaved ``ListingPhoto`` rows of the
    extra photos. A full storage raises ``StorageFull``."""
    primary_data, primary = photos[0]
    listing.image = _photo_write(field=Listing._meta.get_field("image"), data=primary_data, image=primary, stored=stored)
    extra_photos = []
    for position, (data, image) in enumerate(photos[1:], start=1):
        name = _photo_write(field=ListingPhoto._meta.get_field("image"), data=data, image=image, stored=stored)
        extra_photos.append(ListingPhoto(position=position, image=name, image_sha256=image.sha256))
    return extra_photos


def _photo_write(*, field: FileField, data: bytes, image: DecodedImage, stored: list[tuple[Storage, str]]) -> str:
    """Store one photo under a generated name (the suffix from the decoded format); returns the name."""
    name = field.generate_filename(None, f"upload.{FORMAT_SUFFIXES.get(image.format, 'bin')}")
    return _named_write(field=field, name=name, content=ContentFile(data), stored=stored)


def field_file_write(*, field_file: FieldFile, stored: list[tuple[Storage, str]]) -> None:
    """Store a form's new photo (an uncommitted ``FieldFile``) under its generated name, so that a
    save the admin abandons (a full disk on a later photo) deletes it; the model's own save then
    writes nothing. A full storage raises ``StorageFull``."""
    if not field_file or field_file._committed:
        return
    name = field_file.field.generate_filename(field_file.instance, field_file.name)
    field_file.name = _named_write(field=field_file.field, name=name, content=field_file.file, stored=stored)
    field_file._committed = True


def _named_write(*, field: FileField, name: str, content: Any, stored: list[tuple[Storage, str]]) -> str:
    """Write ``content`` to the field's storage as ``name``; returns the name saved.

    The name is recorded in ``stored`` before the first byte is written: a write
    that fails half-way (a full disk leaves a zero-byte or partial file) is
    deleted with the others. A full storage raises ``StorageFull``."""
    storage = field.storage
    stored.append((storage, name))
    try:
        saved = storage.save(name, content, max_length=field.max_length)
    except OSError as exc:
        if exc.errno in STORAGE_FULL_ERRNOS:
            logger.error("Media storage is full; a photo was refused: %s", exc)
            raise StorageFull() from exc
        raise
    stored[-1] = (storage, saved)
    return saved


def stored_photos_delete(stored: Iterable[tuple[Storage, str]]) -> None:
    """Delete the photos of a failed upload; one that cannot be deleted is left to ``clip_sweep_orphans``."""
    for storage, name in stored:
        try:
            storage.delete(name)
        except Exception:  # each storage backend raises its own errors
            logger.warning("Photo %s of a failed upload could not be deleted; clip_sweep_orphans removes it.", name,
                           exc_info=True)
