"""What a storefront developer does with a running ``manage.py clip_demo``: the
printed ``curl`` line, the Python client of docs/client.md as written, and
Swagger UI's pre-filled examples, against the demo itself (the known-answer
model and the demo's settings) with what the demo printed."""

import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from tests.support.runtime import RUNTIME_CACHE_DIR
from tests.support.server import REPO_ROOT, free_port, multipart

pytestmark = pytest.mark.server

CLIENT_GUIDE = REPO_ROOT / "docs" / "client.md"


@dataclass
class RunningDemo:
    url: str
    output: str

    def exports(self):
        """The printed ``export CLIPCHECK_URL=… CLIPCHECK_TOKEN=… CLIPCHECK_PHOTO=…``."""
        line = next(line for line in self.output.splitlines() if line.strip().startswith("export "))
        return dict(word.split("=", 1) for word in shlex.split(line)[1:])

    def curl_line(self):
        return next(line.strip() for line in self.output.splitlines() if line.strip().startswith("curl "))

    def post(self, path, fields, files):
        body, headers = multipart(fields, files)
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def running_demo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {
        **{key: value for key, value in os.environ.items()
           if not key.startswith(("CLIPCHECK_", "DJANGO_", "DATABASE_URL", "CORS_", "LISTINGS_"))},
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",  # the printed lines reach the log before the server starts
        "DJANGO_SETTINGS_MODULE": "clipproject.settings",
        "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
        "DJANGO_MEDIA_ROOT": str(directory / "media"),
        "CLIPCHECK_RUNTIME_CACHE_DIR": RUNTIME_CACHE_DIR,
        "CLIPCHECK_NUM_THREADS": "1",
    }
    log = directory / "clip_demo.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "clip_demo", "--count", "20", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"clip_demo did not serve:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + "/clip/health", timeout=5) as health:
                    if health.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        yield RunningDemo(url=url, output=log.read_text())
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def python_blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def test_the_python_client_of_the_docs_runs_as_written_against_the_demo(running_demo, monkeypatch):
    exports = running_demo.exports()
    assert exports["CLIPCHECK_URL"] == running_demo.url
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    guide = {"__name__": "client_guide"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile("\n".join(python_blocks(CLIENT_GUIDE)), str(CLIENT_GUIDE), "exec"), guide)

    # A right answer and a wrong one, from the known-answer model.
    assert guide["right"]["is_mismatch"] is False and guide["right"]["similarity_score"] > 0.7121
    assert guide["wrong"]["is_mismatch"] is True and guide["wrong"]["reasons"]
    assert guide["classify"](exports["CLIPCHECK_PHOTO"])[0]["category"] == "circle"
    # An upload with the token the demo printed.
    assert guide["listing"]["status"] == "approved" and guide["listing"]["reasons"] == []
    # Errors read through the error shape, as the guide prints them.
    assert printed.getvalue().splitlines()[-2:] == [
        "400 invalid_text text: This field may not be blank.", "401 authentication_failed",
    ]
    ApiError = guide["ApiError"]
    with pytest.raises(ApiError) as refused:
        guide["call"]("/upload", expected=201, data={"title": "A red circle"})  # no token
    assert (refused.value.status, refused.value.code) == (401, "not_authenticated")
    assert refused.value.message and refused.value.body["error"]["code"] == "not_authenticated"


def test_the_printed_curl_line_uploads_as_printed(running_demo):
    result = subprocess.run(running_demo.curl_line(), shell=True, capture_output=True, text=True, timeout=60)
    answer = json.loads(result.stdout)
    assert answer["title_check"]["is_mismatch"] is False and answer["description_check"]["is_mismatch"] is False
    # Approved, or flagged only because an earlier test uploaded the same photo.
    assert {reason["code"] for reason in answer["reasons"]} <= {"photo_reused"}


def test_try_it_out_examples_describe_the_sample_photo(running_demo):
    """Swagger UI pre-fills the demo model's words; with the sample photo the answers are right."""
    with urllib.request.urlopen(running_demo.url + "/api/schema/?format=json", timeout=30) as response:
        schema = json.loads(response.read())
    assert "sneaker" not in json.dumps(schema)

    def examples(name):
        properties = schema["components"]["schemas"][name]["properties"]
        return {field: str(value["example"]) for field, value in properties.items() if "example" in value}

    with open(running_demo.exports()["CLIPCHECK_PHOTO"], "rb") as sample:
        photo = [("file", "red-circle.png", sample.read(), "image/png")]
    analysis = running_demo.post("/clip/analyze", examples("AnalyzeInputRequest"), photo)
    assert analysis["is_mismatch"] is False, analysis
    matches = running_demo.post("/clip/classify", examples("ClassifyInputRequest"), photo)["top_matches"]
    assert matches[0]["category"] == "circle"
