"""Content hashes: what stored analyses, embeddings and checks are keyed by.

All SHA-256 hex digests. Stored rows carry these values, so changing how any
of them is computed orphans every cached verdict and embedding.
"""

import hashlib
import json


def content_hash(data: bytes) -> str:
    """Of raw bytes (an image file as uploaded or stored)."""
    return hashlib.sha256(data).hexdigest()


def text_hash(text: str) -> str:
    """Of one text, UTF-8 encoded."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def texts_hash(*texts: str) -> str:
    """Of several texts together; JSON keeps ("a b", "c") apart from ("a", "b c")."""
    return text_hash(json.dumps(list(texts)))
