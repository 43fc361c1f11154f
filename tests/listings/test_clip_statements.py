"""manage.py clip_statements: JSON lines of every restriction's statement, and --submit to a stand-in
Transparency Database on loopback that applies the database's rules (tests/support/transparency_server.py)."""

import io
import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection
from django.db.models import Count
from django.utils import timezone

from listings import review, transparency
from listings.models import ModerationDecision, StatementSubmission
from listings.settings import DEFAULT_STATEMENT_REASON_CODES
from listings.statement_rules import statement_errors
from listings.statements import decision_puid, decision_statement
from listings.transparency import SENDING_STALE_SECONDS, TransparencyApi, statements_submit
from tests.support import transparency_server as stand_in
from tests.support.statements import ACCEPTED_STATEMENT as ACCEPTED
from tests.support.statements import PLANTED, listing_to_review, people, reject, restrictions_seed
from tests.support.transparency_server import TransparencyServer

REVIEW_CODES = list(DEFAULT_STATEMENT_REASON_CODES)
State = StatementSubmission.State


@pytest.fixture
def database():
    with TransparencyServer() as server:
        yield server


@pytest.fixture
def environment(monkeypatch, database):
    monkeypatch.setenv("DSA_TRANSPARENCY_API_URL", database.url)
    monkeypatch.setenv("DSA_TRANSPARENCY_API_TOKEN", database.token)
    return database


