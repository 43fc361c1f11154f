"""Where the tests keep converted and quantised models.

Builds are keyed by the checkpoint's content and the library versions, so
test runs on one machine may share them (a conversion costs seconds).
"""

import os
import tempfile

RUNTIME_CACHE_DIR = os.path.join(tempfile.gettempdir(), "clipcheck-test-runtime")

# The exact modes: answers equal plain transformers float32 within rounding.
EXACT_RUNTIMES = ["torch", "openvino"]
# Every runtime: int8 where its guard passed on the model under test.
RUNTIMES = [*EXACT_RUNTIMES, "openvino-int8"]
