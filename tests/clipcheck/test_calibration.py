import pytest

from clipcheck.calibration import CalibrationError, calibrate


def labelled(matches, mismatches):
    return [(score, True) for score in matches] + [(score, False) for score in mismatches]


def test_separable_scores_give_a_threshold_between_the_classes():
    result = calibrate(labelled([0.30, 0.32, 0.35, 0.40, 0.31], [0.10, 0.12, 0.15, 0.20, 0.18]))
    best = result.best_f1
    assert 0.20 < best.threshold < 0.30
    assert (best.precision, best.recall, best.f1) == (1.0, 1.0, 1.0)
    assert (best.flagged_mismatches, best.flagged_matches) == (5, 0)


def test_overlapping_scores_trade_precision_for_recall():
    result = calibrate(labelled([0.22, 0.30, 0.33, 0.35, 0.40, 0.45], [0.10, 0.15, 0.20, 0.24, 0.31]))
    strict = result.for_precision(1.0)
    assert strict.threshold <= 0.22 and strict.precision == 1.0
    assert strict.recall == 3 / 5
    loose = result.for_precision(0.8)
    assert loose.recall > strict.recall and loose.precision >= 0.8
    recalls = [point.recall for point in result.points]
    assert recalls == sorted(recalls)  # recall only grows with the threshold


def test_unreachable_precision_gives_none():
    result = calibrate(labelled([0.1] * 5, [0.1] * 5))
    assert result.for_precision(0.9) is None


@pytest.mark.parametrize(("matches", "mismatches"), [(4, 10), (10, 4), (0, 0)])
def test_too_few_labels_of_either_class_is_refused(matches, mismatches):
    with pytest.raises(CalibrationError, match="at least 5"):
        calibrate(labelled([0.3] * matches, [0.1] * mismatches))
