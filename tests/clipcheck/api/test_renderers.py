"""Responses always encode: a lone surrogate echoed from a request is escaped, not a 500."""

import json

from clipcheck.api.renderers import EncodableJSONRenderer


def test_lone_surrogates_are_escaped():
    body = EncodableJSONRenderer().render({"image_path": "ok\ud800.png", "text": "Grüße 👜"})
    assert json.loads(body) == {"image_path": "ok\ud800.png", "text": "Grüße 👜"}
    assert b"\\ud800" in body


def test_ordinary_responses_stay_utf8():
    body = EncodableJSONRenderer().render({"text": "Grüße 👜"})
    assert body.decode("utf-8") == '{"text":"Grüße 👜"}'
