"""Calibration data: labelled image/text pairs scored by the model (nothing stored).

The scores feed ``clipcheck.calibration.calibrate``.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipcheck import scoring
from clipcheck.calibration import CalibrationError
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.errors import ClipcheckError
from clipcheck.images import decode_image
from clipcheck.services.embeddings import image_embeddings_compute
from clipcheck.settings import clip_settings


@dataclass
class LabelledScores:
    """Scored labelled pairs for ``clipcheck.calibration.calibrate``."""

    pairs: list  # (similarity_score, is_match)
    skipped: list  # (line number, reason) of rows whose image could not be used


CSV_COLUMNS = ("image_path", "text", "label")
CSV_LABELS = {"match": True, "1": True, "mismatch": False, "0": False}


def labelled_scores_from_csv(*, path, batch_size=None):
    """Score the rows of an ``image_path,text,label`` CSV file.

    ``label`` is match/mismatch (or 1/0); relative image paths are relative
    to the file's directory. Images go through ``decode_image`` and the model
    in batches; a row whose image cannot be read or decoded is skipped and
    reported, a malformed row raises ``CalibrationError`` with its line.
    Nothing is stored.
    """
    path = Path(path)
    batch_size = batch_size or int(clip_settings.BATCH_SIZE)
    scores = LabelledScores(pairs=[], skipped=[])
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CalibrationError(f"{path} cannot be read: {exc.strerror}.")
    with handle:
        reader = csv.DictReader(handle)
        missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise CalibrationError(
                f"{path} must have the columns {','.join(CSV_COLUMNS)} in its first line; missing: {', '.join(missing)}."
            )
        batch = []
        for row in reader:
            batch.append(_labelled_row(row, reader.line_num, path.parent))
            if len(batch) == batch_size:
                _score_labelled_batch(batch, scores)
                batch = []
        _score_labelled_batch(batch, scores)
    return scores


def _labelled_row(row, line, directory):
    label = (row.get("label") or "").strip().lower()
    if label not in CSV_LABELS:
        raise CalibrationError(f"Line {line}: label {row.get('label')!r} is not match, mismatch, 1 or 0.")
    image_path, text = (row.get("image_path") or "").strip(), row.get("text") or ""
    if not image_path or not text.strip():
        raise CalibrationError(f"Line {line}: image_path and text must not be empty.")
    return line, directory / image_path, text, CSV_LABELS[label]


def _score_labelled_batch(batch, scores):
    decoded = []
    for line, image_path, text, is_match in batch:
        try:
            with open(image_path, "rb") as image_file:
                image = decode_image(image_file.read(clip_settings.MAX_UPLOAD_BYTES + 1))
        except OSError as exc:
            scores.skipped.append((line, f"{image_path}: {exc.strerror or exc}"))
            continue
        except ClipcheckError as exc:
            scores.skipped.append((line, f"{image_path}: {exc.message}"))
            continue
        decoded.append((image, text, is_match))
    if not decoded:
        return
    similarities = similarity_scores(images=[image for image, _, _ in decoded], texts=[text for _, text, _ in decoded])
    scores.pairs.extend((score, is_match) for score, (_, _, is_match) in zip(similarities, decoded))


def similarity_scores(*, images, texts):
    """``similarity_score`` of each decoded image with the text at the same position (nothing stored)."""
    engine = get_engine()
    image_vectors = engine.encode_images([image.image for image in images])
    text_vectors, _ = engine.encode_texts(list(texts))
    return [scoring.similarity_score(float(cosine)) for cosine in np.einsum("ij,ij->i", image_vectors, text_vectors)]


def category_similarities(*, images, categories):
    """``similarity_score`` of each decoded image (rows) with each category's
    zero-shot prompt (columns), as classify scores them; stored image
    embeddings are reused."""
    engine = get_engine()
    image_vectors = image_embeddings_compute(images=images, engine=engine)
    prompts = [clip_settings.PROMPT_TEMPLATE.format(category) for category in categories]
    prompt_vectors, _ = run_inference(lambda: engine.encode_texts(prompts))
    cosines = image_vectors @ prompt_vectors.T
    return [[scoring.similarity_score(float(cosine)) for cosine in row] for row in cosines]
