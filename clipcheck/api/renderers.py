"""Response renderers of the API."""

from rest_framework.renderers import JSONRenderer


class EncodableJSONRenderer(JSONRenderer):
    """DRF's JSON renderer, whose output always encodes.

    DRF writes UTF-8, and a lone surrogate (``"\\ud800"``, valid in a JSON
    request, not in UTF-8) echoed back in a message or field would make the
    response fail after the work it reports was stored. Such a response is
    written with ``\\uXXXX`` escapes instead, which every JSON parser reads.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            self.ensure_ascii = True  # this instance serves this response only
            return super().render(data, accepted_media_type, renderer_context)
