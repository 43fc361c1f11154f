"""System checks of the LISTINGS settings."""

import pytest

from listings.checks import check_listings_settings, check_upload_file_limit


def error_ids(settings, listings):
    settings.LISTINGS = listings
    return [error.id for error in check_listings_settings()]


def test_the_defaults_pass(settings):
    assert error_ids(settings, {}) == []
    assert error_ids(settings, {"UPLOAD_POLICY": "reject", "SUGGESTION_TOP_K": 3, "CHECK_BATCH_SIZE": 8}) == []
    assert error_ids(settings, {"AUDIT_STALL_SECONDS": 0}) == error_ids(settings, {"AUDIT_STALL_SECONDS": 90.5}) == []


@pytest.mark.parametrize(("listings", "expected"), [
    ({"UPLOAD_POLICY_X": "flag"}, ["listings.E001"]),
    ({"UPLOAD_POLICY": "drop"}, ["listings.E002"]),
    ({"SUGGESTION_TOP_K": 0}, ["listings.E003"]),
    ({"CHECK_BATCH_SIZE": "32"}, ["listings.E003"]),
    ({"CHECK_BATCH_SIZE": True}, ["listings.E003"]),
    ({"AUDIT_CHUNK_SIZE": 0}, ["listings.E003"]),
    ({"AUDIT_DECODE_THREADS": 2.5}, ["listings.E003"]),
    ({"MAX_PHOTOS": 0}, ["listings.E003"]),
    ({"PHOTOS_SAME_ITEM_THRESHOLD": 1.5}, ["listings.E010"]),
    ({"PHOTOS_SAME_ITEM_THRESHOLD": "high"}, ["listings.E010"]),
    ({"AUDIT_STALL_SECONDS": -1}, ["listings.E011"]),
    ({"AUDIT_STALL_SECONDS": "ten minutes"}, ["listings.E011"]),
    ({"AUDIT_STALL_SECONDS": True}, ["listings.E011"]),
])
def test_mistakes_are_reported(settings, listings, expected):
    assert error_ids(settings, listings) == expected


def test_the_shipped_request_file_limit_lets_max_photos_through():
    # clipproject/settings.py sets DATA_UPLOAD_MAX_NUMBER_FILES from MAX_PHOTOS.
    assert check_upload_file_limit() == []


def test_a_request_file_limit_below_max_photos_is_warned_about(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 5
    settings.LISTINGS = {"MAX_PHOTOS": 10}

    [warning] = check_upload_file_limit()

    assert warning.id == "listings.W001" and "(5)" in warning.msg and "(10)" in warning.msg
    settings.LISTINGS = {"MAX_PHOTOS": 5}
    assert check_upload_file_limit() == []
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = None  # Django's "no limit"
    settings.LISTINGS = {"MAX_PHOTOS": 10}
    assert check_upload_file_limit() == []
