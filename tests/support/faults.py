"""Fault injection for servers started by the tests (never installed in production).

``tests.support.server_settings`` installs this app. It wraps the model's
image encoder so that a test can make inference fail or stall by writing to
the file named by ``CLIPCHECK_TEST_FAULT_FILE``:

* ``raise``       the encoder raises RuntimeError;
* ``sleep 2.5``   the encoder stalls 2.5 s (cut short when the file changes),
                  marking ``<file>.busy.<pid>`` while it does;
* ``slow-forward 0.2``  every image forward pass of the runtime takes 0.2 s
                  longer (a deterministic slow model: admission measures it);
* ``stuck-forward 30``  the runtime's image forward itself (on an engine lane,
                  behind the batcher) stalls 30 s, marking ``<file>.busy.<pid>``;
* ``stored 30``   storage stalls 30 s right after writing a file (the window
                  between an upload's image and its transaction), marking
                  ``<file>.busy.<pid>`` the same way;
* empty           normal operation.

Every response also carries ``X-Worker-Pid`` so tests can tell workers apart.
"""

import os
import time
from pathlib import Path

from django.apps import AppConfig

FAULT_FILE_ENV = "CLIPCHECK_TEST_FAULT_FILE"


def current_fault(path):
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def stall(path, fault):
    seconds = float(fault.split()[1])
    busy = Path(f"{path}.busy.{os.getpid()}")
    busy.touch()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and current_fault(path) == fault:
            time.sleep(0.02)
    finally:
        busy.unlink(missing_ok=True)


class FaultInjectionConfig(AppConfig):
    name = "tests.support"
    label = "fault_injection"

    def ready(self):
        fault_file = os.environ.get(FAULT_FILE_ENV)
        if not fault_file:
            return
        from clipcheck.engine.clip import ClipEngine

        path = Path(fault_file)
        encode_images = ClipEngine.encode_images

        def faulty_encode_images(engine, images):
            fault = current_fault(path)
            if fault == "raise":
                raise RuntimeError("injected fault")
            if fault.startswith("sleep "):
                stall(path, fault)
            return encode_images(engine, images)

        ClipEngine.encode_images = faulty_encode_images

        from clipcheck.engine.runtimes import TorchRuntime

        image_features = TorchRuntime.image_features

        def slow_image_features(runtime, pixel_values, **lane):
            fault = current_fault(path)
            if fault.startswith("slow-forward "):
                time.sleep(float(fault.split()[1]))
            if fault.startswith("stuck-forward "):
                stall(path, fault)
            return image_features(runtime, pixel_values, **lane)

        TorchRuntime.image_features = slow_image_features

        from django.core.files.storage import FileSystemStorage

        save = FileSystemStorage._save

        def faulty_save(storage, name, content):
            stored = save(storage, name, content)
            fault = current_fault(path)
            if fault.startswith("stored "):
                stall(path, fault)
            return stored

        FileSystemStorage._save = faulty_save


class WorkerPidMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Worker-Pid"] = str(os.getpid())
        return response
