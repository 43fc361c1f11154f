"""Sending statements of reasons to the DSA Transparency Database (``manage.py clip_statements --submit``).

``TransparencyApi`` speaks the database's API (``POST /api/v1/statements``
with ``{"statements": [...]}``, at most 100 per call;
``GET /api/v1/statement/existing-puid/{puid}``; ``Authorization: Bearer``):
transient failures (connection errors, timeouts, 429 and 5xx) are retried
with exponential backoff, a batch only once the database said it does not
hold it (it creates a batch whole or not at all, so its first puid tells);
a refused token (401, 403) raises ``TokenRefused``.

``statements_submit`` sends every restriction's statement that was not sent
yet, and never one twice:

- a statement is sent once its decision is ``STATEMENT_SUBMIT_DELAY_SECONDS``
  old (an undo made meanwhile sends nothing);
- each puid is reserved first: a ``StatementSubmission`` row in state
  ``sending`` with this run's id (its puid is unique), so a second run at the
  same moment skips what the first holds; a reservation left by a run that
  died is taken over after ``SENDING_STALE_SECONDS``, and the database is
  asked whether it holds that puid before it is sent again;
- accepted statements become ``created`` (with the database's uuid); a
  puid the database already holds (422 ``existing_puids``/``existing``)
  counts as sent (``existing``); a statement the database refuses is
  released, reported and tried again by the next run;
- a failure that ends the run (token refused, database unavailable after
  the retries) releases this run's reservations; what it sent without an
  answer (the database may have created it) is left ``unconfirmed``, and
  the next run asks the database about each before sending it again.
"""

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from typing import Any, cast
from urllib.parse import quote

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clipcheck.paging import keyset_pages
from listings.models import ModerationDecision, StatementSubmission
from listings.settings import listings_settings
from listings.statement_rules import max_batch, statement_errors
from listings.statements import decision_puid, decision_statement, restriction_decisions

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REFUSED_TOKEN_STATUSES = frozenset({401, 403})
SENDING_STALE_SECONDS = 3600
MAX_BACKOFF_SECONDS = 300
State = StatementSubmission.State


class TransparencyError(Exception):
    """The run cannot go on; the message is one line for the operator."""


class TokenRefused(TransparencyError):
    pass


class DatabaseUnavailable(TransparencyError):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # existing-puid answers 302 Found for a known puid: that is the answer, not a place to go.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class TransparencyApi:
    """The database's API at ``url`` (its root or its ``/api/v1``), with a bearer ``token``."""

    url: str
    token: str
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 2.0
    sleep: Callable[[float], object] = time.sleep

    def __post_init__(self) -> None:
        root = self.url.rstrip("/")
        self.base = root if root.endswith(API_PREFIX) else root + API_PREFIX
        self._opener = urllib.request.build_opener(_NoRedirects)

    def statements_post(self, statements: Sequence[dict[str, Any]]) -> Answer:
        """``POST /statements``: the ``Answer`` (201, or 422 with the database's errors).

        After a transient failure the database is asked whether it holds the first puid before the
        batch is sent again: it creates a batch whole or not at all, so if it does, the batch was
        created and the answer lost, and the answer is the database's own for puids it holds
        (422 ``existing_puids``)."""
        puids = [statement["puid"] for statement in statements]

        def created_meanwhile() -> Answer | None:
            if self.puid_exists(puids[0]):
                return Answer(422, {"errors": {"existing_puids": puids}})
            return None

        return self._request("POST", "/statements", {"statements": statements}, settled=created_meanwhile)

    def puid_exists(self, puid: str) -> bool:
        """Whether the database holds a statement with ``puid`` (302 Found) or not (404)."""
        answer = self._request("GET", f"/statement/existing-puid/{quote(puid, safe='')}", None, accept=(302, 404))
        return answer.status == 302

    def _request(
        self, method: str, path: str, payload: dict[str, Any] | None, *, accept: Collection[int] = (201, 422),
        settled: Callable[[], Answer | None] | None = None,
    ) -> Answer:
        """The ``Answer`` of ``method path``; a transient failure is retried after a backoff, unless
        ``settled()`` (asked first) returns the answer it stands for."""
        url = self.base + path
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            status, body, retry_after, failure = self._once(method, url, data, headers)
            if status in REFUSED_TOKEN_STATUSES:
                raise TokenRefused(
                    f"The Transparency Database refused the token (HTTP {status} from {method} {url}): "
                    "check DSA_TRANSPARENCY_API_TOKEN."
                )
            if status in accept:
                assert status is not None  # a failure has no status; ``accept`` holds statuses
                return Answer(status, body)
            if failure is None and status not in TRANSIENT_STATUSES:
                raise TransparencyError(
                    f"The Transparency Database answered HTTP {status} to {method} {url}: {_message(body)}"
                )
            failure = failure or f"HTTP {status}"
            if settled is not None and (answer := settled()) is not None:
                return answer
            if attempt >= self.retries:
                raise DatabaseUnavailable(
                    f"The Transparency Database at {self.base} did not answer {method} {path} after "
                    f"{attempt + 1} tries (last: {failure}); nothing more was sent, run again later."
                )
            wait = retry_after if retry_after is not None else self.backoff * 2 ** attempt
            logger.warning("Transparency Database: %s; try %s of %s in %.1f s.", failure, attempt + 2,
                           self.retries + 1, wait)
            self.sleep(min(wait, MAX_BACKOFF_SECONDS))
            attempt += 1

    def _once(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int | None, dict[str, Any], float | None, str | None]:
        """``(status, body, retry_after seconds or None, failure or None)`` of one request."""
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, _json(response.read()), None, None
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _json(error.read()), _retry_after(error.headers), None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error
            return None, {}, None, f"{type(error).__name__}: {reason}"


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}
    return body if isinstance(body, dict) else {"body": body}


