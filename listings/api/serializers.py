"""Input and output of POST /upload."""

from dataclasses import dataclass

from rest_framework import serializers

from clipcheck.api.serializers import AnalyzeResultSerializer, ErrorDetailSerializer, ImageUploadField, ProductTextField
from clipcheck.images import DecodedImage, decode_image
from listings.models import Listing


@dataclass(frozen=True)
class UploadedImage:
    data: bytes  # stored as sent
    decoded: DecodedImage  # what the model sees


class ListingImageField(ImageUploadField):
    """An uploaded image kept as bytes (for storage) and decoded (for the check)."""

    def to_internal_value(self, data):
        raw = self.read_bytes(data)
        return UploadedImage(data=raw, decoded=decode_image(raw))


class UploadInputSerializer(serializers.Serializer):
    file = ListingImageField()
    title = ProductTextField(max_length=Listing._meta.get_field("title").max_length)
    description = ProductTextField()
    category = serializers.CharField(
        required=False, allow_blank=True, max_length=Listing._meta.get_field("category").max_length
    )
    price = serializers.DecimalField(
        required=False, allow_null=True, max_digits=10, decimal_places=2, min_value=0
    )


class UploadResultSerializer(serializers.Serializer):
    listing_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Listing.Status.choices)
    title_check = AnalyzeResultSerializer()
    description_check = AnalyzeResultSerializer()
    suggestion = serializers.CharField(allow_null=True)
    reasons = serializers.ListField(
        child=serializers.DictField(), help_text="Why the listing needs review, e.g. photo_reused; empty when clean."
    )


class UploadMismatchSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
    similarity_score = serializers.FloatField(min_value=0.0, max_value=1.0)
    suggestion = serializers.CharField(allow_null=True)


def submission_output(submission):
    """The 201 body: the listing, its status and both verdicts."""
    listing = submission.listing
    return {
        "listing_id": listing.pk,
        "status": listing.status,
        "title_check": submission.title_analysis.result(),
        "description_check": submission.description_analysis.result(),
        "suggestion": submission.suggestion,
        "reasons": listing.reasons,
    }
