"""Request parsers of the /clip/* endpoints."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with deeply nested documents refused as a 400.

    ``json`` recurses once per nesting level, so a small body such as
    ``[[[[...]]]]`` raises RecursionError, which DRF does not catch.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