def _retry_after(headers: Message) -> float | None:
    try:
        return max(float(headers.get("Retry-After")), 0.0)  # type: ignore[arg-type]  # None: TypeError
    except (TypeError, ValueError):
        return None


def _message(body: Mapping[str, Any]) -> str:
    return str(body.get("message") or body.get("errors") or body)[:300]


@dataclass
class SubmitSummary:
    created: int = 0
    existing: int = 0
    sent_before: int = 0
    held_back: int = 0  # decisions younger than STATEMENT_SUBMIT_DELAY_SECONDS
    held_elsewhere: int = 0  # reserved by another run now
    refused: dict[str, Any] = field(default_factory=dict)  # puid -> {field: [message]} (ours or the database's)


def statements_submit(
    *, api: TransparencyApi, since: datetime | None = None, until: datetime | None = None,
    now: datetime | None = None, run: str | None = None,
) -> SubmitSummary:
    """Send the statements of restrictions decided in [since, until) that were not sent yet; a ``SubmitSummary``.

    Raises ``TokenRefused``, ``DatabaseUnavailable`` or ``TransparencyError``; what this run reserved is
    released then, and what it sent without an answer is left ``unconfirmed`` for the next run to ask about."""
    now = now or timezone.now()
    submission = _Submission(api=api, run=run or uuid.uuid4().hex)
    restrictions = restriction_decisions(since=since, until=until)
    cutoff = now - timedelta(seconds=listings_settings.STATEMENT_SUBMIT_DELAY_SECONDS)
    submission.summary.held_back = restrictions.filter(decided_at__gt=cutoff).count()
    try:
        for page in keyset_pages(restrictions.filter(decided_at__lte=cutoff), page_size=max_batch()):
            submission.page_submit(page)
    finally:
        submission.release()
    return submission.summary


