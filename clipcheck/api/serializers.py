"""Input validation of the /clip/* endpoints."""

import math

from rest_framework import serializers

from clipcheck.api.exceptions import validation_error_summary
from clipcheck.errors import ImageRejected
from clipcheck.images import decode_image
from clipcheck.settings import clip_settings


class ThresholdField(serializers.FloatField):
    """A finite float in [0, 1]; NaN and infinities are refused."""

    default_error_messages = {"range": "Threshold must be a number between 0 and 1."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            self.fail("range")
        return value


class ImageUploadField(serializers.FileField):
    """An uploaded image decoded by ``clipcheck.images.decode_image``.

    Size is checked before the bytes are read; decoding failures raise
    ``ImageRejected`` with their own status (413/415/400) and code.
    """

    def to_internal_value(self, data):
        return decode_image(self.read_bytes(data))

    def read_bytes(self, data):
        """The uploaded bytes, refused before reading when over the limit."""
        upload = super().to_internal_value(data)
        limit = clip_settings.MAX_UPLOAD_BYTES
        if upload.size is not None and upload.size > limit:
            raise ImageRejected(
                f"The file is {upload.size} bytes; the limit is {limit} bytes.",
                code="file_too_large",
                status_code=413,
            )
        upload.seek(0)
        return upload.read(limit + 1)


class ProductTextField(serializers.CharField):
    """Non-blank text up to ``MAX_TEXT_LENGTH`` characters."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        limit = clip_settings.MAX_TEXT_LENGTH
        if len(value) > limit:
            raise serializers.ValidationError(
                f"Text is {len(value)} characters; the limit is {limit}.", code="max_length"
            )
        return value


class CategoriesField(serializers.CharField):
    """Comma-separated categories: trimmed, empties dropped, duplicates removed."""

    def get_value(self, dictionary):
        # DRF treats an empty optional form field as absent; an explicitly
        # empty list of categories is a client mistake, not "use defaults".
        if self.field_name in dictionary:
            return dictionary[self.field_name]
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        categories = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        if not categories:
            raise serializers.ValidationError("Give at least one category.", code="empty")
        if len(categories) > clip_settings.MAX_CATEGORIES:
            raise serializers.ValidationError(
                f"{len(categories)} categories; the limit is {clip_settings.MAX_CATEGORIES}.", code="max_length"
            )
        too_long = [category for category in categories if len(category) > clip_settings.MAX_CATEGORY_LENGTH]
        if too_long:
            raise serializers.ValidationError(
                f"Categories are limited to {clip_settings.MAX_CATEGORY_LENGTH} characters.", code="max_length"
            )
        return categories


class AnalyzeInputSerializer(serializers.Serializer):
    file = ImageUploadField()
    text = ProductTextField()
    threshold = ThresholdField(required=False)


class ClassifyInputSerializer(serializers.Serializer):
    file = ImageUploadField()
    categories = CategoriesField(required=False)
    top_k = serializers.IntegerField(required=False, min_value=1)


class BatchItemSerializer(serializers.Serializer):
    image_path = serializers.CharField(trim_whitespace=False)
    text = ProductTextField()
    threshold = ThresholdField(required=False)


class BatchInputSerializer(serializers.Serializer):
    items = serializers.ListField(child=serializers.JSONField(), allow_empty=False)

    def validate_items(self, items):
        limit = clip_settings.BATCH_MAX_ITEMS
        if len(items) > limit:
            raise serializers.ValidationError(f"{len(items)} items; the limit is {limit}.", code="max_length")
        return [self._item(item) for item in items]

    @staticmethod
    def _item(item):
        """A valid item's data, or an ``error`` entry that fails only that item."""
        if not isinstance(item, dict):
            return {"image_path": None, "error": {"code": "invalid_item", "message": "Each item must be an object."}}
        serializer = BatchItemSerializer(data=item)
        if serializer.is_valid():
            return dict(serializer.validated_data)
        code, message = validation_error_summary(serializer.errors)
        image_path = item.get("image_path") if isinstance(item.get("image_path"), str) else None
        return {"image_path": image_path, "error": {"code": code, "message": message}}