@pytest.fixture
def seller_and_moderator(db):
    return people()


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("clip_statements", *args, "--backoff", "0", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def posts(database):
    return [request for request in database.requests if request[0] == "POST"]


def test_output_writes_one_valid_statement_per_restriction_as_json_lines(seller_and_moderator, tmp_path):
    seller, moderator = seller_and_moderator
    decisions = restrictions_seed(seller=seller, moderator=moderator, count=24, reason_codes=REVIEW_CODES)
    reject(listing_to_review(seller=seller), moderator, to_status="approved")  # no restriction
    path = tmp_path / "statements.jsonl"
    _, err = run("--output", str(path))
    lines = path.read_text().splitlines()
    statements = [json.loads(line) for line in lines]
    valid = sum(not statement_errors(statement) for statement in statements)
    leaking = sum(any(item.lower() in line.lower() for item in PLANTED) for line in lines)
    print(f"\nclip_statements --output: {len(statements)} lines for {len(decisions)} restrictions, "
          f"{valid} valid ({100 * valid / len(statements):.1f} %), {leaking} with personal data")
    assert "Wrote 24 statement(s)" in err
    assert valid == len(statements) == 24 and leaking == 0
    assert [statement["puid"] for statement in statements] == [decision_puid(decision) for decision in decisions]
    # The same decisions give the same statements, puids included.
    second = tmp_path / "again.jsonl"
    run("--output", str(second))
    assert second.read_text() == path.read_text()


def test_since_and_until_choose_the_decisions(seller_and_moderator, tmp_path):
    seller, moderator = seller_and_moderator
    old, recent = (reject(listing_to_review(seller=seller), moderator) for _ in range(2))
    ModerationDecision.objects.filter(pk=old.pk).update(decided_at=timezone.now() - timedelta(days=40))
    path = tmp_path / "out.jsonl"
    since = (timezone.now() - timedelta(days=30)).date().isoformat()
    run("--output", str(path), "--since", since)
    assert [json.loads(line)["puid"] for line in path.read_text().splitlines()] == [decision_puid(recent)]
    run("--output", str(path), "--until", since)
    assert [json.loads(line)["puid"] for line in path.read_text().splitlines()] == [
        decision_puid(ModerationDecision.objects.get(pk=old.pk))
    ]
    with pytest.raises(CommandError, match="--since must be before --until"):
        run("--output", str(path), "--since", since, "--until", since)


def test_submit_sends_in_batches_of_100_and_a_second_submit_creates_nothing(seller_and_moderator, environment):
    seller, moderator = seller_and_moderator
    restrictions_seed(seller=seller, moderator=moderator, count=230, reason_codes=REVIEW_CODES)
    out, _ = run("--submit")
    first_posts = len(posts(environment))
    created_first = len(environment.created)
    out_again, _ = run("--submit")
    print(f"\nfirst --submit: {created_first} created in {first_posts} calls; "
          f"second --submit: {len(environment.created) - created_first} created in "
          f"{len(posts(environment)) - first_posts} calls; received {len(environment.received)} puids for "
          f"{len(set(environment.received))} statements")
    assert "230 created" in out
    assert first_posts == 3  # 100 + 100 + 30
    assert len(environment.created) == created_first == 230
    assert len(posts(environment)) == first_posts  # nothing sent again
    assert "0 created, 0 it held already; 230 sent before" in out_again
    assert sorted(environment.received) == sorted(set(environment.received))  # each puid sent once
    rows = StatementSubmission.objects.filter(state=State.CREATED)
    assert rows.count() == 230
    assert {row.uuid for row in rows} == {statement["uuid"] for statement in environment.created.values()}
    assert all(row.submitted_at and row.decision_id for row in rows)


def test_a_puid_the_database_holds_already_counts_as_sent(seller_and_moderator, environment):
    seller, moderator = seller_and_moderator
    decisions = restrictions_seed(seller=seller, moderator=moderator, count=5, reason_codes=REVIEW_CODES)
    # Sent by hand, or by a run whose records were lost.
    api = TransparencyApi(url=environment.url, token=environment.token)
    assert api.statements_post([decision_statement(decisions[1])]).status == 201
    out, _ = run("--submit")
    assert "4 created, 1 it held already" in out
    assert StatementSubmission.objects.get(puid=decision_puid(decisions[1])).state == State.EXISTING
    assert len(environment.created) == 5


def test_transient_failures_are_retried_with_backoff(seller_and_moderator, environment):
    seller, moderator = seller_and_moderator
    restrictions_seed(seller=seller, moderator=moderator, count=3, reason_codes=REVIEW_CODES)
    environment.fail_next(1, status=503)
    environment.drop_next(1)  # the connection closed without an answer
    environment.fail_next(1, status=429)
    out, _ = run("--submit", "--retries", "4")
    assert "3 created" in out
    # Before each retry the database is asked whether it took the batch meanwhile (it had not).
    answered = [(method, status) for method, _, status in environment.requests]
    print(f"\nrequests: {answered}")
    assert [status for method, status in answered if method == "POST"][-1] == 201
    assert answered.count(("GET", 404)) >= 1
    assert len(environment.received) == 3  # the statements reached the database once


def test_an_answer_lost_on_the_way_back_is_not_sent_twice(seller_and_moderator, environment):
    seller, moderator = seller_and_moderator
    restrictions_seed(seller=seller, moderator=moderator, count=4, reason_codes=REVIEW_CODES)
    environment.lose_answers(1)  # created, but the answer is a 503
    out, _ = run("--submit")
    assert "0 created, 4 it held already" in out
    assert len(environment.created) == 4
    assert len(environment.received) == 4  # posted once: the database said it held them
    assert StatementSubmission.objects.filter(state=State.EXISTING).count() == 4


def test_a_database_still_failing_after_the_retries_ends_the_run_and_keeps_nothing_reserved(
    seller_and_moderator, environment,
):
    seller, moderator = seller_and_moderator
    restrictions_seed(seller=seller, moderator=moderator, count=3, reason_codes=REVIEW_CODES)
    environment.fail_next(4, status=502)  # the POST, then the three tries of asking about it
    with pytest.raises(CommandError, match=r"did not answer GET /statement/existing-puid/\S+ after 3 tries "
                                           r"\(last: HTTP 502\)"):
        run("--submit", "--retries", "2")
    # Sent without an answer: the next run asks the database about each before sending it again.
    assert set(StatementSubmission.objects.values_list("state", flat=True)) == {State.UNCONFIRMED}
    asked = sum(method == "GET" for method, _, _ in environment.requests)
    out, _ = run("--submit")
    assert "3 created" in out
    assert sum(method == "GET" for method, _, _ in environment.requests) - asked == 3
    assert len(environment.created) == 3


def test_a_run_that_ends_without_an_answer_leaves_its_statements_for_the_next_to_ask_about(
    seller_and_moderator, environment,
):
    seller, moderator = seller_and_moderator
    restrictions_seed(seller=seller, moderator=moderator, count=3, reason_codes=REVIEW_CODES)
    environment.lose_answers(1)  # created, the answer lost...
    environment.fail_next(3, status=503)  # ...and the database unavailable when asked about it
    with pytest.raises(CommandError, match="did not answer GET /statement/existing-puid/"):
        run("--submit", "--retries", "2")
    assert StatementSubmission.objects.filter(state=State.UNCONFIRMED).count() == 3
    out, _ = run("--submit")
    assert "0 created, 3 it held already" in out
    assert len(environment.received) == 3  # never posted again


@pytest.mark.parametrize(("token", "status"), [("wrong-token", 401), ("forbidden-token", 403)])
def test_a_refused_token_exits_non_zero_with_one_line(seller_and_moderator, environment, monkeypatch, token, status):
    seller, moderator = seller_and_moderator
    restrictions_seed(seller=seller, moderator=moderator, count=2, reason_codes=REVIEW_CODES)
    monkeypatch.setenv("DSA_TRANSPARENCY_API_TOKEN", token)
    with pytest.raises(CommandError) as refused:
        run("--submit")
    message = str(refused.value)
    print(f"\n{message}")
    assert "\n" not in message
    assert message.startswith(f"The Transparency Database refused the token (HTTP {status} from POST ")
    assert message.endswith("check DSA_TRANSPARENCY_API_TOKEN.")
    assert environment.created == {} and StatementSubmission.objects.count() == 0


def test_submit_without_the_environment_says_what_is_missing(db, monkeypatch):
    monkeypatch.delenv("DSA_TRANSPARENCY_API_URL", raising=False)
    monkeypatch.delenv("DSA_TRANSPARENCY_API_TOKEN", raising=False)
    with pytest.raises(CommandError, match="--submit needs DSA_TRANSPARENCY_API_URL and DSA_TRANSPARENCY_API_TOKEN"):
        run("--submit")
    with pytest.raises(CommandError, match="Say what to do"):
        run()


def test_a_statement_the_database_refuses_is_reported_and_the_others_are_created(
    seller_and_moderator, environment, monkeypatch,
):
    seller, moderator = seller_and_moderator
    decisions = restrictions_seed(seller=seller, moderator=moderator, count=4, reason_codes=REVIEW_CODES)
    refused_puid = decision_puid(decisions[2])
    # The database's rules moved on: it refuses what ours still accept.
    stricter = stand_in.statement_errors

    def rules_of_tomorrow(statement):
        if statement.get("puid") == refused_puid:
            return {"category": ["The selected category is invalid."]}
        return stricter(statement)

    monkeypatch.setattr(stand_in, "batch_errors", lambda statements: {
        f"statement_{index}": errors for index, statement in enumerate(statements)
        if (errors := rules_of_tomorrow(statement))
    })
    with pytest.raises(CommandError) as refused:
        run("--submit")
    assert str(refused.value) == (
        f"1 statement(s) were refused; they are sent again by the next run; the first, {refused_puid}: "
        "category: The selected category is invalid."
    )
    assert sorted(environment.created) == sorted(decision_puid(d) for d in decisions if d is not decisions[2])
    assert not StatementSubmission.objects.filter(puid=refused_puid).exists()  # tried again next time


def test_a_young_decision_waits_and_an_undo_meanwhile_sends_nothing(seller_and_moderator, environment, settings):
    seller, moderator = seller_and_moderator
    settings.LISTINGS = {"STATEMENT_SUBMIT_DELAY_SECONDS": 600}
    old = restrictions_seed(seller=seller, moderator=moderator, count=1, reason_codes=REVIEW_CODES)[0]
    young = reject(listing_to_review(seller=seller), moderator)
    out, _ = run("--submit")
    assert "1 created" in out and "1 waiting until they are 10 minutes old" in out
    review.review_undo(moderator=moderator)  # undoes the young rejection
    ModerationDecision.objects.filter(pk=young.pk).update(decided_at=timezone.now() - timedelta(hours=1))
    out, _ = run("--submit")
    assert "0 created" in out and "0 waiting" in out
    assert list(environment.created) == [decision_puid(old)]


def test_a_statement_sent_before_its_decision_was_undone_is_reported(seller_and_moderator, environment, settings):
    seller, moderator = seller_and_moderator
    settings.LISTINGS = {"STATEMENT_SUBMIT_DELAY_SECONDS": 0}
    reject(listing_to_review(seller=seller), moderator)
    run("--submit")
    review.review_undo(moderator=moderator)
    out, _ = run("--submit")
    assert "1 statement(s) in the database are for decisions undone since" in out


def test_a_reservation_left_by_a_run_that_died_is_taken_over_after_asking_the_database(
    seller_and_moderator, environment,
):
    seller, moderator = seller_and_moderator
    decisions = restrictions_seed(seller=seller, moderator=moderator, count=3, reason_codes=REVIEW_CODES)
    stale = timezone.now() - timedelta(seconds=SENDING_STALE_SECONDS + 60)
    api = TransparencyApi(url=environment.url, token=environment.token)
    # Run A died after the database created decision 0's statement, before recording it;
    # and before sending decision 1's. A fresh reservation (decision 2) belongs to a live run.
    api.statements_post([decision_statement(decisions[0])])
    for decision, reserved_at in ((decisions[0], stale), (decisions[1], stale), (decisions[2], timezone.now())):
        StatementSubmission.objects.create(puid=decision_puid(decision), decision=decision, run="run-a",
                                           reserved_at=reserved_at)
    out, _ = run("--submit")
    assert "1 created, 1 it held already" in out and "1 being sent by another run" in out
    assert StatementSubmission.objects.get(puid=decision_puid(decisions[0])).state == State.EXISTING
    assert StatementSubmission.objects.get(puid=decision_puid(decisions[1])).state == State.CREATED
    assert StatementSubmission.objects.get(puid=decision_puid(decisions[2])).run == "run-a"
    assert environment.received.count(decision_puid(decisions[0])) == 1  # asked, not sent again


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_the_same_moment_send_each_statement_once(environment, monkeypatch):
    seller, moderator = people()
    restrictions_seed(seller=seller, moderator=moderator, count=450, reason_codes=REVIEW_CODES)
    environment.answer_delay = 0.3  # each run is still sending when the other reserves
    api = TransparencyApi(url=environment.url, token=environment.token, backoff=0)
    barrier = threading.Barrier(2)
    locked = [0, 0]

    def submit(index):
        try:
            barrier.wait()
            for attempt in range(200):
                try:
                    statements_submit(api=api, run=f"run-{index}-{attempt}")
                    return
                except OperationalError:  # SQLite: "database is locked"; run again, as cron would
                    locked[index] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # What a run left unanswered, or held when SQLite refused its last write, a later run settles.
    left = dict(StatementSubmission.objects.exclude(state__in=[State.CREATED, State.EXISTING])
                .values_list("state").annotate(count=Count("id")))
    monkeypatch.setattr(transparency, "SENDING_STALE_SECONDS", 0)  # an hour later
    statements_submit(api=api, run="later")
    sent_by = [
        StatementSubmission.objects.filter(run__startswith=f"run-{index}-", state__in=[State.CREATED, State.EXISTING])
        .count() for index in (0, 1)
    ]
    print(f"\ntwo runs at once: {sent_by[0]} + {sent_by[1]} recorded as sent ({sum(locked)} reruns after a "
          f"locked database; left for a later run: {left or 'none'}), {len(environment.received)} puids posted for "
          f"{len(environment.created)} statements")
    assert all(sent_by)  # both runs sent some: they overlapped
    assert StatementSubmission.objects.filter(state__in=[State.CREATED, State.EXISTING]).count() == 450
    assert len(environment.created) == 450
    assert len(environment.received) == 450  # not one posted twice


def test_compliance_officers_read_the_submissions_in_the_admin(seller_and_moderator, environment, admin_client):
    seller, moderator = seller_and_moderator
    decision = restrictions_seed(seller=seller, moderator=moderator, count=1, reason_codes=REVIEW_CODES)[0]
    run("--submit")
    submission = StatementSubmission.objects.get()
    listing_page = admin_client.get("/admin/listings/statementsubmission/")
    assert listing_page.status_code == 200 and decision_puid(decision) in listing_page.content.decode()
    page = admin_client.get(f"/admin/listings/statementsubmission/{submission.pk}/change/")
    assert page.status_code == 200 and submission.uuid in page.content.decode()
    assert admin_client.post(f"/admin/listings/statementsubmission/{submission.pk}/delete/").status_code == 403


def test_the_stand_in_answers_as_the_database_does(database):
    """The stand-in's answers, shaped as the database's controllers and exceptions shape them."""
    def call(method, path, body=None, token=database.token):
        request = urllib.request.Request(
            database.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,), {
            "redirect_request": lambda *args, **kwargs: None}))
        try:
            with opener.open(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, created = call("POST", "/api/v1/statement", ACCEPTED)
    assert status == 201 and created["puid"] == ACCEPTED["puid"] and created["uuid"]
    assert call("POST", "/api/v1/statement", ACCEPTED) == (422, {
        "message": "The identifier given is not unique within this platform.",
        "errors": {"puid": ["The identifier given is not unique within this platform."]},
        "existing": {"puid": ACCEPTED["puid"]},
    })
    status, refused = call("POST", "/api/v1/statement", {**ACCEPTED, "puid": "other", "category": "X"})
    assert status == 422 and refused["errors"] == {"category": ["The selected category is invalid."]}
    assert call("GET", f"/api/v1/statement/existing-puid/{ACCEPTED['puid']}")[0] == 302
    assert call("GET", "/api/v1/statement/existing-puid/unknown")[0] == 404
    batch = [{**ACCEPTED, "puid": f"b-{index}"} for index in range(3)]
    status, body = call("POST", "/api/v1/statements", {"statements": batch + [batch[0]]})
    assert status == 422 and body["errors"]["existing_puids"] == ["b-0"]
    status, body = call("POST", "/api/v1/statements", {"statements": batch + [{**ACCEPTED, "puid": "b-9", "content_date": "9"}]})
    assert status == 422 and list(body["errors"]) == ["statement_3"]
    assert call("POST", "/api/v1/statements", {"statements": [dict(batch[0]) for _ in range(101)]})[0] == 422
    status, body = call("POST", "/api/v1/statements", {"statements": batch})
    assert status == 201 and [item["puid"] for item in body["statements"]] == ["b-0", "b-1", "b-2"]
    assert call("POST", "/api/v1/statements", {"statements": batch}, token="nope") == (401, {"message": "Unauthenticated."})
    assert call("POST", "/api/v1/statements", {"statements": batch}, token=database.forbidden_token)[0] == 403
