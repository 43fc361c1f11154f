"""OpenAPI documentation of the /clip/* endpoints (drf-spectacular).

``error_responses`` and ``multipart`` are public: a project's own views
document their errors and uploads with them.

Limits in the schema (text length, item counts, upload size) are read from
``clip_settings`` when the schema is generated, so it matches the running
configuration. Every operation lists the errors it can answer, all in the
one error format (``Error``).
"""

import re
from collections.abc import Iterable
from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, OpenApiParameter, OpenApiRequest, OpenApiResponse
from rest_framework.fields import Field
from rest_framework.serializers import Serializer

from clipcheck.access import Policy, view_policy
from clipcheck.api.serializers import (
    CATEGORIES_PATTERN,
    NON_BLANK_TEXT_PATTERN,
    ErrorSerializer,
    max_categories_text_length,
)
from clipcheck.languages import supported_languages
from clipcheck.settings import clip_settings

ERROR_DESCRIPTIONS = {
    400: "Invalid input: a field is missing or malformed, or the request could not be parsed.",
    401: "Credentials are required for this endpoint, or the ones sent are invalid.",
    403: "The authenticated user lacks the permission this endpoint requires (or the CSRF check failed).",
    411: "The body was sent chunked, without Content-Length.",
    413: "The request body, the file, or the image's pixel count (or the memory to decode it) is over the limit, "
         "or the request needs more model work than one request may have (request_too_costly).",
    415: "The body's content type or charset, or the uploaded image's format, is not accepted.",
    429: "Too many requests, too much model work (the cost rate), or too many failed token authentications from "
         "this client; retry after Retry-After seconds.",
    503: "The model is unavailable, overloaded or timed out, or the database is unreachable.",
}
# Errors any endpoint can answer: malformed or oversized requests, refused
# credentials, throttling, a database outage while authenticating.
# An unusable charset (415) is refused on any request: Django decodes the
# query string with it too.
COMMON_ERRORS = (400, 401, 403, 413, 415, 429, 503)
BODY_ERRORS = COMMON_ERRORS + (411,)
UPLOAD_ENCODING = {"file": {"contentType": "image/*"}}

RESPONSE_HEADERS = [
    OpenApiParameter(
        "Retry-After", int, OpenApiParameter.HEADER, response=[429], required=True,
        description="Seconds until the client may retry.",
    ),
    OpenApiParameter(
        "WWW-Authenticate", str, OpenApiParameter.HEADER, response=[401], required=True,
        description="The authentication scheme to use: Token.",
    ),
]


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {
        status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status])
        for status in sorted(statuses)
    }


def example_product() -> tuple[str, str]:
    """``(text, category)`` the examples speak of, in the configured model's
    words: its catalogue's first category, described by the first value of its
    first attribute ("red shoes" on the defaults, "red circle" on the
    known-answer model), so "Try it out" never asks a model about things it
    was not configured for."""
    categories = [str(category).strip() for category in clip_settings.CATEGORIES if str(category).strip()]
    category = categories[0] if categories else "product"
    values = next(iter(clip_settings.ATTRIBUTES.values()), None) or [""]
    return f"{str(values[0]).strip()} {category}".strip(), category


def request_examples() -> dict[str, Any]:
    """What Swagger UI's "Try it out" pre-fills, by field name: values a client
    would send, which give a sensible answer as they are (the threshold is the
    configured one, not the largest allowed; categories from the configured
    catalogue)."""
    text, category = example_product()
    categories = [str(name).strip() for name in clip_settings.CATEGORIES if str(name).strip()][:3] or [category]
    return {
        "text": text,
        "title": text[:1].upper() + text[1:],
        "description": f"{text[:1].upper() + text[1:]}, as in the photo.",
        "threshold": clip_settings.THRESHOLD,
        "categories": ",".join(categories),
        "category": category,
        "top_k": min(3, len(categories)),
        "price": "59.90",
        "language": "en",  # the example text is English's first value
    }


def multipart(serializer: type[Serializer] | Serializer) -> dict[str, OpenApiRequest]:
    """The request body of an upload: ``serializer``'s fields as multipart, ``file`` an image."""
    return {"multipart/form-data": OpenApiRequest(serializer, encoding=UPLOAD_ENCODING)}


