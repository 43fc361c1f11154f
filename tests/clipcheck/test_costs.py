"""What a request may cost the model: bounded per text and per request, refused
over its bound before any model work, and charged to its client's cost rate
(clipcheck.costs, clipcheck.access).

CPU figures are printed (run with -s), never asserted: timings are for
``python -m bench``; the assertions count the work itself.
"""

import random
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from clipcheck.access import EndpointRateThrottle
from clipcheck.costs import Cost, RequestBudget
from clipcheck.errors import RequestTooCostly
from clipcheck.models import Analysis
from tests.support.images import image_bytes
from tests.support.users import user_with_token

pytestmark = pytest.mark.django_db


def rare_script_text(first, last, *, letters=8, length=10_000, seed=3):
    """Words of ``letters`` code points drawn from ``first``..``last``, up to ``length`` characters."""
    draw = random.Random(seed)
    words = ("".join(chr(draw.randrange(first, last)) for _ in range(letters)) for _ in range(length))
    return " ".join(words)[:length]


HIEROGLYPHS = rare_script_text(0x13000, 0x1342F)
EMOJI = rare_script_text(0x1F300, 0x1F5FF)


def photo(colour=(200, 30, 30)):
    return SimpleUploadedFile("photo.png", image_bytes(color=colour), content_type="image/png")


def analyze(client, text, colour=(200, 30, 30), **extra):
    return client.post("/clip/analyze", {"file": photo(colour), "text": text}, format="multipart", **extra)


def cpu_ms(call):
    started = time.process_time()
    result = call()
    return result, (time.process_time() - started) * 1000


@pytest.fixture
def tokenized(monkeypatch):
    """Every text the engine's tokenizer counts, in order."""
    from clipcheck.engine import get_engine

    engine = get_engine()
    counted = []
    count_tokens = engine.count_tokens

    def counting(texts):
        texts = list(texts)
        counted.extend(texts)
        return count_tokens(texts)

    monkeypatch.setattr(engine, "count_tokens", counting)
    return counted


@pytest.fixture
def unthrottled(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"analyze": {"rate": None, "cost_rate": None}}}


class TestCostPerText:
    @pytest.mark.usefixtures("unthrottled")
    def test_a_long_text_of_rare_script_words_costs_what_it_is_charged(self, encoder_calls, tokenized, settings):
        """A 10,000-character text of 8-hieroglyph words: scored as the passages that
        fit MAX_PASSAGES contexts, planned with work bounded by them (it tokenized the
        rest of the text again for every window: 2.4 s of CPU on the demo server)."""
        client = APIClient()
        for warm_up in ("a warm-up text", "a red warm-up"):  # the model, the category prompts, the values
            assert analyze(client, warm_up, colour=(1, 2, 3)).status_code == 200
        figures, characters = {}, {}
        for name, text in (("ordinary", "a red leather handbag"), ("hieroglyphs", HIEROGLYPHS), ("emoji", EMOJI)):
            spent = []
            for offset in range(3):  # new photos and texts: nothing answered from a stored verdict
                tokenized.clear()
                encoder_calls.text_calls.clear()
                response, milliseconds = cpu_ms(
                    lambda text=text[offset:], colour=(offset, 9, 9): analyze(client, text, colour=colour)
                )
                spent.append(milliseconds)
                assert response.status_code == 200, response.content
                answer = response.json()
            figures[name], characters[name] = sorted(spent)[1], sum(map(len, tokenized))
            if name != "ordinary":
                assert answer["text_truncated"] is True and answer["passages"]["count"] == settings.CLIPCHECK.get(
                    "MAX_PASSAGES", 32)
                # Rows encoded: its passages, and at most one rewrite each.
                assert encoder_calls.texts_encoded <= 2 * answer["passages"]["count"]
                # Tokenizing: the whole text twice (does it fit; its sentences), then searches of a context
                # each until MAX_PASSAGES contexts are full (it searched the rest of the text for each window).
                assert characters[name] < 8 * len(text)
        print("\n[request cost] /clip/analyze, worker CPU per request (median of 3): " + ", ".join(
            f"{name} {ms:.0f} ms ({characters[name]} characters tokenized)" for name, ms in figures.items()
        ) + f"; hieroglyphs {figures['hieroglyphs'] / max(figures['ordinary'], 0.1):.0f}x ordinary")


