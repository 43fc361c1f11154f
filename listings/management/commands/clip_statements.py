"""manage.py clip_statements: statements of reasons for the DSA Transparency Database.

``--output FILE`` writes one statement per restriction as JSON lines (``-``:
standard output); ``--submit`` sends those not sent yet to the database at
``DSA_TRANSPARENCY_API_URL`` with the token ``DSA_TRANSPARENCY_API_TOKEN``.
The statements are built by ``listings.statements``, checked against the
database's rules (``listings.statement_rules``) and sent by
``listings.transparency``; docs/compliance.md says what each field holds and
how to schedule it (daily).
"""

import json
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clipcheck.paging import keyset_pages
from listings.management.options import day_or_time, non_negative_int
from listings.settings import listings_settings
from listings.statement_rules import statement_errors
from listings.statements import decision_statement, restriction_decisions
from listings.transparency import TransparencyApi, TransparencyError, statements_submit, submitted_then_undone

URL_VARIABLE = "DSA_TRANSPARENCY_API_URL"
TOKEN_VARIABLE = "DSA_TRANSPARENCY_API_TOKEN"
PAGE_SIZE = 500


class Command(BaseCommand):
    help = (
        "Statements of reasons for every restriction (each moderator's rejection): write them as JSON lines "
        f"(--output) and/or send the unsent ones to the DSA Transparency Database (--submit, {URL_VARIABLE} and "
        f"{TOKEN_VARIABLE} from the environment)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", metavar="FILE", help="Write the statements as JSON lines ('-': standard output).")
        parser.add_argument("--submit", action="store_true", help="Send the statements not sent yet (at most 100 a call).")
        parser.add_argument("--since", type=day_or_time, help="Only decisions from this date or time (UTC).")
        parser.add_argument("--until", type=day_or_time, help="Only decisions before this date or time (UTC).")
        parser.add_argument("--retries", type=non_negative_int, default=5,
                            help="Tries after a transient failure (connection, 429, 5xx), each after twice the "
                                 "wait of the one before (default 5).")
        parser.add_argument("--backoff", type=float, default=2.0,
                            help="Seconds before the first retry (default 2).")

    def handle(
        self, *args: Any, output: str | None = None, submit: bool = False, since: datetime | None = None,
        until: datetime | None = None, retries: int = 5, backoff: float = 2.0, **options: Any,
    ) -> None:
        if not output and not submit:
            raise CommandError("Say what to do: --output FILE, --submit, or both.")
        if since and until and since >= until:
            raise CommandError("--since must be before --until.")
        api = _api(retries=retries, backoff=backoff) if submit else None
        if output:
            self._write(output, since=since, until=until)
        if submit:
            assert api is not None  # made above when submitting
            self._submit(api, since=since, until=until)

    def _write(self, output: str, *, since: datetime | None, until: datetime | None) -> None:
        written = 0
        invalid: dict[str, Any] = {}
        stream = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")
        try:
            for page in keyset_pages(restriction_decisions(since=since, until=until), page_size=PAGE_SIZE):
                for decision in page:
                    statement = decision_statement(decision)
                    errors = statement_errors(statement)
                    if errors:
                        invalid[statement["puid"]] = errors
                        continue
                    stream.write(json.dumps(statement, ensure_ascii=False) + "\n")
                    written += 1
        finally:
            if stream is not sys.stdout:
                stream.close()
        destination = "standard output" if output == "-" else output
        self.stderr.write(f"Wrote {written} statement(s) of reasons to {destination}.")
        if invalid:
            raise CommandError(_refused_line(invalid, "break the Transparency Database's rules and were not written"))

    def _submit(self, api: TransparencyApi, *, since: datetime | None, until: datetime | None) -> None:
        try:
            summary = statements_submit(api=api, since=since, until=until)
        except TransparencyError as error:
            raise CommandError(str(error)) from None
        delay_minutes = listings_settings.STATEMENT_SUBMIT_DELAY_SECONDS / 60
        self.stdout.write(
            f"Sent to the Transparency Database: {summary.created} created, {summary.existing} it held already; "
            f"{summary.sent_before} sent before, {summary.held_elsewhere} being sent by another run, "
            f"{summary.held_back} waiting until they are {delay_minutes:g} minutes old."
        )
        undone = submitted_then_undone()
        if undone:
            self.stdout.write(
                f"{undone} statement(s) in the database are for decisions undone since: the database cannot "
                "withdraw them (docs/compliance.md)."
            )
        if summary.refused:
            raise CommandError(_refused_line(summary.refused, "were refused; they are sent again by the next run"))


def _api(*, retries: int, backoff: float) -> TransparencyApi:
    url, token = os.environ.get(URL_VARIABLE, "").strip(), os.environ.get(TOKEN_VARIABLE, "").strip()
    missing = [name for name, value in ((URL_VARIABLE, url), (TOKEN_VARIABLE, token)) if not value]
    if missing:
        raise CommandError(f"--submit needs {' and '.join(missing)} in the environment (docs/compliance.md).")
    return TransparencyApi(url=url, token=token, retries=retries, backoff=max(backoff, 0.0))


def _refused_line(refused: Mapping[str, Any], what: str) -> str:
    first_puid, first_errors = next(iter(refused.items()))
    field, messages = next(iter(first_errors.items()))
    message = messages[0] if isinstance(messages, list) and messages else messages
    return f"{len(refused)} statement(s) {what}; the first, {first_puid}: {field}: {message}"
