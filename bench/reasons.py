"""What reasons cost per answer: text rows per answer and milliseconds, against the
plain score measured in the same run.

    python -m bench.reasons            # random-weight ViT-B/32 + 200 product texts (bench.assets)
    python -m bench.reasons --smoke    # tiny assets, seconds (the test suite runs it)

For each product (photo, text) of the corpus, with the photo's embedding already
computed (reasons add no image work):

- ``score only``: the text's forward and the cosine, as before the verdict work;
- ``with reasons``: ``clipcheck.verdicts`` planning (passages, attribute rewrites),
  the text forward, for a text that does not pass one more forward of its attribute
  rewrites, judging, and for a mismatch the category prompts' standalone scores for
  the suggestion (the prompts' embeddings are cached by the
  engine after the first request, as in a serving process).

The engine's text cache is cleared before every measured call (except for the
category prompts), so each answer pays for its own forwards. Both are measured
alternately, item by item, in the same process; medians are reported with the
load average, because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench import quiet_transformers
from bench.assets import FULL, SMOKE, ensure_assets

RESULTS = Path(__file__).resolve().parent / "results"


def setup_django(model_dir, threshold):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clipproject.settings")
    # Thresholds are looked up in the database (calibrated, per category): a
    # private in-memory one, so the bench never touches a developer's data.
    os.environ["DATABASE_URL"] = "sqlite://:memory:"
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    settings.CLIPCHECK = {"MODEL": str(model_dir), "DEVICE": "cpu", "DTYPE": "float32", "THRESHOLD": threshold,
                          "LOAD_ON_STARTUP": False}
    from clipcheck.settings import clip_settings

    clip_settings.reload()


def measure(spec, *, items, rounds, threshold):
    from PIL import Image

    from clipcheck import scoring, verdicts
    from clipcheck.services.analyses import reasons_add_looks_like
    from clipcheck.engine import get_engine
    from clipcheck.settings import clip_settings

    engine = get_engine()
    entries = json.loads(spec.manifest.read_text())[:items]
    images = [Image.open(spec.root / entry["path"]).convert("RGB") for entry in entries]
    image_vectors = engine.encode_images(images)
    prompts = [clip_settings.PROMPT_TEMPLATE.format(category) for category in clip_settings.CATEGORIES]

    def fresh_cache():
        with engine._text_cache_lock:
            engine._text_cache.clear()
        engine.encode_texts(prompts)  # cached in a serving process after its first request

    def score_only(text, vector):
        text_vectors, _ = engine.encode_texts([text])
        return scoring.similarity_score(float(text_vectors[0] @ vector))

    def with_reasons(text, vector):
        plan = verdicts.text_plan(text=text, engine=engine)
        judgement, = verdicts.texts_judge(
            plans=[plan], image_vector_groups=[[vector]], thresholds=[threshold], engine=engine
        )
        reasons_add_looks_like(judgement.reasons, image=None, image_vector=vector)
        return plan, judgement

    plain_ms, reasons_ms, rows, mismatches, with_rewrites, passages = [], [], [], 0, 0, 0
    for round_number in range(rounds):
        for entry, vector in zip(entries, image_vectors):
            text = entry["text"]
            fresh_cache()
            started = time.perf_counter()
            score_only(text, vector)
            plain_ms.append((time.perf_counter() - started) * 1000)
            fresh_cache()
            started = time.perf_counter()
            plan, judgement = with_reasons(text, vector)
            reasons_ms.append((time.perf_counter() - started) * 1000)
            if round_number == 0:
                # Rows encoded: passages, plus the rewrites of a text that does not pass.
                rows.append(len(set(plan.passage_strings())) + (len(set(r.text for r in plan.rewrites))
                                                                 if judgement.is_mismatch else 0))
                mismatches += judgement.is_mismatch
                with_rewrites += bool(plan.rewrites)
                passages += not plan.whole
    return {
        "items": len(entries), "rounds": rounds, "threshold": threshold,
        "score_only_ms_median": statistics.median(plain_ms),
        "with_reasons_ms_median": statistics.median(reasons_ms),
        "extra_ms_median": statistics.median(r - p for r, p in zip(reasons_ms, plain_ms)),
        "text_rows_per_answer_median": statistics.median(rows),
        "text_rows_per_answer_mean": statistics.fmean(rows),
        "text_rows_per_answer_max": max(rows),
        "answers_with_rewrites": with_rewrites, "answers_scored_as_passages": passages, "mismatches": mismatches,
        "batch_size": int(clip_settings.BATCH_SIZE),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.reasons", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny assets, one round")
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--threshold", type=float, default=0.25,
                        help="random weights score near 0: at 0.25 every answer is a mismatch (the costly case); "
                             "0 makes every answer a match")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    quiet_transformers()
    spec = SMOKE if args.smoke else FULL
    ensure_assets(spec)
    import torch

    torch.set_num_threads(args.threads)
    setup_django(spec.model_dir, args.threshold)
    load_before = os.getloadavg()
    result = measure(spec, items=args.items, rounds=args.rounds or (1 if args.smoke else 2), threshold=args.threshold)
    result.update({"assets": spec.name, "threads": args.threads, "loadavg_before": load_before,
                   "loadavg_after": os.getloadavg()})
    print(f"\nreasons cost per answer ({spec.name} assets, {result['items']} texts x {result['rounds']} rounds, "
          f"{args.threads} torch thread(s), load average {load_before[0]:.1f} -> {result['loadavg_after'][0]:.1f})")
    for key in ("score_only_ms_median", "with_reasons_ms_median", "extra_ms_median", "text_rows_per_answer_median",
                "text_rows_per_answer_mean", "text_rows_per_answer_max", "answers_with_rewrites",
                "answers_scored_as_passages", "mismatches"):
        value = result[key]
        print(f"  {key:32s} {value:.1f}" if isinstance(value, float) else f"  {key:32s} {value}")
    out = args.out or RESULTS / f"reasons{'-smoke' if args.smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
