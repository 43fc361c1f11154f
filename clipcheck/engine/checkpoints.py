"""Where a checkpoint comes from: a local directory or the Hugging Face hub.

Settled before transformers is asked to load anything, because transformers
answers a hub it cannot reach with about a minute of retries per file, and a
local directory that does not exist with "Repo id must be in the form...".
Here each case is one sentence, within seconds: a missing directory says so;
a hub id that is not cached costs one metadata request (no retries) before
the download, and fails with the reason when the hub cannot be reached.
"""

import os
from pathlib import Path

# One metadata request to the hub, no retries: the server must not block on
# a network it cannot reach.
HUB_PROBE_TIMEOUT_SECONDS = 5.0
HUB_PROBE_FILE = "config.json"


class CheckpointUnavailable(Exception):
    """The checkpoint cannot be found or fetched; the message says why in one sentence."""


def looks_like_path(model_name: str) -> bool:
    """Names only a directory can have: absolute, ``./``, ``~``, more than one ``/``,
    or ``dir/name`` where ``dir`` is a local directory (``models/clip-vit-base-patch32``)."""
    return (
        model_name.startswith(("/", ".", "~"))
        or model_name.count("/") > 1
        or os.sep != "/" and os.sep in model_name
        or "/" in model_name and Path(model_name.split("/", 1)[0]).is_dir()
    )


def checkpoint_source(model_name: str) -> tuple[str, bool]:
    """``(name, local_files_only)`` to hand to ``from_pretrained``.

    Raises ``CheckpointUnavailable`` when ``model_name`` is a directory that
    does not exist, or a hub id that is neither cached nor downloadable now.
    """
    path = Path(model_name).expanduser()
    if path.is_dir():
        return str(path), True
    if looks_like_path(model_name):
        raise CheckpointUnavailable("the directory does not exist.")

    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError

    cached = isinstance(try_to_load_from_cache(model_name, HUB_PROBE_FILE), str)
    if constants.is_offline_mode():
        if cached:
            return model_name, True
        raise CheckpointUnavailable(
            "it is neither a local directory nor in the Hugging Face cache "
            "(HF_HUB_OFFLINE is set, so nothing is downloaded)."
        )
    try:
        get_hf_file_metadata(
            hf_hub_url(model_name, HUB_PROBE_FILE, endpoint=constants.ENDPOINT), timeout=HUB_PROBE_TIMEOUT_SECONDS
        )
    except HfHubHTTPError as exc:
        if cached:
            return model_name, True
        status = exc.response.status_code if exc.response is not None else "?"
        raise CheckpointUnavailable(
            "it is not a local directory, and the Hugging Face hub has no model by that id "
            f"that can be downloaded (HTTP {status})."
        ) from exc
    except Exception as exc:  # any network failure: DNS, refused, timeout, TLS
        if cached:
            return model_name, True
        raise CheckpointUnavailable(
            "it is neither a local directory nor in the Hugging Face cache, and the hub "
            f"({constants.ENDPOINT}) cannot be reached ({exc.__class__.__name__}: {exc}); set CLIPCHECK_MODEL "
            "to a local checkpoint directory."
        ) from exc
    return model_name, False