class TestCostPerRequest:
    def test_an_analysis_over_the_request_bound_is_refused_before_any_model_work(self, settings, encoder_calls):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_REQUEST_ROWS": 10}
        client = APIClient()
        long_text = " ".join(f"Sentence {n} about the product." for n in range(40))

        response = analyze(client, long_text)

        assert response.status_code == 413, response.content
        error = response.json()["error"]
        assert error["code"] == "request_too_costly"
        assert error["detail"]["max_rows"] == 10 and error["detail"]["rows"] > 10
        assert "at most 10" in error["message"]
        assert encoder_calls.images_encoded == 0 and encoder_calls.texts_encoded == 0
        assert not Analysis.objects.exists()

    def test_a_batch_over_the_request_bound_is_refused_before_any_file_is_read(self, settings, batch_root, encoder_calls):
        """Eight items of 10,000 rare-script characters cost 18.9 CPU seconds in one request."""
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_REQUEST_ROWS": 100}
        (batch_root / "red.png").write_bytes(image_bytes())
        _, token = user_with_token(permissions=["clipcheck.run_batch_analysis"])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        items = [{"image_path": "red.png", "text": HIEROGLYPHS}] * 8

        response, spent = cpu_ms(lambda: client.post("/clip/analyze-batch", {"items": items}, format="json"))

        assert response.status_code == 413, response.content
        error = response.json()["error"]
        assert error["code"] == "request_too_costly" and error["message"].startswith("This request needs at least")
        assert encoder_calls.images_encoded == 0 and encoder_calls.texts_encoded == 0
        print(f"\n[request cost] analyze-batch of 8 rare-script items over MAX_REQUEST_ROWS 100: refused in {spent:.0f} ms CPU")

    def test_a_batch_within_the_bound_is_charged_every_item(self, settings, batch_root):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_REQUEST_ROWS": 8}
        (batch_root / "red.png").write_bytes(image_bytes())
        _, token = user_with_token(permissions=["clipcheck.run_batch_analysis"])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        items = [{"image_path": "red.png", "text": f"plain words {n}"} for n in range(4)]  # 4 photos + 4 texts

        assert client.post("/clip/analyze-batch", {"items": items}, format="json").status_code == 200
        # A repeated text counts again: its item may need its own rewrites.
        response = client.post("/clip/analyze-batch", {"items": items[:1] * 5}, format="json")
        assert response.status_code == 413 and response.json()["error"]["detail"]["rows"] > 8


def test_a_budget_refuses_over_its_bound_and_charges_within_it():
    charged = []
    budget = RequestBudget(max_rows=5, charge=charged.append)
    budget.admit(Cost(photos=1, passages=2, rewrites=2))
    assert charged == [5]
    with pytest.raises(RequestTooCostly) as refused:
        budget.admit(Cost(photos=1, passages=5))
    assert refused.value.status_code == 413 and refused.value.detail["rows"] == 6
    assert charged == [5]


