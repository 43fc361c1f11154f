"""The project's Celery app for the distributed audit tests, with one pause.

The first chunk any worker of a test is about to commit waits, with its
model work done and nothing written, until the test kills that worker: the
kill lands mid-chunk at a known point. The marker file (named by
``AUDIT_TEST_PAUSE_MARKER``) then holds the pid of the paused worker's main
process.
"""

import os
import time

from celery.signals import worker_process_init

from clipproject.celery import app

__all__ = ("app",)


@worker_process_init.connect
def pause_the_first_chunk_before_its_commit(**kwargs):
    from listings.audit import local

    marker = os.environ["AUDIT_TEST_PAUSE_MARKER"]
    save = local.audit_chunk_save

    def paused_save(**arguments):
        try:
            claim = os.open(marker + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return save(**arguments)
        os.close(claim)
        with open(marker + ".tmp", "w") as handle:
            handle.write(str(os.getppid()))
        os.replace(marker + ".tmp", marker)
        time.sleep(300)  # killed long before
        return save(**arguments)

    local.audit_chunk_save = paused_save
