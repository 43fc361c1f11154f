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


def change_page_post(client, listing, *, primary=None, second=None):
    """The listing's change page saved with a new primary photo and/or a new second photo."""
    data = {
        "title": listing.title, "description": listing.description, "category": "", "price": "",
        "photos-TOTAL_FORMS": "1", "photos-INITIAL_FORMS": "1", "photos-MIN_NUM_FORMS": "0",
        "photos-MAX_NUM_FORMS": "1000", "photos-0-id": str(listing.photos.get(position=1).pk),
        "photos-0-listing": str(listing.pk), "decisions-TOTAL_FORMS": "0", "decisions-INITIAL_FORMS": "0",
    }
    if primary is not None:
        data["image"] = SimpleUploadedFile("new.png", primary, content_type="image/png")
    if second is not None:
        data["photos-0-image"] = SimpleUploadedFile("new.png", second, content_type="image/png")
    return client.post(f"/admin/listings/listing/{listing.pk}/change/", data, follow=True)


@pytest.mark.parametrize("files", [0, 1], ids=["primary", "second photo"])
def test_a_full_disk_on_the_admin_change_page_says_so_and_changes_nothing(
    seller_client, admin_client, everything_matches, media_root, disk_full_after, files
):
    created = seller_client.post("/upload", {
        "title": MATCHING_TEXT,
        "file": [SimpleUploadedFile(f"{index}.png", data, content_type="image/png") for index, data in enumerate(PHOTOS[:2])],
    })
    listing = Listing.objects.get(pk=created.json()["listing_id"])
    before_files = files_under(media_root)
    before_names = sorted(ListingPhoto.objects.values_list("image", flat=True))
    disk_full_after(files)

    response = change_page_post(admin_client, listing, primary=image_bytes(color=(20, 40, 210)),
                                second=image_bytes(color=(30, 170, 40)))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was saved: The server has no room to store the photos now; try again later." in page
    assert files_under(media_root) == before_files
    assert sorted(ListingPhoto.objects.values_list("image", flat=True)) == before_names
    assert Listing.objects.get(pk=listing.pk).image.name == listing.image.name
