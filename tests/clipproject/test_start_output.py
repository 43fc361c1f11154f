"""What starting prints: the operator's lines, not libraries' notices about code paths we never use."""

import os
import subprocess
import sys

import knownanswer
from tests.support.server import REPO_ROOT

# Printed by transformers while OpenVINO traces the towers, by the progress
# bar of its weight loading, and by the vector check before every command.
NOISE = (
    "is_gradient_checkpointing",
    "FutureWarning",
    "loss_type=None",
    "ForCausalLMLoss",
    "Loading weights",
    "clipcheck.I001",
    "INFOS:",
)


def run(args, tmp_path, **env):
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("CLIPCHECK_", "DATABASE_URL"))},
        "DJANGO_SETTINGS_MODULE": "clipproject.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONPATH": str(REPO_ROOT),
        **env,
    }
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def assert_quiet(output):
    printed = [notice for notice in NOISE if notice in output]
    assert not printed, f"{printed} in:\n{output}"


def test_manage_py_check_prints_no_information_block(tmp_path):
    output = run(["manage.py", "check"], tmp_path)
    assert "System check identified no issues" in output
    assert_quiet(output)


def test_the_vector_information_is_there_when_the_database_is_checked(tmp_path):
    output = run(["manage.py", "check", "--database", "default"], tmp_path)
    assert "clipcheck.I001" in output


def test_starting_the_engine_with_a_fresh_openvino_build_prints_no_library_notices(tmp_path):
    """A fresh runtime cache: the towers are converted (traced) on this start, as on a new machine."""
    start = "import django; django.setup(); from clipcheck.engine import get_engine; print(get_engine().runtime_name)"
    output = run(
        ["-c", start], tmp_path,
        CLIPCHECK_MODEL=str(knownanswer.CHECKPOINT), CLIPCHECK_RUNTIME="openvino", CLIPCHECK_DEVICE="cpu",
        CLIPCHECK_RUNTIME_CACHE_DIR=str(tmp_path / "runtime"),
    )
    assert "Loaded CLIP model" in output and "runtime openvino" in output
    assert_quiet(output)
