"""A full media disk (or a spent quota) while an upload writes its photos: a clear 507, nothing left behind."""

import errno
import os

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile

from listings.models import Listing, ListingPhoto
from tests.support.images import image_bytes
from tests.support.listings import MATCHING_TEXT

pytestmark = pytest.mark.django_db

PHOTOS = [image_bytes(color=(200, 30, 30)), image_bytes(color=(190, 40, 30)), image_bytes(color=(180, 50, 30))]


@pytest.fixture
def disk_full_after(monkeypatch):
    """The disk takes ``files`` whole files; the next one is created, gets part of its bytes, and the
    write fails with ``code`` (ENOSPC: the disk is full; EDQUOT: the quota is spent)."""

    def install(files, code=errno.ENOSPC):
        real_save = FileSystemStorage._save
        written = []

        def save(storage, name, content):
            if len(written) >= files:
                path = storage.path(name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as partial:
                    partial.write(content.read()[: len(written) * 40])  # zero bytes for the first
                raise OSError(code, os.strerror(code), path)
            written.append(name)
            return real_save(storage, name, content)

        monkeypatch.setattr(FileSystemStorage, "_save", save)

    return install


def files_under(root):
    return sorted(os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names)


@pytest.mark.parametrize("files", [0, 1, 2], ids=["primary", "second photo", "third photo"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_a_full_disk_answers_507_and_leaves_no_file_and_no_listing(
    seller_client, everything_matches, media_root, disk_full_after, files, code
):
    disk_full_after(files, code)

    response = seller_client.post("/upload", {
        "title": MATCHING_TEXT,
        "file": [SimpleUploadedFile(f"{index}.png", data, content_type="image/png") for index, data in enumerate(PHOTOS)],
    })

    assert response.status_code == 507
    assert response.json()["error"] == {
        "code": "storage_full", "message": "The server has no room to store the photos now; try again later.",
    }
    assert files_under(media_root) == []
    assert Listing.objects.count() == ListingPhoto.objects.count() == 0


def test_another_storage_failure_still_leaves_nothing_behind(seller_client, everything_matches, media_root,
                                                             disk_full_after):
    disk_full_after(1, errno.EIO)

    with pytest.raises(OSError):
        seller_client.post("/upload", {
            "title": MATCHING_TEXT,
            "file": [SimpleUploadedFile(f"{index}.png", data, content_type="image/png") for index, data in enumerate(PHOTOS)],
        })

    assert files_under(media_root) == []
    assert Listing.objects.count() == 0
