"""The OpenAPI schema at /api/schema/ and the Swagger UI at /api/docs/."""

import re

import pytest
from django.core.management import call_command

ENDPOINTS = {
    ("/clip/analyze", "post"): {200, 400, 401, 403, 411, 413, 415, 429, 503},
    ("/clip/classify", "post"): {200, 400, 401, 403, 411, 413, 415, 429, 503},
    ("/clip/analyze-batch", "post"): {200, 400, 401, 403, 411, 413, 415, 429, 503},
    ("/clip/categories", "get"): {200, 400, 401, 403, 413, 415, 429, 503},
    ("/clip/health", "get"): {200, 400, 401, 403, 413, 415, 429, 503},
    ("/clip/embed", "post"): {200, 400, 401, 403, 411, 413, 415, 429, 503},
    ("/clip/search", "post"): {200, 400, 401, 403, 411, 413, 415, 429, 503},
    ("/upload", "post"): {201, 400, 401, 403, 411, 413, 415, 422, 429, 503, 507},
    ("/listings/{listing_id}/statements", "get"): {200, 400, 401, 403, 404, 413, 415, 429, 503},
    ("/listings/{listing_id}/appeal", "post"): {201, 400, 401, 403, 404, 409, 411, 413, 415, 429, 503},
}


@pytest.fixture
def openapi(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_valid_and_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3.0")


def test_every_operation_documents_its_responses_and_errors(openapi):
    operations = {
        (path, method): operation
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == set(ENDPOINTS)
    for key, statuses in ENDPOINTS.items():
        responses = operations[key]["responses"]
        assert {int(status) for status in responses} == statuses, key
        for status in statuses - {200, 201, 422}:
            schema = responses[str(status)]["content"]["application/json"]["schema"]
            if key != ("/clip/health", "get") or status != 503:
                assert schema == {"$ref": "#/components/schemas/Error"}, (key, status)
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_the_error_object_is_declared(openapi):
    components = openapi["components"]["schemas"]
    assert components["Error"]["required"] == ["error"]
    assert set(components["ErrorDetail"]["properties"]) == {"code", "message", "detail"}
    assert components["ErrorDetail"]["required"] == ["code", "message"]


def test_uploads_are_multipart_with_binary_files(openapi):
    for path in ("/clip/analyze", "/clip/classify"):
        content = openapi["paths"][path]["post"]["requestBody"]["content"]
        assert list(content) == ["multipart/form-data"]
        name = content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert openapi["components"]["schemas"][name]["properties"]["file"]["format"] == "binary"


def test_limits_in_the_schema_follow_the_settings(client, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_TEXT_LENGTH": 500, "BATCH_MAX_ITEMS": 7}
    openapi = client.get("/api/schema/?format=json").json()
    components = openapi["components"]["schemas"]
    assert components["AnalyzeInputRequest"]["properties"]["text"]["maxLength"] == 500
    assert components["BatchInputRequest"]["properties"]["items"]["maxItems"] == 7


def test_security_follows_the_access_policies(openapi):
    def security(path, method):
        return openapi["paths"][path][method]["security"]

    assert {} in security("/clip/analyze", "post")
    assert {} not in security("/clip/analyze-batch", "post")
    assert {"tokenAuth": []} in security("/clip/analyze-batch", "post")
    assert "clipcheck.run_batch_analysis" in openapi["paths"]["/clip/analyze-batch"]["post"]["description"]


@pytest.mark.django_db
def test_a_deploy_can_make_the_docs_private(client, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"docs": {"anonymous": False}}}
    assert client.get("/api/schema/").status_code == 401
    assert client.get("/api/docs/").status_code == 401


def test_swagger_ui_loads_its_assets_from_this_server(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    local = [asset for asset in assets if "drf_spectacular_sidecar" in asset]
    assert local, html
    assert not [asset for asset in assets if asset.startswith(("http://", "https://", "//"))]
    for asset in local:
        response = client.get(asset)
        assert response.status_code == 200, asset
