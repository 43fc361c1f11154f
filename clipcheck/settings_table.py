"""Settings declared once: each app's table of keys.

An app declares its namespaced settings dict (``CLIPCHECK``, ``LISTINGS``) as
one ``SettingsTable``: per key its default, its kind (what a valid value is,
how the environment's text is read), the system check that reports a bad
value, the environment variable that overrides it and one line for the docs.
From the table come the app's defaults (``AppSettings``), its per-key system
checks, the project's environment parsing and the tables of
docs/configuration.md; a test keeps the docs equal to the rendering::

    DJANGO_SETTINGS_MODULE=clipproject.settings python -m clipcheck.settings_table --write docs/configuration.md

Each check id is one rule, declared once (``Check``): a key's kind, applied to
the keys that name the id, or a check written as a function in the app's
``checks`` module. An id is never given to another rule; a rule that moves
to a new id says which one it had (``formerly``).

This module is the ground floor of the settings: it imports nothing of the
apps, so both apps' tables and the project's settings module can use it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Info, Warning

# ---------------------------------------------------------------------------
# Validators: is a value of this kind? Shared by every app's table.


def is_number(value: object) -> bool:
    """An int or float, not a bool, finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_fraction(value: object) -> bool:
    return is_number(value) and 0 <= value <= 1  # type: ignore[operator]


