"""OpenAPI documentation of POST /clip/search's input (drf-spectacular extensions)."""

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension

from clipcheck.api.schema import one_of_fields
from listings.api.serializers import StatusesField


class SearchInputSerializerExtension(OpenApiSerializerExtension):
    target_class = "listings.api.serializers.SearchInputSerializer"

    def map_serializer(self, auto_schema, direction):
        return one_of_fields(auto_schema, self.target, direction, ("text", "file"), exactly_one=False)


class StatusesFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "listings.api.serializers.StatusesField"

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "string",
            "pattern": StatusesField.pattern,
            "description": "Comma-separated listing statuses to search among (default: all).",
        }
