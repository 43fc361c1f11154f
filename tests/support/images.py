"""Image bytes for tests."""

import io

from PIL import Image


def image_bytes(format="PNG", size=(64, 48), color=(200, 30, 30), mode="RGB", **save_options):
    """A plain one-colour image encoded as ``format``."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=format, **save_options)
    return buffer.getvalue()
