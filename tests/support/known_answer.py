"""The known-answer CLIP (tests/fixtures/known_answer_clip) and its calibrated threshold."""

import knownanswer

KNOWN_ANSWER_MODEL = knownanswer.CHECKPOINT
METRICS = knownanswer.checkpoint_metrics()
# Calibrated on the model's held-out set by scripts/train_known_answer.py.
THRESHOLD = knownanswer.calibrated_threshold()
