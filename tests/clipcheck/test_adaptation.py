"""The adaptation's arithmetic (clipcheck.adaptation) and its serving state (clipcheck.services.adaptations)."""

import time

import numpy as np
import pytest

from clipcheck import adaptation
from clipcheck.adaptation import CategoryHead, HeldOut
from clipcheck.models import Adaptation
from clipcheck.services import adaptations


def clusters(count_per_class, centres, *, seed=0, spread=0.15):
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for label, centre in enumerate(centres):
        points = centre + spread * rng.standard_normal((count_per_class, len(centre)))
        rows.append(points / np.linalg.norm(points, axis=1, keepdims=True))
        labels += [label] * count_per_class
    return np.concatenate(rows), np.array(labels)


CENTRES = np.eye(8)[:4]


class TestSplits:
    def test_the_held_out_part_is_a_quarter_of_each_label_and_the_same_in_any_order(self):
        keys = list(range(200))
        labels = [key % 4 for key in keys]
        held_out = adaptation.stratified_held_out(keys, labels)
        assert all(np.sum(held_out[np.array(labels) == label]) == round(0.25 * 50) for label in range(4))
        reordered = adaptation.stratified_held_out(keys[::-1], labels[::-1])
        assert {key for key, out in zip(keys, held_out) if out} == {key for key, out in zip(keys[::-1], reordered) if out}

    def test_folds_deal_each_label_evenly(self):
        numbers = adaptation.fold_numbers(list(range(40)), [key % 2 for key in range(40)])
        assert sorted(np.bincount(numbers)) == [10, 10, 10, 10]


class TestFigures:
    def test_auroc_of_perfect_reversed_and_tied_scores(self):
        applies = np.array([True, True, False, False])
        assert adaptation.auroc(np.array([0.9, 0.8, 0.2, 0.1]), applies) == 1.0
        assert adaptation.auroc(np.array([0.1, 0.2, 0.8, 0.9]), applies) == 0.0
        assert adaptation.auroc(np.full(4, 0.5), applies) == 0.5

    def test_ece_is_zero_when_confidence_is_frequency_and_the_gap_otherwise(self):
        applies = np.array([True] * 8 + [False] * 2)
        assert adaptation.expected_calibration_error(np.full(10, 0.8), applies) == pytest.approx(0.0)
        assert adaptation.expected_calibration_error(np.full(10, 0.3), applies) == pytest.approx(0.5)

    def test_macro_f1_weighs_each_category_alike(self):
        truth, predicted = np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0])
        assert adaptation.macro_f1(truth, predicted, 2) == pytest.approx((2 * 3 / 7 + 0) / 2)

    def test_a_wrong_category_rejection_is_a_negative_pair_only(self):
        held_out = HeldOut(scores=np.array([[0.9, 0.1], [0.7, 0.3]]), truth=np.array([0, -1]), against=np.array([-1, 0]))
        scores, applies, columns = held_out.pairs()
        assert scores.tolist() == [0.9, 0.1, 0.7] and applies.tolist() == [True, False, False]
        assert columns.tolist() == [0, 1, 0]
        assert adaptation.figures(held_out)["accuracy"] == 1.0  # judged on the photo with a known category


class TestFit:
    def test_photos_teach_categories_the_prompts_do_not_know_and_scores_are_probabilities(self):
        embeddings, labels = clusters(40, CENTRES)
        useless_prompts = np.roll(CENTRES, 1, axis=0)  # every prompt points at another category
        head, choice = adaptation.head_fit(
            embeddings, labels, keys=list(range(len(labels))), categories=list("abcd"),
            text_weights=useless_prompts, logit_scale=20.0,
        )
        fresh, truth = clusters(30, CENTRES, seed=1)
        probabilities = head.probabilities(fresh)
        assert np.mean(probabilities.argmax(axis=1) == truth) >= 0.97
        assert np.allclose(probabilities.sum(axis=1), 1.0)
        restored = CategoryHead.from_bytes(head.to_bytes())
        assert restored.categories == list("abcd") and np.allclose(restored.probabilities(fresh), probabilities)

    def test_prompts_that_know_the_categories_keep_most_of_the_say(self):
        embeddings, labels = clusters(40, CENTRES, spread=0.6)
        _, choice = adaptation.head_fit(
            embeddings, labels, keys=list(range(len(labels))), categories=list("abcd"), text_weights=CENTRES,
            logit_scale=20.0,
        )
        assert choice.alpha <= 0.5