class ClipAutoSchema(AutoSchema):
    """Security requirements, access notes and the Retry-After and
    WWW-Authenticate headers of an endpoint, from its access policy.

    drf-spectacular only knows that anonymous access is allowed from
    ``AllowAny``; here the view's ``access_scope`` policy decides, and the
    operation description states who may call it and how often.
    """

    def _map_serializer_field(self, field: Field, direction: Direction, bypass_extensions: bool = False) -> dict[str, Any]:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        example = request_examples().get(field.field_name)
        if direction == "request" and example is not None and "$ref" not in schema and "example" not in schema:
            schema = {**schema, "example": example}
        return schema

    def _map_basic_serializer(self, serializer: Serializer, direction: Direction) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        # A blank-allowed field with a pattern becomes oneOf [pattern, empty]:
        # its example goes where Swagger UI's "Try it out" looks, the property.
        for field in schema.get("properties", {}).values():
            examples = [variant.pop("example") for variant in field.get("oneOf", ()) if "example" in variant]
            if examples and "example" not in field:
                field["example"] = examples[0]
        return schema

    def _policy(self) -> Policy | None:
        return view_policy(self.view)

    def get_override_parameters(self) -> list[OpenApiParameter | Serializer | type[Serializer]]:
        parameters = list(super().get_override_parameters())
        if self._policy():
            parameters += RESPONSE_HEADERS
        return parameters

    def get_auth(self) -> list[dict[str, Any]]:
        auths = super().get_auth()
        policy = self._policy()
        if policy and policy["anonymous"] and not policy["permissions"] and {} not in auths:
            auths.append({})
        return auths

    def get_description(self) -> str:
        description = super().get_description() or ""
        policy = self._policy()
        if not policy:
            return description
        if policy["anonymous"] and not policy["permissions"]:
            who = "Anonymous clients may call it."
        elif policy["permissions"]:
            who = f"Requires an authenticated user with: {', '.join(policy['permissions'])}."
        else:
            who = "Requires an authenticated user."
        rate = policy["rate"]
        limit = f"Rate limit: {rate} per client." if rate else "No rate limit."
        if policy["user_rate"]:
            limit += f" Authenticated users: {policy['user_rate']}."
        if policy["cost_rate"] or policy["user_cost_rate"]:
            limit += f" Model work (rows: photos, text passages, attribute rewrites): {policy['cost_rate'] or 'unlimited'}"
            limit += f", authenticated users {policy['user_cost_rate']}." if policy["user_cost_rate"] else "."
        return f"{description}\n\n{who} {limit}".strip()


class ProductTextFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "clipcheck.api.serializers.ProductTextField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": clip_settings.MAX_TEXT_LENGTH,
            "pattern": NON_BLANK_TEXT_PATTERN,
            "description": "Product title and/or description: not blank, no NUL characters.",
        }


class CategoriesFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "clipcheck.api.serializers.CategoriesField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": max_categories_text_length(),
            "pattern": CATEGORIES_PATTERN,
            "description": (
                "Comma-separated categories (trimmed, duplicates removed): at least one, at most "
                f"{clip_settings.MAX_CATEGORIES}, each at most {clip_settings.MAX_CATEGORY_LENGTH} "
                "characters. Absent: the configured catalogue."
            ),
        }


class LanguageFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "clipcheck.api.serializers.LanguageField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        # A pattern, not an enum: drf-spectacular moves enums to components, which multipart
        # validators do not resolve. The languages follow the running settings; empty counts as absent.
        languages = supported_languages()
        return {
            "type": "string",
            "pattern": "^(" + "|".join(re.escape(language) for language in languages) + ")?$",
            "example": languages[0],
            "description": "The text's language: it chooses the attribute vocabulary and the reasons' words. "
                           "Absent or empty: the Accept-Language header's, else en.",
        }


class ImageUploadFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "clipcheck.api.serializers.ImageUploadField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return {
            "type": "string",
            "format": "binary",
            "description": (
                f"An image file: {', '.join(clip_settings.ALLOWED_IMAGE_FORMATS)}; at most "
                f"{clip_settings.MAX_UPLOAD_BYTES} bytes and {clip_settings.MAX_IMAGE_PIXELS} pixels."
            ),
        }


class ErrorDetailsFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "clipcheck.api.serializers.ErrorDetailsField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": {
                "description": "The field's messages (a list), or its items' by position (an object)."
            },
            "example": {"threshold": ["Threshold must be a number between 0 and 1."]},
        }


class BatchItemsFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "clipcheck.api.serializers.BatchItemsField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": clip_settings.BATCH_MAX_ITEMS,
            "description": (
                "Items {image_path, text, threshold?}; image_path is relative to the server's batch "
                "root. An item that is malformed or cannot be read gets its own error entry in "
                "the results; the other items are still analysed."
            ),
            "items": {
                "description": "An object {image_path: string, text: string, threshold?: number}.",
                "example": {"image_path": "products/123.jpg", "text": "red leather handbag"},
            },
        }


class CsrfSessionScheme(SessionScheme):
    """Documents ``CsrfSessionAuthentication`` as the session cookie scheme
    (drf-spectacular's own extension matches only DRF's class)."""

    target_class = "clipcheck.api.authentication.CsrfSessionAuthentication"


def one_of_fields(
    auto_schema: AutoSchema, serializer: Serializer, direction: Direction, fields: Iterable[str], *, exactly_one: bool
) -> dict[str, Any]:
    """A form schema that requires one of ``fields`` (or exactly one), which field flags cannot say."""
    schema = auto_schema._map_basic_serializer(serializer, direction)
    alternatives = [{"required": [name]} for name in fields]
    schema["oneOf" if exactly_one else "anyOf"] = alternatives
    return schema


class EmbedInputSerializerExtension(OpenApiSerializerExtension):
    target_class = "clipcheck.api.serializers.EmbedInputSerializer"

    def map_serializer(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return one_of_fields(auto_schema, self.target, direction, ("text", "file"), exactly_one=False)
