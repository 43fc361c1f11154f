"""Django's backup exactly as docs/operations.md prints it, run in-process, and
what a restore must give back.

The commands are read from the "Backups" section of the docs, so the tests
run what an operator copies; ``database_snapshot`` is every row Django backs
up, with foreign keys to content types and permissions by natural key (those
tables are recreated by ``migrate``, not restored).
"""

import datetime
import io
import shlex
from pathlib import Path

from django.apps import apps
from django.core.management import call_command

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BACKUP_FILE = "backup.json.gz"


def documented_commands():
    """The ``python manage.py`` lines of the Backups section, in order, as argument lists."""
    section = DOC.read_text().split("\n## Backups\n", 1)[1].split("\n## ", 1)[0]
    return [shlex.split(line)[2:] for line in section.splitlines() if line.startswith("python manage.py ")]


def backup_and_restore(directory):
    """Take the documented backup, then restore it into the same database; returns the backup's path."""
    path = str(Path(directory) / BACKUP_FILE)
    for name, *arguments in documented_commands():
        arguments = [path if argument == BACKUP_FILE else argument for argument in arguments]
        call_command(name, *arguments, stdout=io.StringIO(), stderr=io.StringIO())
    return path


def _backed_up_models():
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.contrib.sessions.models import Session

    left_out = (ContentType, Permission, Session)
    return [
        model for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy and model not in left_out
    ]


def _natural(instance):
    return instance.natural_key() if hasattr(instance, "natural_key") else instance.pk


def _comparable(instance, field):
    if field.is_relation and field.related_model is not None and field.related_model._meta.app_label in (
        "contenttypes", "auth",
    ) and field.related_model._meta.model_name in ("contenttype", "permission"):
        related = getattr(instance, field.name)
        return None if related is None else _natural(related)
    value = getattr(instance, field.attname)
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="milliseconds")  # Django's JSON keeps milliseconds
    if isinstance(value, memoryview):
        return bytes(value)
    if hasattr(value, "name") and hasattr(value, "storage"):  # a FieldFile: its name is what is stored
        return value.name
    return value


def database_snapshot():
    """``{model label: [row, ...]}`` of every model a backup holds, by primary key, with many-to-many
    relations as sets of the related rows' natural keys."""
    snapshot = {}
    for model in _backed_up_models():
        rows = []
        for instance in model._base_manager.order_by("pk"):
            row = {field.name: _comparable(instance, field) for field in model._meta.concrete_fields}
            for field in model._meta.many_to_many:
                row[field.name] = sorted(map(_natural, getattr(instance, field.name).all()))
            rows.append(row)
        snapshot[model._meta.label] = rows
    return snapshot