class TestGate:
    def table(self, truth, before, after, categories):
        against = -np.ones(len(truth), dtype=int)
        return adaptation.held_out_figures(
            HeldOut(before, truth, against), HeldOut(after, truth, against), categories=categories,
        )

    def onehot(self, labels, count, confidence=0.9):
        scores = np.full((len(labels), count), (1 - confidence) / (count - 1))
        scores[np.arange(len(labels)), labels] = confidence
        return scores

    def test_a_proven_improvement_is_promoted(self):
        truth = np.arange(200) % 4
        before = self.onehot((truth + (np.arange(200) % 3 == 0)) % 4, 4)  # a third wrong
        promote, reason = adaptation.promotion_decision(self.table(truth, before, self.onehot(truth, 4), list("abcd")))
        assert promote and reason.startswith("better ranking")

    def test_labels_that_carry_nothing_are_refused(self):
        rng = np.random.default_rng(0)
        truth = rng.integers(0, 4, 200)
        before, after = self.onehot(rng.integers(0, 4, 200), 4), np.full((200, 4), 0.25)  # after: calibrated chance
        promote, reason = adaptation.promotion_decision(self.table(truth, before, after, list("abcd")))
        assert not promote and reason.startswith("no proven improvement")

    def test_a_category_that_gets_worse_beyond_its_interval_is_refused(self):
        truth = np.arange(400) % 4
        after_labels = truth.copy()
        after_labels[truth == 3] = 0  # category d is lost
        before_labels = truth.copy()
        before_labels[(truth != 3) & (np.arange(400) % 2 == 0)] = 3  # the others were half wrong
        promote, reason = adaptation.promotion_decision(
            self.table(truth, self.onehot(before_labels, 4), self.onehot(after_labels, 4), list("abcd"))
        )
        assert not promote and reason.startswith("category 'd' gets worse")


@pytest.mark.django_db
class TestServingState:
    def head(self):
        return CategoryHead(categories=["a", "b"], text_weights=np.eye(2), class_weights=np.eye(2),
                            class_bias=np.zeros(2), alpha=0.5, logit_scale=10.0)

    def test_promotions_are_versions_and_a_rollback_restores_the_previous_one(self):
        first = adaptations.adaptation_promote(head=self.head(), label_digest="1", labels={}, metrics={})
        second = adaptations.adaptation_promote(head=self.head(), label_digest="2", labels={}, metrics={})
        assert (first.version, second.version) == (1, 2)
        assert adaptations.adaptation_active().version == 2
        retired, restored = adaptations.adaptation_rollback()
        assert (retired.version, restored.version) == (2, 1)
        assert adaptations.adaptation_active().version == 1
        adaptations.adaptation_rollback()
        assert adaptations.adaptation_active() is None
        with pytest.raises(adaptations.AdaptationError, match="no active adaptation"):
            adaptations.adaptation_rollback()

    def test_another_model_never_uses_it(self, settings):
        adaptations.adaptation_promote(head=self.head(), label_digest="1", labels={}, metrics={})
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": "another/model"}
        assert adaptations.adaptation_active() is None

    def test_a_process_picks_up_another_ones_promotion_within_the_cache_time(self, settings):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "CALIBRATION_CACHE_SECONDS": 0.3}
        assert adaptations.adaptation_active() is None
        # Written as another process would: this one's cache is not told.
        Adaptation.objects.create(model=adaptations.model_id(), version=1, active=True, categories=["a", "b"],
                                  head=self.head().to_bytes(), label_digest="x")
        assert adaptations.adaptation_active() is None
        time.sleep(0.35)
        assert adaptations.adaptation_active().version == 1


