"""clip_calibrate on the known-answer model: the F1-optimal threshold it finds
from labelled pairs separates that model's held-out matches from mismatches."""

import csv
import io

import pytest
from django.core.management import call_command

from clipcheck.calibration import calibrate
from clipcheck.images import decode_image
from clipcheck.models import CalibratedThreshold
from clipcheck.services.calibration_data import labelled_scores_from_csv, similarity_scores
from knownanswer import domain

pytestmark = pytest.mark.django_db


def labelled_pairs(seed_base, count):
    """(picture, text, is_match): a matching caption, a wrong colour, a wrong shape."""
    pairs = []
    for index in range(count):
        shape, colour = domain.SHAPES[index % 6], domain.COLOURS[index % 8]
        picture = domain.render(shape, colour, seed=seed_base + index, size=96)
        wrong_colour = domain.COLOURS[(index + 3) % 8]
        wrong_shape = domain.SHAPES[(index + 2) % 6]
        pairs += [
            (picture, domain.caption(shape, colour, index % 3), True),
            (picture, domain.caption(shape, wrong_colour, index % 3), False),
            (picture, domain.caption(wrong_shape, colour, index % 3), False),
        ]
    return pairs


def write_csv(tmp_path, pairs):
    rows = []
    for index, (picture, text, is_match) in enumerate(pairs):
        name = f"{index}.png"
        picture.save(tmp_path / name)
        rows.append({"image_path": name, "text": text, "label": "match" if is_match else "mismatch"})
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image_path", "text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_calibrated_threshold_separates_held_out_pairs(tmp_path):
    path = write_csv(tmp_path, labelled_pairs(7_000_000, 24))
    output = io.StringIO()
    call_command("clip_calibrate", "--csv", str(path), "--apply", stdout=output)
    assert "F1-optimal threshold" in output.getvalue()
    scores = labelled_scores_from_csv(path=path)
    threshold = calibrate(scores.pairs).best_f1.threshold
    assert CalibratedThreshold.objects.latest("pk").threshold == pytest.approx(threshold)

    held_out = labelled_pairs(8_000_000, 24)  # other pictures than the calibration's
    held_out_scores = similarity_scores(
        images=[decode_image(_png(picture)) for picture, _, _ in held_out], texts=[text for _, text, _ in held_out]
    )
    correct = sum((score >= threshold) == is_match for score, (_, _, is_match) in zip(held_out_scores, held_out))
    assert correct / len(held_out) >= 0.95


def _png(picture):
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
