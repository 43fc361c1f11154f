"""Hostile input, case by case: every one gets its status and error code, none a 5xx.

Each row sends one request and names the expected status and ``error.code``;
batch rows that fail a single item name that item's ``error.code`` in a 200.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.support import hostile
from tests.support.images import image_bytes
from tests.support.server import multipart
from tests.support.users import user_with_token

MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    send: Callable  # (Context) -> response
    status: int
    code: str | None  # error.code of the response, or of the batch item
    item: bool = False  # code belongs to the first batch result, not the response

    def __str__(self):
        return self.name


class Context:
    def __init__(self, client, batch_root):
        self.client = client
        self.batch_root = batch_root

    def analyze(self, fields=None, file=None, **extra):
        data = {"text": "a red square", **(fields or {})}
        if file is not None:
            data["file"] = file
        return self.client.post("/clip/analyze", data, format="multipart", **extra)

    def upload(self, content, name="photo.png", content_type="image/png", **fields):
        return self.analyze(fields, SimpleUploadedFile(name, content, content_type=content_type))

    def classify(self, **fields):
        return self.client.post(
            "/clip/classify", {"file": png_file(), **fields}, format="multipart"
        )

    def batch_raw(self, body, content_type="application/json"):
        return self.client.generic("POST", "/clip/analyze-batch", body, content_type=content_type)

    def batch(self, items):
        return self.batch_raw(json.dumps({"items": items}))

    def batch_item(self, image_path, text="a red square", **fields):
        return self.batch([{"image_path": image_path, "text": text, **fields}])

    def listing_upload(self, content, name="photo.png", content_type="image/png"):
        data = {"title": "a red square", "description": "a red square", "file": SimpleUploadedFile(
            name, content, content_type=content_type)}
        return self.client.post("/upload", data, format="multipart")

    def multipart_raw(self, path, charset, fields=None):
        """A well-formed multipart body whose Content-Type names ``charset``."""
        body, headers = multipart({"text": "a red square", **(fields or {})},
                                  [("file", "photo.png", image_bytes(), "image/png")])
        return self.client.generic("POST", path, body, content_type=f"{headers['Content-Type']}; charset={charset}")

    def place(self, name, content=None):
        path = self.batch_root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes() if content is None else content)
        return name


def png_file(name="photo.png"):
    return SimpleUploadedFile(name, image_bytes(), content_type="image/png")


def text(value):
    return lambda ctx: ctx.analyze({"text": value}, png_file())


def threshold(value):
    return lambda ctx: ctx.analyze({"threshold": value}, png_file())


def upload(content, **kwargs):
    return lambda ctx: ctx.upload(content() if callable(content) else content, **kwargs)


def many_files(ctx):
    from django.conf import settings

    files = {f"file{index}": png_file(f"{index}.png") for index in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES)}
    return ctx.client.post("/clip/analyze", {"text": "red", "file": png_file(), **files}, format="multipart")


def many_fields(ctx):
    fields = {f"field{index}": "x" for index in range(120)}
    return ctx.analyze(fields, png_file())


def multipart_without_boundary(ctx):
    return ctx.client.generic("POST", "/clip/analyze", b"text=red", content_type="multipart/form-data")


def multipart_garbage(ctx):
    body = b"--xyz\r\nContent-Disposition: form-data; name=\r\n\r\n\x00\xff\r\n--xyz--garbage"
    return ctx.client.generic("POST", "/clip/analyze", body, content_type="multipart/form-data; boundary=xyz")


def symlink_out(ctx):
    os.symlink("/etc/hostname", ctx.batch_root / "escape.png")
    return ctx.batch_item("escape.png")


def symlink_in(ctx):
    ctx.place("real.png")
    os.symlink(ctx.batch_root / "real.png", ctx.batch_root / "alias.png")
    return ctx.batch_item("alias.png")


def symlink_loop(ctx):
    os.symlink(ctx.batch_root / "loop-b", ctx.batch_root / "loop-a")
    os.symlink(ctx.batch_root / "loop-a", ctx.batch_root / "loop-b")
    return ctx.batch_item("loop-a")


def directory(ctx):
    (ctx.batch_root / "folder.png").mkdir()
    return ctx.batch_item("folder.png")


def fifo(ctx):
    os.mkfifo(ctx.batch_root / "pipe.png")
    return ctx.batch_item("pipe.png")


def sparse_large_file(ctx):
    with open(ctx.batch_root / "huge.png", "wb") as handle:
        handle.truncate(11 * MB)
    return ctx.batch_item("huge.png")


def absolute_inside_root(ctx):
    ctx.place("inside.png")
    return ctx.batch_item(str(ctx.batch_root / "inside.png"))


def surrogate_path_beside_a_valid_item(ctx):
    valid = ctx.place("valid.png")
    body = '{"items": [{"image_path": "ok\\ud800.png", "text": "red"}, {"image_path": "%s", "text": "red"}]}' % valid
    response = ctx.batch_raw(body)
    # The valid item is analysed (once) whatever happens to its neighbour.
    assert response.json()["results"][1]["similarity_score"] >= 0
    assert response.json()["results"][0]["image_path"] == "ok\\ud800.png"
    from clipcheck.models import Analysis

    assert Analysis.objects.count() == 1  # stored once, and answered: no retry needed
    return response


def chunked_upload(ctx):
    body, headers = multipart({"text": "red"}, [("file", "photo.png", image_bytes(), "image/png")])
    return ctx.client.generic("POST", "/clip/analyze", body, content_type=headers["Content-Type"],
                              CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")


def multipart_part(disposition, content_type="image/png"):
    """An upload whose file part carries its own parameters (RFC 2231 names, a charset)."""
    def send(ctx):
        boundary = "XyZ"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nred\r\n'
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n"
        ).encode() + image_bytes() + f"\r\n--{boundary}--\r\n".encode()
        return ctx.client.generic("POST", "/clip/analyze", body, content_type=f"multipart/form-data; boundary={boundary}")
    return send


TIFF_FIELD_TYPES = {2: "ASCII", 5: "RATIONAL", 7: "UNDEFINED", 11: "FLOAT"}


def deeply_nested(ctx):
    return ctx.batch_raw('{"items": ' + "[" * 100_000 + "]" * 100_000 + "}")


LONG_CATEGORY_LIST = ",".join(f"{index:03d}-" + "c" * 96 for index in range(99))  # ~10 KB, within limits

CASES = [
    # Sizes
    Case("file over MAX_UPLOAD_BYTES", upload(lambda: b"\x89PNG" + bytes(10 * MB + 1)), 413, "file_too_large"),
    Case("body over MAX_REQUEST_BYTES", upload(lambda: bytes(13 * MB)), 413, "request_too_large"),
    Case("form fields over DATA_UPLOAD_MAX_MEMORY_SIZE", text("x" * (3 * MB)), 413, "request_too_large"),
    Case("malformed Content-Length", lambda ctx: ctx.client.post(
        "/clip/analyze", {"text": "red"}, CONTENT_LENGTH="12abc"), 400, "invalid_content_length"),
    Case("negative Content-Length", lambda ctx: ctx.client.post(
        "/clip/analyze", {"text": "red"}, CONTENT_LENGTH="-1"), 400, "invalid_content_length"),
    Case("more files than DATA_UPLOAD_MAX_NUMBER_FILES", many_files, 400, "too_many_files"),
    Case("more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS", many_fields, 400, "too_many_fields"),
    # Pixel bombs and shapes
    Case("PNG header claiming 50000x50000", upload(hostile.png_claiming(50_000, 50_000)), 413, "image_too_large"),
    Case("PNG header claiming 7000x7000", upload(hostile.png_claiming(7000, 7000)), 413, "image_too_large"),
    Case("GIF header claiming 65535x65535", upload(hostile.gif_claiming(65535, 65535), name="a.gif",
                                                   content_type="image/gif"), 413, "image_too_large"),
    # Small files, big pictures: decoded within the decode budget, reduced
    # before any conversion (the bound is measured in test_decode_memory).
    Case("16-bit grayscale PNG of 40 MP in 86 KB", upload(lambda: hostile.png_16bit_grayscale(6324, 6324)), 200, None),
    Case("palette PNG with transparency of 40 MP in 53 KB", upload(lambda: hostile.png_uniform(
        6324, 6324, color="palette", transparent=True)), 200, None),
    Case("strip 2000x10 (aspect ratio bomb)", upload(lambda: image_bytes(size=(2000, 10))), 400,
         "aspect_ratio_too_large"),
    Case("PNG claiming 0x0", upload(hostile.png_claiming(0, 0)), 400, "corrupt_image"),
    # Truncated and corrupt
    Case("empty file", upload(b""), 400, "empty_file"),
    Case("empty file to /upload", lambda ctx: ctx.listing_upload(b""), 400, "empty_file"),
    Case("empty file in a batch", lambda ctx: ctx.batch_item(ctx.place("empty.png", b"")), 200, "empty_file",
         item=True),
    Case("truncated PNG", upload(lambda: hostile.truncated(image_bytes(size=(128, 128)))), 400, "corrupt_image"),
    Case("truncated JPEG", upload(lambda: hostile.truncated(hostile.noisy_jpeg()), name="a.jpg",
                                  content_type="image/jpeg"), 400, "corrupt_image"),
    Case("PNG with garbage pixel data", upload(hostile.corrupt_png()), 400, "corrupt_image"),
    Case("PNG signature only", upload(b"\x89PNG\r\n\x1a\n"), 400, "corrupt_image"),
    Case("GIF signature only", upload(b"GIF89a", name="a.gif", content_type="image/gif"), 400, "corrupt_image"),
    Case("PNG with a 2 MB zTXt metadata chunk (2 KB on the wire)", upload(lambda: hostile.png_with_text_chunk(
        2_000_000)), 400, "corrupt_image"),
    Case("PNG with a 1 MB tEXt metadata chunk", upload(lambda: hostile.png_with_text_chunk(
        1_000_000, compressed=False)), 200, None),
    # Pillow raises TypeError/OverflowError, not OSError, on these: every
    # decoder exception on untrusted bytes is a corrupt image.
    *[Case(f"TIFF whose StripOffsets claim type {type_name} ({mode}) to {endpoint}",
           lambda ctx, data=lambda mode=mode, field_type=field_type: hostile.tiff_retyped_tag(
               273, field_type, mode), endpoint=endpoint: {
               "analyze": lambda: ctx.upload(data(), name="a.tif", content_type="image/tiff"),
               "classify": lambda: ctx.client.post("/clip/classify", {"file": SimpleUploadedFile(
                   "a.tif", data(), content_type="image/tiff")}, format="multipart"),
               "upload": lambda: ctx.listing_upload(data(), name="a.tif", content_type="image/tiff"),
           }[endpoint](), 400, "corrupt_image")
      for field_type, type_name in TIFF_FIELD_TYPES.items() for mode in ("RGB", "I;16")
      for endpoint in ("analyze", "classify", "upload")],
    Case("batch item a TIFF with retyped StripOffsets", lambda ctx: ctx.batch_item(ctx.place(
        "bad.tif", hostile.tiff_retyped_tag(273, 2, "LA"))), 200, "corrupt_image", item=True),
    # Not images, or images in formats we do not take
    Case("text file named .jpg as image/jpeg", upload(b"hello, world\n" * 10, name="photo.jpg",
                                                      content_type="image/jpeg"), 415, "not_an_image"),
    Case("HTML named .png", upload(b"<html><script>alert(1)</script></html>"), 415, "not_an_image"),
    Case("SVG", upload(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', name="a.svg",
                       content_type="image/svg+xml"), 415, "not_an_image"),
    Case("random bytes", upload(lambda: os.urandom(4096)), 415, "not_an_image"),
    Case("PDF", upload(lambda: hostile.pillow_bytes("PDF"), name="a.pdf", content_type="application/pdf"), 415,
         "not_an_image"),
    Case("EPS", upload(lambda: hostile.pillow_bytes("EPS"), name="a.eps"), 415, "unsupported_format"),
    Case("PSD", upload(hostile.psd_bytes(), name="a.psd"), 415, "unsupported_format"),
    Case("FITS", upload(hostile.fits_bytes(), name="a.fits"), 415, "unsupported_format"),
    Case("ICO", upload(lambda: hostile.pillow_bytes("ICO"), name="favicon.ico"), 415, "unsupported_format"),
    Case("TGA", upload(lambda: hostile.pillow_bytes("TGA"), name="a.tga"), 415, "unsupported_format"),
    Case("PPM", upload(lambda: hostile.pillow_bytes("PPM"), name="a.ppm"), 415, "unsupported_format"),
    # Request shape
    Case("no file", lambda ctx: ctx.analyze(), 400, "missing_file"),
    Case("file sent as a text field", lambda ctx: ctx.analyze({"file": "not a file"}), 400, "invalid_file"),
    Case("JSON body to a multipart endpoint", lambda ctx: ctx.client.post(
        "/clip/analyze", {"text": "red"}, format="json"), 415, "unsupported_media_type"),
    Case("multipart without boundary", multipart_without_boundary, 400, "parse_error"),
    Case("garbled multipart", multipart_garbage, 400, "invalid_request"),
    Case("GET on a POST endpoint", lambda ctx: ctx.client.get("/clip/analyze"), 405, "method_not_allowed"),
    Case("POST /metrics", lambda ctx: ctx.client.post("/metrics", {}), 405, "method_not_allowed"),
    Case("chunked upload without Content-Length", chunked_upload, 411, "length_required"),
    # Charsets Python can name but a form cannot be decoded with.
    *[Case(f"multipart charset={charset} to {path}", lambda ctx, path=path, charset=charset: ctx.multipart_raw(
        path, charset, {"title": "red", "description": "red"}), 415, "unsupported_charset")
      for charset in ("idna", "base64", "rot13", "utf-16", "utf-32", "utf-7", "punycode", "hex", "zlib",
                      "cp037", "no-such-codec")
      for path in ("/clip/analyze", "/clip/classify", "/upload")],
    # A part's own charset names nothing Django decodes with; RFC 2231 names
    # that do not decode make the part unnamed (no file).
    Case("file part filename*=idna''a..b.png", multipart_part(
        "form-data; name=\"file\"; filename*=idna''a..b.png"), 400, "missing_file"),
    Case("file part name*=idna''fi..le", multipart_part(
        "form-data; name*=idna''fi..le; filename=\"a.png\""), 400, "missing_file"),
    Case("file part filename*=base64''a.png", multipart_part(
        "form-data; name=\"file\"; filename*=base64''a.png"), 200, None),
    Case("file part Content-Type charset=idna", multipart_part(
        "form-data; name=\"file\"; filename=\"a.png\"", "image/png; charset=idna"), 200, None),
    Case("urlencoded charset=idna", lambda ctx: ctx.client.generic(
        "POST", "/clip/analyze", b"text=a..b", content_type="application/x-www-form-urlencoded; charset=idna"),
        415, "unsupported_charset"),
    Case("JSON batch charset=idna", lambda ctx: ctx.batch_raw('{"items": []}', "application/json; charset=idna"),
         415, "unsupported_charset"),
    Case("GET with a query string and charset=idna", lambda ctx: ctx.client.generic(
        "GET", "/clip/categories?a=..", content_type="text/plain; charset=idna"), 415, "unsupported_charset"),
    Case("admin login form charset=idna", lambda ctx: ctx.client.generic(
        "POST", "/admin/login/", b"username=a..b", content_type="application/x-www-form-urlencoded; charset=idna"),
        415, "unsupported_charset"),
    Case("multipart charset=UTF-8 (usable)", lambda ctx: ctx.multipart_raw("/clip/analyze", "UTF-8"), 200, None),
    Case("multipart charset=latin-1 (usable)", lambda ctx: ctx.multipart_raw("/clip/analyze", "latin-1"), 200,
         None),
    Case("unknown endpoint", lambda ctx: ctx.client.get("/clip/nothing-here"), 404, "not_found"),
    # Text
    Case("no text", lambda ctx: ctx.client.post("/clip/analyze", {"file": png_file()}, format="multipart"), 400,
         "missing_text"),
    Case("empty text", text(""), 400, "invalid_text"),
    Case("whitespace-only text", text(" \t\r\n\u00a0\u2003 "), 400, "invalid_text"),
    Case("100 KB text", text("lorem ipsum " * 8600), 400, "invalid_text"),
    Case("text with a NUL byte", text("red\x00square"), 400, "invalid_text"),
    Case("text with control characters", text("red\x01\x07\x1b[31m\x7f square\x1f"), 200, None),
    Case("text mixing scripts, RTL marks and emoji",
         text("Красная сумка 红色手提包 حقيبة\u200f 👜 e\u0301 ＲＥＤ"), 200, None),
    Case("text at MAX_TEXT_LENGTH", text("red " * 2500), 200, None),
    # Threshold
    *[Case(f"threshold {value!r}", threshold(value), 400, "invalid_threshold")
      for value in ["NaN", "nan", "inf", "-Infinity", "1e309", "-0.1", "1.5", "abc", "0x1p-2", "1" * 2000]],
    Case("threshold empty means default", threshold(""), 200, None),
    Case("threshold true (form)", threshold("true"), 400, "invalid_threshold"),
    Case("threshold 0", threshold("0"), 200, None),
    # top_k
    *[Case(f"top_k {value!r}", lambda ctx, value=value: ctx.classify(top_k=value), 400, "invalid_top_k")
      for value in ["0", "-3", "1.5", "abc", "1e3", "9" * 2000]],
    # An empty form field is an omitted one (DRF's rule for optional fields).
    Case("top_k empty means default", lambda ctx: ctx.classify(top_k=""), 200, None),
    Case("top_k huge", lambda ctx: ctx.classify(top_k=str(10**40)), 200, None),
    Case("top_k 2.0", lambda ctx: ctx.classify(top_k="2.0"), 200, None),
    # Categories
    Case("categories empty", lambda ctx: ctx.classify(categories=""), 400, "invalid_categories"),
    Case("categories blank", lambda ctx: ctx.classify(categories=" \t "), 400, "invalid_categories"),
    Case("categories over the text length limit", lambda ctx: ctx.classify(categories="a," * 6000), 400,
         "invalid_categories"),
    Case("categories only commas", lambda ctx: ctx.classify(categories=", ,,\t,"), 400, "invalid_categories"),
    Case("categories duplicated", lambda ctx: ctx.classify(categories="shoe, shoe,shoe ,SHOE"), 200, None),
    Case("1000 categories", lambda ctx: ctx.classify(categories=",".join(f"c{i}" for i in range(1000))), 400,
         "invalid_categories"),
    Case("one 10 KB category", lambda ctx: ctx.classify(categories="c" * 10_240), 400, "invalid_categories"),
    Case("10 KB of categories within limits", lambda ctx: ctx.classify(categories=LONG_CATEGORY_LIST), 200, None),
    Case("categories with a NUL byte", lambda ctx: ctx.classify(categories="shoe,\x00"), 400,
         "invalid_categories"),
    Case("categories with format braces", lambda ctx: ctx.classify(categories="{}, {0}, {x.y}, %s"), 200, None),
    # Batch bodies
    Case("batch body not JSON", lambda ctx: ctx.batch_raw("items=1"), 400, "parse_error"),
    Case("batch body JSON with NaN", lambda ctx: ctx.batch_raw('{"items": [NaN]}'), 400, "parse_error"),
    Case("batch body deeply nested", deeply_nested, 400, "parse_error"),
    Case("batch body a list", lambda ctx: ctx.batch_raw("[]"), 400, "invalid_request"),
    Case("batch body a string", lambda ctx: ctx.batch_raw('"items"'), 400, "invalid_request"),
    Case("batch items not a list", lambda ctx: ctx.batch_raw('{"items": "a.png"}'), 400, "invalid_items"),
    Case("batch items empty", lambda ctx: ctx.batch([]), 400, "invalid_items"),
    Case("batch items over BATCH_MAX_ITEMS", lambda ctx: ctx.batch([{"image_path": "a", "text": "b"}] * 257), 400,
         "invalid_items"),
    Case("batch as form data", lambda ctx: ctx.batch_raw("items=a", "application/x-www-form-urlencoded"), 415,
         "unsupported_media_type"),
    # Batch items: the item fails, the request does not
    Case("batch item not an object", lambda ctx: ctx.batch(["a.png"]), 200, "invalid_item", item=True),
    Case("batch item without text", lambda ctx: ctx.batch([{"image_path": ctx.place("a.png")}]), 200,
         "missing_text", item=True),
    Case("batch item without image_path", lambda ctx: ctx.batch([{"text": "red"}]), 200, "missing_image_path",
         item=True),
    Case("batch item path as a list", lambda ctx: ctx.batch_item(["a.png"]), 200, "invalid_image_path", item=True),
    Case("batch item bad threshold", lambda ctx: ctx.batch_item(ctx.place("a.png"), threshold="abc"), 200,
         "invalid_threshold", item=True),
    Case("batch item blank text", lambda ctx: ctx.batch_item(ctx.place("a.png"), text="   "), 200, "invalid_text",
         item=True),
    Case("batch item lone surrogate in text", lambda ctx: ctx.batch_raw(
        '{"items": [{"image_path": "a.png", "text": "\\ud800"}]}'), 200, "invalid_text", item=True),
    Case("batch path with ..", lambda ctx: ctx.batch_item("../../../../etc/hostname"), 200, "path_outside_root",
         item=True),
    Case("batch path .. back inside", lambda ctx: ctx.batch_item(f"../{ctx.batch_root.name}/{ctx.place('a.png')}"),
         200, None, item=True),
    Case("batch absolute path outside root", lambda ctx: ctx.batch_item("/etc/hostname"), 200, "path_outside_root",
         item=True),
    Case("batch absolute path inside root", absolute_inside_root, 200, None, item=True),
    Case("batch path with NUL byte", lambda ctx: ctx.batch_item("a.png\x00.txt"), 200, "invalid_image_path",
         item=True),
    Case("batch path empty", lambda ctx: ctx.batch_item(""), 200, "invalid_image_path", item=True),
    Case("batch path 5000 characters", lambda ctx: ctx.batch_item("a" * 5000), 200, "invalid_image_path", item=True),
    Case("batch path 1 MB", lambda ctx: ctx.batch_item("a/" * 500_000), 200, "invalid_image_path", item=True),
    Case("batch path with a 300-character name", lambda ctx: ctx.batch_item("a" * 300 + ".png"), 200,
         "invalid_path", item=True),
    Case("batch path with a lone surrogate", lambda ctx: ctx.batch_raw(
        '{"items": [{"image_path": "ok\\ud800.png", "text": "red"}]}'), 200, "invalid_image_path", item=True),
    Case("batch path with a lone surrogate beside a valid item", surrogate_path_beside_a_valid_item, 200,
         "invalid_image_path", item=True),
    Case("batch path a lone low surrogate and a list key", lambda ctx: ctx.batch_raw(
        '{"items": [{"image_path": "\\udfff", "text": "red", "\\ud800": 1}]}'), 200, "invalid_image_path",
        item=True),
    Case("batch threshold 1e309", lambda ctx: ctx.batch_raw(
        '{"items": [{"image_path": "%s", "text": "red", "threshold": 1e309}]}' % ctx.place("a.png")), 200,
        "invalid_threshold", item=True),
    Case("batch threshold true", lambda ctx: ctx.batch_item(ctx.place("a.png"), threshold=True), 200,
         "invalid_threshold", item=True),
    Case("batch threshold false", lambda ctx: ctx.batch_item(ctx.place("a.png"), threshold=False), 200,
         "invalid_threshold", item=True),
    Case("batch symlink escaping the root", symlink_out, 200, "path_outside_root", item=True),
    Case("batch symlink inside the root", symlink_in, 200, None, item=True),
    Case("batch symlink loop", symlink_loop, 200, "invalid_path", item=True),
    Case("batch path a directory", directory, 200, "not_a_file", item=True),
    Case("batch path a FIFO", fifo, 200, "not_a_file", item=True),
    Case("batch path missing", lambda ctx: ctx.batch_item("missing.png"), 200, "file_not_found", item=True),
    Case("batch path through a file", lambda ctx: ctx.batch_item(f"{ctx.place('a.png')}/b.png"), 200,
         "file_not_found", item=True),
    Case("batch file not an image", lambda ctx: ctx.batch_item(ctx.place("notes.png", b"plain text")), 200,
         "not_an_image", item=True),
    Case("batch file over MAX_UPLOAD_BYTES", sparse_large_file, 200, "file_too_large", item=True),
    Case("batch file a pixel bomb", lambda ctx: ctx.batch_item(ctx.place("bomb.png", hostile.png_claiming(
        50_000, 50_000))), 200, "image_too_large", item=True),
]


def test_case_names_are_unique():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))


@pytest.fixture
def context(batch_root):
    client = APIClient()
    _, token = user_with_token(permissions=["clipcheck.run_batch_analysis", "listings.add_listing"])
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return Context(client, batch_root)


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_input(context, case):
    response = case.send(context)
    assert response.status_code == case.status, (case.name, response.content[:500])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    if case.item:
        result = body["results"][0]
        assert result.get("error", {}).get("code") == case.code, result
        if case.code is None:
            assert 0.0 <= result["similarity_score"] <= 1.0
    elif case.code is None:
        assert "error" not in body
    else:
        assert body["error"]["code"] == case.code, body
        assert body["error"]["message"]