class TestMatchCalibration:
    def labels(self, seed=0, per_category=200):
        """"toys" match near 0.8 and mismatch near 0.6; "paint" (texts of a colour alone) near 0.5 and 0.3."""
        rng = np.random.default_rng(seed)
        scores, matches, categories = [], [], []
        for category, (match_centre, mismatch_centre) in {"toys": (0.8, 0.6), "paint": (0.5, 0.3)}.items():
            for is_match, centre in ((True, match_centre), (False, mismatch_centre)):
                scores += list(rng.normal(centre, 0.06, per_category))
                matches += [is_match] * per_category
                categories += [category] * per_category
        return np.array(scores), np.array(matches), np.array(categories, dtype=object)

    def test_each_category_with_enough_labels_gets_its_own_curve(self):
        scores, matches, categories = self.labels()
        calibration = adaptation.match_calibration_fit(scores, matches, categories)
        shared = adaptation.match_calibration_fit(scores, matches)
        fresh_scores, fresh_matches, fresh_categories = self.labels(seed=1)
        for category in ("toys", "paint"):
            own = fresh_categories == category
            with_offsets = [calibration.probability(score, category) for score in fresh_scores[own]]
            without = [shared.probability(score) for score in fresh_scores[own]]
            assert adaptation.expected_calibration_error(np.array(with_offsets), fresh_matches[own]) < 0.05
            assert adaptation.expected_calibration_error(np.array(without), fresh_matches[own]) > 0.1
        assert set(calibration.category_curves) == {"toys", "paint"} and shared.category_curves == {}

    def test_a_category_with_few_labels_uses_the_shared_curve_and_the_head_keeps_it(self):
        scores, matches, categories = self.labels(per_category=10)
        calibration = adaptation.match_calibration_fit(scores, matches, categories)
        assert calibration.category_curves == {}
        head = CategoryHead(categories=["a", "b"], text_weights=np.eye(2), class_weights=np.eye(2),
                            class_bias=np.zeros(2), alpha=0.5, logit_scale=10.0,
                            match=adaptation.MatchCalibration(slope=9.0, intercept=-5.0, category_curves={"toys": [9.0, -3.5]}))
        restored = CategoryHead.from_bytes(head.to_bytes())
        assert restored.match == head.match
        assert restored.match.probability(0.5, "toys") > restored.match.probability(0.5, "paint")


def test_each_category_gets_accuracy_f1_auroc_and_ece_with_intervals():
    truth = np.arange(80) % 2
    before = np.where(np.arange(80)[:, None] % 4 == 0, [[0.4, 0.6]], [[0.6, 0.4]])  # a: always first
    after = np.eye(2)[truth] * 0.8 + 0.1
    against = -np.ones(80, dtype=int)
    table = adaptation.held_out_figures(HeldOut(before, truth, against), HeldOut(after, truth, against),
                                        categories=["a", "b"], rounds=50)
    row = table["categories"]["b"]
    assert row["held_out"] == 40
    assert (row["accuracy"]["before"], row["accuracy"]["after"]) == (0.0, 1.0)
    assert row["f1"]["after"] == 1.0 and row["auroc"]["after"] == 1.0
    assert row["ece"]["after"] == pytest.approx(0.1, abs=1e-6)
    low, high = row["accuracy"]["difference_interval"]
    assert low == high == 1.0


@pytest.mark.django_db
def test_stored_embeddings_are_read_in_bounded_queries_and_all_come_back(monkeypatch, django_assert_num_queries):
    from clipcheck import selectors
    from clipcheck.services.embeddings import image_embeddings_store

    vectors = {f"{number:064x}": np.full(4, number, dtype=np.float32) for number in range(5)}
    image_embeddings_store(vectors=vectors, model="m")
    monkeypatch.setattr(selectors, "HASHES_PER_QUERY", 2)
    with django_assert_num_queries(3):  # 5 hashes, 2 a query
        found = selectors.image_embeddings_get(hashes=[*vectors, *vectors], model="m")
    assert set(found) == set(vectors) and all(np.array_equal(found[key], vectors[key]) for key in vectors)
