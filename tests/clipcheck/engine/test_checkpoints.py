"""A checkpoint that is missing or out of reach fails at once, with one sentence
(the reason: for the log, operators and staff; anonymous clients get a generic message)."""

import logging
import re
import socket
import threading

import pytest
from huggingface_hub import constants as hub_constants

from clipcheck.engine import checkpoints, get_engine
from clipcheck.errors import ModelUnavailable

# A hub id no cache holds.
UNCACHED_ID = "clipcheck-tests/never-downloaded"


@pytest.fixture
def model(settings, fresh_engine):
    def use(name):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": name}

    return use


@pytest.fixture
def hub_at(monkeypatch):
    """Points the hub client at ``url``, online, whatever the environment says."""

    def point(url):
        monkeypatch.setattr(hub_constants, "ENDPOINT", url)
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)

    return point


@pytest.fixture
def silent_server():
    """A loopback port that accepts connections and never answers; counts them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []

    def accept():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], accepted
    listener.close()
    for connection in accepted:
        connection.close()


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("name", [
    "/srv/models/no-such-clip", "./models/no-such-clip", "models/a/no-such-clip",
    "models/no-such-clip",  # like a hub id, but models/ is a directory here
])
def test_a_missing_local_directory_says_it_does_not_exist(model, name, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    model(name)
    with pytest.raises(ModelUnavailable) as raised:
        get_engine()
    assert "does not exist" in raised.value.reason
    assert "Repo id" not in raised.value.reason
    # One log line, no traceback.
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and not errors[0].exc_info


def test_an_unreachable_hub_fails_with_one_line_and_no_retries(model, hub_at, silent_server, monkeypatch, caplog):
    port, accepted = silent_server
    hub_at(f"http://127.0.0.1:{port}")
    monkeypatch.setattr(checkpoints, "HUB_PROBE_TIMEOUT_SECONDS", 0.5)
    model(UNCACHED_ID)
    with pytest.raises(ModelUnavailable) as raised:
        get_engine()
    message = raised.value.reason
    assert "cannot be reached" in message and UNCACHED_ID in message and "CLIPCHECK_MODEL" in message
    assert "\n" not in message
    # One request that timed out, not a loop of retries.
    assert len(accepted) == 1
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and not errors[0].exc_info


def test_a_refused_connection_is_reported_the_same_way(model, hub_at):
    hub_at(f"http://127.0.0.1:{closed_port()}")
    model(UNCACHED_ID)
    with pytest.raises(ModelUnavailable) as raised:
        get_engine()
    assert re.search("cannot be reached.*ConnectError", raised.value.reason)


def test_offline_mode_asks_nothing_of_the_network(model, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")

    def no_network(*args, **kwargs):
        raise AssertionError("offline mode made a request")

    monkeypatch.setattr("huggingface_hub.get_hf_file_metadata", no_network)
    model(UNCACHED_ID)
    with pytest.raises(ModelUnavailable) as raised:
        get_engine()
    assert "HF_HUB_OFFLINE is set" in raised.value.reason


def test_a_local_directory_is_loaded_without_the_network(model, tiny_model_dir, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a local checkpoint made a request")

    monkeypatch.setattr("huggingface_hub.get_hf_file_metadata", no_network)
    model(tiny_model_dir)
    assert get_engine().model_name == tiny_model_dir
