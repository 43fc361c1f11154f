"""Listing images in S3: a real S3-compatible server (moto) on loopback, no mocks."""

import uuid

import boto3
import pytest
from django.core.files.storage import storages

from clipcheck.selectors import analyses_for_subject
from clipproject.settings import storages_from_environ
from listings import services
from listings.models import Listing
from tests.listings.test_upload_api import upload
from tests.support.images import image_bytes

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_REGION_NAME": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(settings, s3_endpoint):
    """The project's S3 configuration, from the same environment variables a deploy sets."""
    bucket = f"listings-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = storages_from_environ({
        "CLIPCHECK_S3_BUCKET": bucket, "AWS_S3_ENDPOINT_URL": s3_endpoint, **CREDENTIALS,
    })
    return client, bucket


def test_without_a_bucket_media_stay_in_media_root():
    assert storages_from_environ({})["default"] == {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def test_a_bucket_in_the_environment_selects_s3():
    storages = storages_from_environ({"AWS_STORAGE_BUCKET_NAME": "shop", "AWS_ACCESS_KEY_ID": "key"})

    assert storages["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert storages["default"]["OPTIONS"]["bucket_name"] == "shop"
    assert storages["default"]["OPTIONS"]["access_key"] == "key"
    assert "endpoint_url" not in storages["default"]["OPTIONS"]
    assert storages["staticfiles"]["BACKEND"] == "django.contrib.staticfiles.storage.StaticFilesStorage"


@pytest.mark.django_db
def test_an_uploaded_image_is_stored_in_the_bucket_and_checked_from_it(seller_client, s3_bucket, settings):
    from storages.backends.s3 import S3Storage

    from tests.support.clip_settings import set_clip_settings

    s3, bucket = s3_bucket
    assert isinstance(storages["default"], S3Storage)
    data = image_bytes(color=(17, 99, 180))

    body = upload(seller_client, data=data).json()

    listing = Listing.objects.get(pk=body["listing_id"])
    stored = s3.get_object(Bucket=bucket, Key=listing.image.name)
    assert stored["Body"].read() == data
    assert stored["ContentLength"] == len(data)

    set_clip_settings(settings, THRESHOLD=1.0)  # a re-check must really run and read the bucket
    outcome = services.listing_check(listing=listing)
    assert outcome.to_status == Listing.Status.NEEDS_REVIEW
    assert outcome.title_analysis.cached is False
    assert outcome.title_analysis.image_sha256 == listing.image_sha256
    assert analyses_for_subject(subject=listing).count() == 4

    s3.delete_object(Bucket=bucket, Key=listing.image.name)
    assert services.listings_check(listings=[listing])[0].error.code == "image_unavailable"


@pytest.mark.django_db
def test_the_admin_serves_a_private_bucket_image(admin_client, s3_bucket):
    data = image_bytes(color=(3, 200, 3))
    body = upload(admin_client, data=data).json()

    response = admin_client.get(f"/admin/listings/listing/{body['listing_id']}/image/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content == data
