"""The known-answer CLIP (tests/fixtures/known_answer_clip) and its calibrated threshold."""

import json
from pathlib import Path

KNOWN_ANSWER_MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "known_answer_clip"
METRICS = json.loads((KNOWN_ANSWER_MODEL / "metrics.json").read_text())
# Calibrated on the model's held-out set by scripts/train_known_answer.py.
THRESHOLD = METRICS["threshold"]["threshold"]