class TestCostRate:
    """The anonymous throttle charges rows of model work, not only requests."""

    def test_a_client_is_charged_the_rows_its_requests_cost(self, settings, monkeypatch):
        monkeypatch.setattr(EndpointRateThrottle, "timer", lambda self: 1_800_000_000.0 + 15)
        settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"analyze": {"rate": "60/minute", "cost_rate": "10/minute"}}}
        client = APIClient()
        # A photo and a one-passage text: 2 rows each, five of them in a minute.
        statuses = [analyze(client, f"plain words {n}").status_code for n in range(5)]
        refused = analyze(client, "plain words again")
        assert statuses == [200] * 5
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "throttled"
        assert refused["Retry-After"] == "45"
        # Another address has its own allowance; one long text spends all of it at once.
        other = {"REMOTE_ADDR": "10.0.0.9"}
        long_text = " ".join(f"Sentence {n} about the product." for n in range(20))
        assert analyze(client, long_text, **other).status_code == 200
        assert analyze(client, "plain words", **other).status_code == 429

    def test_a_stored_answer_costs_no_rows(self, settings):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"analyze": {"rate": None, "cost_rate": "3/minute"}}}
        client = APIClient()
        assert analyze(client, "plain words").status_code == 200  # 2 rows of 3
        # The same photo and text, answered from the stored verdict: no rows, as often as asked.
        again = [analyze(client, "plain words") for _ in range(5)]
        assert {(response.status_code, response.json()["cached"]) for response in again} == {(200, True)}
        assert analyze(client, "other words").status_code == 200  # 2 more: 4 of 3
        assert analyze(client, "plain words").status_code == 429  # nothing left, stored answers included

    def test_users_are_charged_at_their_own_cost_rate(self, settings):
        settings.CLIPCHECK = {
            **settings.CLIPCHECK, "ACCESS": {"analyze": {"rate": None, "cost_rate": "2/minute", "user_cost_rate": "6/minute"}},
        }
        _, token = user_with_token()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert [analyze(client, f"plain words {n}").status_code for n in range(4)] == [200, 200, 200, 429]

    def test_the_rows_of_a_refused_charge_are_given_back(self, settings, rf):
        from clipcheck.access import COST_KEY_FORMAT, cost_charge, fixed_window_count
        from clipcheck.api.views import AnalyzeView

        settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"analyze": {"cost_rate": "8/minute"}}}
        request = rf.post("/clip/analyze")
        request.user = None
        charge = cost_charge(request, AnalyzeView())
        charge(5)
        charge(5)  # found 3 left: served, overdrawn
        from rest_framework.exceptions import Throttled

        with pytest.raises(Throttled):
            charge(5)  # found none left
        window = int(EndpointRateThrottle().timer() // 60)
        key = COST_KEY_FORMAT % {"scope": "analyze", "ident": "ip-127.0.0.1", "window": window}
        assert fixed_window_count(key, 60, increment=False) == 10


class TestClassifyAndEmbedCosts:
    """Classify and embed are charged to the cost rate too: their rows are photos, texts and the
    prompts of categories outside the configured catalogue."""

    def test_classify_charges_a_photo_and_the_prompts_of_unconfigured_categories(self, settings):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "CATEGORIES": ["shoe", "bag"],
                              "ACCESS": {"classify": {"rate": None, "cost_rate": "6/minute"}}}
        client = APIClient()

        def classify(categories=None):
            data = {"file": SimpleUploadedFile("a.png", image_bytes(), content_type="image/png")}
            if categories:
                data["categories"] = categories
            return client.post("/clip/classify", data, format="multipart")

        assert classify().status_code == 200  # 1 row: the configured prompts are kept
        assert classify("shoe,hat,lamp").status_code == 200  # 1 + 2 rows: 4 of 6
        assert classify("shoe,hat,lamp").status_code == 200  # 3 more: 7 of 6, served
        refused = classify()
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "throttled"

    def test_embed_charges_a_row_per_text_and_photo(self, settings):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"embed": {"rate": None, "cost_rate": "5/minute"}}}
        client = APIClient()
        photo = SimpleUploadedFile("a.png", image_bytes(), content_type="image/png")
        assert client.post("/clip/embed", {"text": ["one", "two", "three"], "file": [photo]},
                           format="multipart").status_code == 200  # 4 of 5
        assert client.post("/clip/embed", {"text": ["four", "five"]}, format="multipart").status_code == 200
        refused = client.post("/clip/embed", {"text": ["six"]}, format="multipart")
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "throttled"
