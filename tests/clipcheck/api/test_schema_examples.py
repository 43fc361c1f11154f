"""Swagger UI's "Try it out" pre-fills each field from the schema's example:
every example is a valid value, and together they give a sensible request."""

import re

import pytest
from rest_framework.test import APIClient

from tests.support.images import image_bytes

pytestmark = pytest.mark.django_db

MULTIPART_OPERATIONS = [("/clip/analyze", "post"), ("/clip/classify", "post"), ("/upload", "post")]


@pytest.fixture
def openapi(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def request_schema(openapi, path, method):
    content = openapi["paths"][path][method]["requestBody"]["content"]["multipart/form-data"]["schema"]
    name = content["$ref"].rsplit("/", 1)[-1]
    return openapi["components"]["schemas"][name]


def assert_example_fits(name, schema):
    example = schema["example"]
    if schema.get("type") == "string":
        assert isinstance(example, str), name
        if "pattern" in schema:
            assert re.search(schema["pattern"], example), name
        assert schema.get("minLength", 0) <= len(example) <= schema.get("maxLength", 10**9), name
    elif schema.get("type") in ("number", "integer"):
        assert isinstance(example, (int, float)) and not isinstance(example, bool), name
        assert schema.get("minimum", -1e300) <= example <= schema.get("maximum", 1e300), name


@pytest.mark.parametrize("path, method", MULTIPART_OPERATIONS)
def test_every_form_field_has_a_valid_example(openapi, path, method):
    schema = request_schema(openapi, path, method)
    for name, field in schema["properties"].items():
        if "binary" in (field.get("format"), field.get("items", {}).get("format")):
            continue  # the files are the user's to choose
        assert "example" in field, f"{path} {name} has no example"
        assert_example_fits(f"{path} {name}", field)


def test_the_threshold_example_is_the_configured_threshold_not_the_maximum(openapi, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 0.31}
    schema = request_schema(APIClient().get("/api/schema/?format=json").json(), "/clip/analyze", "post")
    threshold = schema["properties"]["threshold"]
    assert threshold["example"] == 0.31
    assert "Absent" in threshold["description"]


def test_the_text_example_reads_like_a_product(openapi):
    text = request_schema(openapi, "/clip/analyze", "post")["properties"]["text"]["example"]
    assert re.fullmatch(r"[a-z ]+", text) and len(text.split()) >= 2


def test_the_examples_speak_of_the_configured_model_not_of_sneakers(settings):
    """The known-answer demo knows six shapes: "Try it out" asks about them, never about sneakers."""
    from knownanswer import domain

    settings.CLIPCHECK = {**settings.CLIPCHECK, "CATEGORIES": list(domain.SHAPES), "PROMPT_TEMPLATE": "a photo of a {}"}
    response = APIClient().get("/api/schema/?format=json")
    assert "sneaker" not in response.content.decode().lower()
    openapi = response.json()
    analyze = request_schema(openapi, "/clip/analyze", "post")["properties"]
    classify = request_schema(openapi, "/clip/classify", "post")["properties"]
    upload = request_schema(openapi, "/upload", "post")["properties"]
    assert analyze["text"]["example"] == "red circle"  # a caption the model learnt (docs/known_answer.md)
    assert analyze["category"]["example"] == upload["category"]["example"] == "circle"
    assert classify["categories"]["example"] == "circle,square,triangle"
    assert upload["title"]["example"] == "Red circle"


RESPONSE_OPERATIONS = [("/clip/analyze", "post"), ("/clip/classify", "post"), ("/upload", "post")]
COMPOSED = ("$ref", "allOf", "oneOf", "anyOf", "enum")


def free_form_schemas(openapi, schema, where, seen=()):
    """Where a response schema says nothing of its content, so that Swagger UI
    invents "additionalProp1": an object without properties, or no type at all,
    and no example to show instead."""
    if "example" in schema:
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from free_form_schemas(openapi, openapi["components"]["schemas"][name], name, (*seen, name))
        return
    untyped = "type" not in schema and not any(key in schema for key in COMPOSED)
    if untyped or (schema.get("type") == "object" and "properties" not in schema):
        yield where
    for name, child in schema.get("properties", {}).items():
        yield from free_form_schemas(openapi, child, f"{where}.{name}", seen)
    for key in ("allOf", "oneOf", "anyOf"):
        for child in schema.get(key, ()):
            yield from free_form_schemas(openapi, child, where, seen)
    if isinstance(schema.get("items"), dict):
        yield from free_form_schemas(openapi, schema["items"], f"{where}[]", seen)


@pytest.mark.parametrize("path, method", RESPONSE_OPERATIONS)
def test_every_response_field_has_a_typed_schema(openapi, path, method):
    """No additionalProp1 in Swagger UI's example answers: dicts have serializers of their own."""
    for status, response in openapi["paths"][path][method]["responses"].items():
        for content in response.get("content", {}).values():
            assert list(free_form_schemas(openapi, content["schema"], f"{path} {status}")) == []


@pytest.mark.parametrize("path", ["/clip/analyze", "/clip/classify"])
def test_the_examples_as_sent_by_try_it_out_are_accepted(openapi, path):
    schema = request_schema(openapi, path, "post")
    fields = {name: field["example"] for name, field in schema["properties"].items() if "example" in field}
    response = APIClient().post(path, {**fields, "file": _photo()}, format="multipart")
    assert response.status_code == 200, response.content
    if path == "/clip/analyze":
        assert response.json()["threshold_used"] == fields["threshold"]
    else:
        assert len(response.json()["top_matches"]) == fields["top_k"]


def _photo():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("photo.png", image_bytes(), content_type="image/png")


def test_the_category_schema_refuses_nul_characters_as_the_api_does(openapi):
    category = request_schema(openapi, "/clip/analyze", "post")["properties"]["category"]
    pattern = category["oneOf"][0]["pattern"]
    assert re.search(pattern, "sneakers") and not re.search(pattern, "snea\x00kers")
    response = APIClient().post("/clip/analyze", {"file": _photo(), "text": "red sneakers", "category": "snea\x00kers"},
                                format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_category"


def request_text_properties(openapi):
    """(path, method, field, schema) of every free-text string a request body takes."""
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                reference = content["schema"].get("$ref")
                if not reference:
                    continue
                schema = openapi["components"]["schemas"][reference.rsplit("/", 1)[-1]]
                for field, prop in schema.get("properties", {}).items():
                    string = prop.get("oneOf", [prop])[0]
                    if string.get("type") == "string" and "format" not in string and "enum" not in string:
                        yield path, method, field, string


@pytest.mark.django_db
def test_every_request_text_schema_refuses_nul_characters_as_the_api_does(openapi, log_in_with):
    # DRF refuses NUL in every CharField; a schema without the pattern lets a
    # client (or a schema fuzzer) send schema-valid text that gets a 400.
    fields = list(request_text_properties(openapi))
    assert {(path, field) for path, _, field, _ in fields} >= {
        ("/clip/analyze", "category"), ("/clip/search", "category"), ("/upload", "category"),
    }
    for path, method, field, schema in fields:
        assert "pattern" in schema and not re.search(schema["pattern"], "a\x00b"), (path, method, field)
    # What the schemas say, the API does: NUL, and whitespace only where blank is refused.
    search = dict(((path, field), schema) for path, _, field, schema in fields)[("/clip/search", "category")]
    assert not re.search(search["pattern"], "\r") and re.search(search["pattern"], " shoes ")
    searcher = log_in_with("listings.view_listing")
    for category in ("snea\x00kers", "\r"):
        response = searcher.post("/clip/search", {"text": "red sneakers", "category": category})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_category"