@dataclass
class _Submission:
    """One run of ``statements_submit``: its id, what it posted, what came of it."""

    api: TransparencyApi
    run: str
    summary: SubmitSummary = field(default_factory=SubmitSummary)
    posted: set[str] = field(default_factory=set)

    def page_submit(self, page: Iterable[ModerationDecision]) -> None:
        statements, decisions = {}, {}
        for decision in page:
            puid = decision_puid(decision)
            decisions[puid] = decision
            statements[puid] = decision_statement(decision)
        sent = set(
            StatementSubmission.objects.filter(puid__in=statements, state__in=[State.CREATED, State.EXISTING])
            .values_list("puid", flat=True)
        )
        self.summary.sent_before += len(sent)
        unsent = []
        for puid in statements:
            errors = {} if puid in sent else statement_errors(statements[puid])
            if errors:
                self.summary.refused[puid] = errors
            elif puid not in sent:
                unsent.append(puid)
        held, taken_over = self.reserve(puids=unsent, statements=statements, decisions=decisions)
        self.summary.held_elsewhere += len(unsent) - len(held)
        # Sent before by a run that did not hear the answer, or died: the database may hold them.
        confirmed = sorted(puid for puid in taken_over if self.api.puid_exists(puid))
        self.mark(puids=confirmed, state=State.EXISTING)
        self.summary.existing += len(confirmed)
        self.send([puid for puid in unsent if puid in held and puid not in confirmed], statements)

    def reserve(
        self, *, puids: Sequence[str], statements: Mapping[str, dict[str, Any]],
        decisions: Mapping[str, ModerationDecision],
    ) -> tuple[set[str], set[str]]:
        """Reserve ``puids`` for this run; ``(held, taken_over)``: the puids it now holds, and those of
        them another run had sent without an answer or left reserved for too long."""
        if not puids:
            return set(), set()
        now = timezone.now()
        StatementSubmission.objects.bulk_create([
            StatementSubmission(
                puid=puid, decision=decisions[puid], run=self.run, reserved_at=now, statement=statements[puid],
            )
            for puid in puids
        ], ignore_conflicts=True)
        orphaned = StatementSubmission.objects.filter(puid__in=puids).filter(
            Q(state=State.UNCONFIRMED)
            | Q(state=State.SENDING, reserved_at__lt=now - timedelta(seconds=SENDING_STALE_SECONDS))
        ).exclude(run=self.run)
        taken_over = set()
        for row in orphaned:
            # One conditional UPDATE per row: of two runs taking it over, one wins.
            if StatementSubmission.objects.filter(pk=row.pk, run=row.run, state=row.state).update(
                run=self.run, state=State.SENDING, reserved_at=now, statement=statements[row.puid],
            ):
                taken_over.add(row.puid)
        held = set(
            StatementSubmission.objects.filter(puid__in=puids, run=self.run, state=State.SENDING)
            .values_list("puid", flat=True)
        )
        return held, taken_over

    def mark(self, *, puids: Iterable[str], state: Any, uuids: Mapping[str | None, str] | None = None) -> None:
        """``state``: a ``StatementSubmission.State`` member (``Any``: without Django's stubs mypy reads
        choices members as their (value, label) tuples)."""
        now = timezone.now()
        with transaction.atomic():
            for puid in puids:
                StatementSubmission.objects.filter(puid=puid, run=self.run, state=State.SENDING).update(
                    state=state, submitted_at=now, uuid=(uuids or {}).get(puid, ""),
                )

    def send(self, pending: list[str], statements: Mapping[str, dict[str, Any]]) -> None:
        """Post ``pending`` (reserved by this run) until the database created or holds each one, or refused it."""
        while pending:
            self.posted.update(pending)
            try:
                answer = self.api.statements_post([statements[puid] for puid in pending])
            except DatabaseUnavailable:
                raise  # it may have created them before failing: unconfirmed
            except TransparencyError:
                self.posted -= set(pending)  # refused before anything was created
                raise
            if answer.status == 201:
                self.created(pending, answer.body)
                return
            errors = (
                cast(dict[str, Any], answer.body.get("errors")) if isinstance(answer.body.get("errors"), dict) else {}
            )
            existing = _existing_puids(answer.body, errors) & set(pending)
            if existing:
                self.mark(puids=sorted(existing), state=State.EXISTING)
                self.summary.existing += len(existing)
                pending = [puid for puid in pending if puid not in existing]
                continue
            refused = _refused_puids(errors, pending)
            if not refused:
                raise TransparencyError(
                    f"The Transparency Database refused a batch of {len(pending)}: {_message(answer.body)}"
                )
            self.refused(refused)
            pending = [puid for puid in pending if puid not in refused]

    def created(self, pending: list[str], body: dict[str, Any]) -> None:
        uuids = {
            item.get("puid"): str(item.get("uuid", ""))
            for item in body.get("statements", []) if isinstance(item, dict)
        }
        self.mark(puids=pending, state=State.CREATED, uuids=uuids)
        self.summary.created += len(pending)

    def refused(self, refused: Mapping[str, Any]) -> None:
        # Refused, so not created: released, and tried again by the next run.
        StatementSubmission.objects.filter(puid__in=list(refused), run=self.run, state=State.SENDING).delete()
        self.posted -= set(refused)
        self.summary.refused.update(refused)

    def release(self) -> None:
        """At the end of the run: what it posted without an answer is ``unconfirmed``, the rest it held is freed."""
        mine = StatementSubmission.objects.filter(run=self.run, state=State.SENDING)
        mine.filter(puid__in=list(self.posted)).update(state=State.UNCONFIRMED)
        mine.delete()


def _existing_puids(body: Mapping[str, Any], errors: Mapping[str, Any]) -> set[str]:
    """The puids a 422 says the database holds already (``existing_puids``, or one ``existing``)."""
    existing = set(errors.get("existing_puids") or [])
    if isinstance(body.get("existing"), dict):
        existing.add(body["existing"].get("puid"))
    return existing


def _refused_puids(errors: Mapping[str, Any], pending: Sequence[str]) -> dict[str, Any]:
    """``{puid: messages}`` of the statements a 422 refused (its ``statement_<index>`` errors)."""
    refused = {}
    for key, messages in errors.items():
        index = key.removeprefix("statement_")
        if key.startswith("statement_") and index.isdigit() and int(index) < len(pending):
            refused[pending[int(index)]] = messages
    return refused


def submitted_then_undone() -> int:
    """How many statements the database holds for decisions undone since (it has no way to withdraw them)."""
    return StatementSubmission.objects.filter(
        state__in=[State.CREATED, State.EXISTING], decision__undone_at__isnull=False,
    ).count()