def is_positive_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_non_blank_string(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def is_path(value: object) -> bool:
    return isinstance(value, (str, Path)) and bool(str(value).strip())


def is_directory_or_unset(value: object) -> bool:
    return not value or (isinstance(value, (str, Path)) and Path(value).is_dir())


def is_cache_alias(value: object) -> bool:
    return isinstance(value, str) and value in django_settings.CACHES


def is_seconds(value: object) -> bool:
    """A number of seconds from 0 below 10^9 (about 31 years)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9


# "N/second|minute|hour|day": the unit's first letter counts.
RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: object) -> tuple[int, int]:
    """``"60/minute"`` → ``(60, 60)``: requests allowed per period in seconds.

    Raises ``ValueError`` for anything else.
    """
    count, _, period = str(rate).partition("/")
    period = period.strip().lower()
    if not period or period[0] not in RATE_PERIODS or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"{rate!r} is not a rate like '60/minute'.")
    return int(count), RATE_PERIODS[period[0]]


def is_rate(value: object) -> bool:
    try:
        parse_rate(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# Reading a value from the environment. A text a parser refuses (ValueError)
# is kept as it is, so that the system check names it instead of the settings
# module failing at import.


@dataclass(frozen=True)
class Parser:
    parse: Callable[[str], Any]
    doc: str  # how the text is read, for the environment table
    reads_empty: bool = False  # an empty variable is a value (else: not set)


def parse_flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def parse_number_text(text: str) -> float | str:
    """Digits with at most one point → a float; anything else stays text (its check names it)."""
    stripped = text.strip()
    return float(stripped) if stripped.replace(".", "", 1).isdigit() else stripped


INTEGER = Parser(int, "a whole number")
NUMBER = Parser(float, "a number")
TEXT = Parser(str, "text")
LOWER_TEXT = Parser(lambda text: text.strip().lower(), "text, trimmed and lower-cased")
DECIMAL = Parser(parse_number_text, "digits with at most one point")
FLAG = Parser(parse_flag, "`1`, `true`, `yes`, `on` (any case): True; anything else, empty too: False", reads_empty=True)
NOT_READ = Parser(str, "")  # kinds that no environment variable sets


# ---------------------------------------------------------------------------
# Kinds: what a valid value is, the sentence a check says about a bad one.


@dataclass(frozen=True)
class Kind:
    """A kind of value.

    ``message`` is the check's sentence, formatted with ``name`` ("CLIPCHECK
    THRESHOLD"), ``value``, ``text`` (the value as a string) and ``none``
    ("None or " where the key takes None). ``valid`` None: the app's checks
    module judges the value in a function (it needs other keys).
    """

    name: str  # the docs' "kind" column
    valid: Callable[[Any], bool] | None
    message: str
    parser: Parser = NOT_READ
    family: str = ""  # kinds that differ only in a bound share it: one check id may report them all

    @property
    def rule(self) -> str:
        return self.family or self.name


def positive_integer(maximum: int | None = None) -> Kind:
    if maximum is None:
        return Kind("positive integer", is_positive_integer, "{name} {value!r} must be {none}a positive integer.",
                    INTEGER)
    return Kind(
        f"positive integer ≤ {maximum}", lambda value: is_positive_integer(value) and value <= maximum,
        f"{{name}} {{value!r}} must be {{none}}a whole number from 1 to {maximum}.", INTEGER, "positive integer",
    )


def number(minimum: float, *, inclusive: bool = True) -> Kind:
    def valid(value: object) -> bool:
        return is_number(value) and (value > minimum or (inclusive and value == minimum))  # type: ignore[operator]

    relation = "at least" if inclusive else "greater than"
    return Kind(f"number {'≥' if inclusive else '>'} {minimum}", valid,
                f"{{name}} {{value!r}} must be {{none}}a number {relation} {minimum}.", NUMBER, "bounded number")


def fraction(*, open_interval: bool = False) -> Kind:
    if open_interval:
        return Kind("number in (0, 1)", lambda value: is_fraction(value) and 0 < value < 1,
                    "{name} {value!r} must be {none}a number strictly between 0 and 1.", NUMBER, "fraction")
    return Kind("number in [0, 1]", is_fraction, "{name} {value!r} must be {none}a number between 0 and 1.", NUMBER,
                "fraction")


SECONDS = Kind("seconds ≥ 0", is_seconds, "{name} {value!r} must be {none}a number of seconds.", DECIMAL)
RATE = Kind("rate", is_rate, "{name} {value!r} must be {none}a rate like '20/minute'.", TEXT)
PATH = Kind("path", is_path, "{name} must be {none}a directory path.", TEXT)
DIRECTORY = Kind("directory", is_directory_or_unset, "{name} {text!r} is not an existing directory.", TEXT)
CACHE_ALIAS = Kind("cache alias", is_cache_alias, "{name} {value!r} is not an alias in settings.CACHES.", TEXT)
# A secret: the message never repeats the value.
SECRET = Kind("text", is_non_blank_string, "{name} must be {none}a non-empty string.", TEXT)
BOOLEAN = Kind("`True` or `False`", lambda value: value in (True, False), "{name} must be {none}True or False.", FLAG)
# Kinds no check judges (any value works, or the code that reads it converts it).
ANY_TEXT = Kind("text", None, "", TEXT)
ANY_FLAG = Kind("`True` or `False`", None, "", FLAG)
ANY_INTEGER = Kind("integer", None, "", INTEGER)


def choice(*choices: str, normalise: Callable[[Any], Any] = lambda value: value) -> Kind:
    """One of ``choices`` (after ``normalise``): the message says the value is not valid, the hint lists them."""
    return Kind("one of " + ", ".join(f"`{option}`" for option in choices),
                lambda value: normalise(value) in choices, "{name} {value!r} is not valid.", TEXT)


def structure(name: str, valid: Callable[[Any], bool] | None, message: str = "") -> Kind:
    """A dict or list judged as a whole (no environment variable sets it)."""
    return Kind(name, valid, message)


# ---------------------------------------------------------------------------
# Declarations.


@dataclass(frozen=True)
class Check:
    """One check id and the one rule it reports."""

    id: str  # "clipcheck.E004"
    about: str  # what it reports, one line for the docs
    keys: tuple[str, ...] = ()  # keys a function check reads (a kind's keys are found in the table)
    formerly: str = ""  # the id this rule had before it got its own

    @property
    def level(self) -> str:
        return {"E": "error", "W": "warning", "I": "information"}[self.id.rpartition(".")[2][0]]


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    kind: Kind
    doc: str  # one line for docs/configuration.md (Markdown)
    check: str | None = None  # the id that reports a value its kind refuses; None: not checked
    env: str | None = None  # the environment variable that overrides it
    parser: Parser | None = None  # how the environment's text is read, when not as the kind reads it
    none: bool = False  # None is a valid value (the feature off, or "decide for me")
    env_none: bool = False  # "none" (any case) in the environment is None
    message: str | None = None  # the check's sentence, when the kind's is not precise enough
    hint: str | None = None
    shown_default: str | None = None  # the docs' default, for values too long to print (Markdown)

    def is_valid(self, value: object) -> bool:
        if self.kind.valid is None:
            return True
        return (self.none and value is None) or self.kind.valid(value)

    def check_message(self, table_name: str, value: object) -> CheckMessage | None:
        if self.check is None or self.is_valid(value):
            return None
        template = self.message or self.kind.message
        text = template.format(name=f"{table_name} {self.key}", value=value, text=str(value),
                               none="None or " if self.none else "")
        return LEVELS[self.check.rpartition(".")[2][0]](text, hint=self.hint, id=self.check)

    def parse_environ(self, raw: str) -> Any:
        if self.env_none and raw.strip().lower() == "none":
            return None
        try:
            return self.env_parser.parse(raw)
        except ValueError:
            return raw

    @property
    def env_parser(self) -> Parser:
        return self.parser or self.kind.parser


LEVELS: dict[str, Callable[..., CheckMessage]] = {"E": Error, "W": Warning, "I": Info}


@dataclass(frozen=True)
class SettingsTable:
    """An app's settings dict, declared: ``name`` (the Django setting), its keys and its check ids."""

    name: str
    settings: tuple[Setting, ...]
    checks: tuple[Check, ...]
    reader: str = ""  # where code reads it, for the docs ("clipcheck.settings.clip_settings")

    def __post_init__(self) -> None:
        problems = table_problems(self)
        if problems:
            raise ValueError(f"{self.name} settings table: " + "; ".join(problems))

    def defaults(self) -> dict[str, Any]:
        return {setting.key: setting.default for setting in self.settings}

    def setting(self, key: str) -> Setting:
        return next(setting for setting in self.settings if setting.key == key)

    def check(self, check_id: str) -> Check:
        return next(check for check in self.checks if check.id == check_id)

    def keys_of(self, check: Check) -> tuple[str, ...]:
        return check.keys or tuple(setting.key for setting in self.settings if setting.check == check.id)

    def check_messages(self, values: object, keys: Iterable[str] | None = None) -> list[CheckMessage]:
        """The messages of the keys' checks (every key's by default) for ``values`` (an ``AppSettings``), in table order."""
        wanted = None if keys is None else set(keys)
        messages = []
        for setting in self.settings:
            if wanted is not None and setting.key not in wanted:
                continue
            message = setting.check_message(self.name, getattr(values, setting.key))
            if message is not None:
                messages.append(message)
        return messages

    def environ_overrides(self, environ: Mapping[str, str]) -> dict[str, Any]:
        """The values its environment variables set; a variable that is unset or empty sets nothing."""
        overrides = {}
        for setting in self.settings:
            if setting.env is None or setting.env not in environ:
                continue
            raw = environ[setting.env]
            if raw == "" and not setting.env_parser.reads_empty:
                continue
            overrides[setting.key] = setting.parse_environ(raw)
        return overrides


def table_problems(table: SettingsTable) -> list[str]:
    """What makes ``table`` inconsistent: duplicates, undeclared ids, an id reporting two kinds."""
    problems = []
    keys = [setting.key for setting in table.settings]
    ids = [check.id for check in table.checks]
    for name, values in (("key", keys), ("check id", ids)):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            problems.append(f"{name}s declared twice: {', '.join(repeated)}")
    for check_id in ids:
        if not re.fullmatch(rf"{re.escape(table.name.lower())}\.[EWI]\d{{3}}", check_id):
            problems.append(f"{check_id} is not an id of {table.name.lower()} (app.E001)")
    kinds_by_id: dict[str, set[str]] = {}
    for setting in table.settings:
        if setting.check is None:
            continue
        if setting.check not in ids:
            problems.append(f"{setting.key}'s check {setting.check} is not declared")
        kinds_by_id.setdefault(setting.check, set()).add(setting.kind.rule)
    for check_id, kinds in sorted(kinds_by_id.items()):
        if len(kinds) > 1:
            problems.append(f"{check_id} reports values of different kinds ({', '.join(sorted(kinds))}): one rule per id")
    return problems


def unknown_settings_errors(settings_object: Any, *, error_id: str) -> list[CheckMessage]:
    """An error naming keys of an ``AppSettings`` dict that its defaults lack (a typo)."""
    unknown = sorted(set(settings_object.user_settings) - set(settings_object.defaults))
    if not unknown:
        return []
    return [Error(
        f"Unknown {settings_object.setting_name} settings: {', '.join(unknown)}.",
        hint=f"Valid keys: {', '.join(sorted(settings_object.defaults))}.",
        id=error_id,
    )]


# ---------------------------------------------------------------------------
# The tables of the project's installed apps (each app registers its own).

_TABLES: dict[str, SettingsTable] = {}


def settings_table_register(table: SettingsTable) -> SettingsTable:
    _TABLES[table.name] = table
    return table


def settings_tables() -> list[SettingsTable]:
    return list(_TABLES.values())


# ---------------------------------------------------------------------------
# docs/configuration.md's tables.


def literal(value: Any) -> str:
    """A value as Python source, strings in double quotes (as the docs write them)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(key)}: {literal(item)}" for key, item in value.items()) + "}"
    return repr(value)


MB = 1024 * 1024


def shown_default(setting: Setting) -> str:
    if setting.shown_default is not None:
        return setting.shown_default
    value = setting.default
    shown = f"`{literal(value)}`"
    if isinstance(value, int) and not isinstance(value, bool) and value >= MB and value % MB == 0:
        shown += f" ({value // MB} MB)"
    return shown


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def short_id(check_id: str) -> str:
    return check_id.rpartition(".")[2]


def settings_markdown(table: SettingsTable) -> str:
    rows = ["| key | default | kind | check | environment | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for setting in table.settings:
        kind = setting.kind.name
        if setting.none:
            kind += (", or `None`" if " or " in kind else " or `None`")
        check = f"`{short_id(setting.check)}`" if setting.check else "—"
        env = f"`{setting.env}`" if setting.env else "—"
        rows.append("| " + " | ".join(cell(part) for part in (
            f"`{setting.key}`", shown_default(setting), kind, check, env, setting.doc)) + " |")
    return "\n".join(rows)


def environment_markdown(tables: Iterable[SettingsTable]) -> str:
    rows = ["| variable | sets | read as |", "| --- | --- | --- |"]
    for table in tables:
        for setting in table.settings:
            if setting.env is None:
                continue
            read = setting.env_parser.doc + ("; `none` (any case): `None`" if setting.env_none else "")
            rows.append("| " + " | ".join(cell(part) for part in (
                f"`{setting.env}`", f'`{table.name}["{setting.key}"]`', read)) + " |")
    return "\n".join(rows)


def checks_markdown(tables: Iterable[SettingsTable]) -> str:
    rows = ["| id | level | reports | keys |", "| --- | --- | --- | --- |"]
    for table in tables:
        for check in sorted(table.checks, key=lambda check: ("EWI".index(short_id(check.id)[0]), check.id)):
            about = check.about + (f" (was `{check.formerly}`)" if check.formerly else "")
            keys = ", ".join(f"`{key}`" for key in table.keys_of(check)) or "—"
            rows.append("| " + " | ".join(cell(part) for part in (f"`{check.id}`", check.level, about, keys)) + " |")
    return "\n".join(rows)


def markdown_blocks(tables: Iterable[SettingsTable] | None = None) -> dict[str, str]:
    """Each generated table of docs/configuration.md by its block name."""
    tables = list(settings_tables() if tables is None else tables)
    blocks = {f"{table.name} settings": settings_markdown(table) for table in tables}
    blocks["environment"] = environment_markdown(tables)
    blocks["checks"] = checks_markdown(tables)
    return blocks


# A generated block: its opening comment, its lines (no HTML comment among them), its closing comment.
BLOCK = re.compile(r"^(<!-- generated: (?P<name>.+?) -->\n)(?P<body>(?:(?!<!--).*\n)*?)(<!-- end generated -->)$", re.M)


def documented_blocks(text: str) -> dict[str, str]:
    """The generated blocks found in a Markdown page, by name (without their last newline)."""
    return {match["name"]: match["body"].removesuffix("\n") for match in BLOCK.finditer(text)}


def rewrite_blocks(text: str, blocks: Mapping[str, str]) -> str:
    """``text`` with each generated block replaced by its rendering."""

    def replace(match: re.Match[str]) -> str:
        body = blocks[match["name"]] + "\n" if match["name"] in blocks else match["body"]
        return match[1] + body + match[4]

    return BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> None:
    import argparse

    import django

    parser = argparse.ArgumentParser(description="Render the declared settings tables as Markdown.")
    parser.add_argument("--write", metavar="PAGE", help="rewrite the generated blocks of this Markdown page")
    args = parser.parse_args(argv)
    django.setup()
    # The apps registered their tables with the imported module, not with this
    # one when it runs as __main__.
    from clipcheck.settings_table import markdown_blocks as registered_blocks

    blocks = registered_blocks()
    if args.write:
        page = Path(args.write)
        page.write_text(rewrite_blocks(page.read_text(), blocks))
        return
    for name, body in blocks.items():
        print(f"<!-- generated: {name} -->\n{body}\n<!-- end generated -->\n")


if __name__ == "__main__":
    main()
