"""What reasons cost per answer: text rows per answer, milliseconds and CPU time, against
the plain score measured in the same run.

    python -m bench.reasons            # random-weight ViT-B/32 + 200 product texts (bench.assets)
    python -m bench.reasons --smoke    # tiny assets, seconds

For each product (photo, text) of the corpus, with the photo's embedding already
computed (reasons add no image work), three ways, alternately, item by item:

- ``score only``: the text's forward and the cosine, as before the verdict work;
- ``with reasons``: ``clipcheck.verdicts`` as served: planning (passages, attribute
  rewrites), the text forward, for a text that does not pass one more forward of its
  likeliest rewrites (``REWRITES_PER_PASSAGE``), judging, and for a mismatch the
  category prompts' standalone scores for the suggestion;
- ``one rewrite``: the same with ``REWRITE_REACH`` 1, so that every failing passage
  that names an attribute pays for its likeliest rewrite however far below the
  threshold it is predicted (on random weights every text is far below);
- ``every rewrite``: every rewrite of a failing passage scored (up to
  ``MAX_REWRITES``), as the rules did before: the baseline of the rewrite choice.

The engine's text cache is cleared before every measured call, so each answer pays for
its own forwards; what a serving process encodes once per model (the category prompts,
the attribute values' own embeddings) is warmed before measuring. Medians are reported
with the load average, because the machine is shared; CPU time (the process's, all
threads) varies far less with load than the wall clock.
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
    from clipcheck.engine import get_engine
    from clipcheck.services.analyses import reasons_add_looks_like
    from clipcheck.settings import clip_settings

    engine = get_engine()
    entries = json.loads(spec.manifest.read_text())[:items]
    images = [Image.open(spec.root / entry["path"]).convert("RGB") for entry in entries]
    image_vectors = engine.encode_images(images)
    prompts = [clip_settings.PROMPT_TEMPLATE.format(category) for category in clip_settings.CATEGORIES]
    vocabulary = verdicts.text_vocabulary()
    verdicts.values_vectors(values={value for values in vocabulary.values() for value in values}, engine=engine)

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

    def served_with(**changed):
        """``with_reasons`` under other rule settings, set on the settings object itself
        (a settings change would signal every receiver inside the timed region)."""
        def way(text, vector):
            served = {key: getattr(clip_settings, key) for key in changed}
            for key, value in changed.items():
                setattr(clip_settings, key, value)
            try:
                return with_reasons(text, vector)
            finally:
                for key, value in served.items():
                    setattr(clip_settings, key, value)
        return way

    ways = {
        "score_only": score_only,
        "with_reasons": with_reasons,
        "one_rewrite": served_with(REWRITE_REACH=1.0),
        "every_rewrite": served_with(REWRITE_REACH=1.0, REWRITES_PER_PASSAGE=int(clip_settings.MAX_REWRITES)),
    }
    wall = {name: [] for name in ways}
    cpu = {name: [] for name in ways}
    compared = [name for name in ways if name != "score_only"]
    rows = {name: [] for name in compared}
    mismatches, with_rewrites, passages = 0, 0, 0
    for round_number in range(rounds):
        for entry, vector in zip(entries, image_vectors, strict=True):
            text = entry["text"]
            for name, way in ways.items():
                fresh_cache()
                started, started_cpu = time.perf_counter(), time.process_time()
                outcome = way(text, vector)
                wall[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - started_cpu) * 1000)
                if round_number == 0 and name in rows:
                    plan, judgement = outcome
                    # Rows encoded: passages, plus the rewrites scored for a text that does not pass.
                    rows[name].append(len(set(plan.passage_strings())) + judgement.rewrites_scored)
                if round_number == 0 and name == "with_reasons":
                    mismatches += judgement.is_mismatch
                    with_rewrites += bool(plan.rewrites)
                    passages += not plan.whole
    result = {"items": len(entries), "rounds": rounds, "threshold": threshold, "batch_size": int(clip_settings.BATCH_SIZE),
              "answers_with_rewrites": with_rewrites, "answers_scored_as_passages": passages, "mismatches": mismatches}
    for name in ways:
        result[f"{name}_ms_median"] = statistics.median(wall[name])
        result[f"{name}_cpu_ms_median"] = statistics.median(cpu[name])
    for name in compared:
        result[f"{name}_ratio"] = result[f"{name}_ms_median"] / result["score_only_ms_median"]
        result[f"{name}_cpu_ratio"] = result[f"{name}_cpu_ms_median"] / result["score_only_cpu_ms_median"]
        result[f"{name}_rows_median"] = statistics.median(rows[name])
        result[f"{name}_rows_mean"] = statistics.fmean(rows[name])
        result[f"{name}_rows_max"] = max(rows[name])
    result["raw_ms"], result["raw_cpu_ms"] = wall, cpu
    return result


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
          f"{args.threads} torch thread(s), load average {load_before[0]:.1f} -> {result['loadavg_after'][0]:.1f}; "
          f"{result['mismatches']} mismatches, {result['answers_with_rewrites']} texts with rewrites)")
    print(f"  {'per answer (median)':16s} {'wall ms':>9s} {'CPU ms':>9s} {'x wall':>7s} {'x CPU':>7s} {'text rows':>22s}")
    for name in ("score_only", "with_reasons", "one_rewrite", "every_rewrite"):
        ratios = ("", "") if name == "score_only" else (
            f"{result[name + '_ratio']:.2f}", f"{result[name + '_cpu_ratio']:.2f}")
        text_rows = "1" if name == "score_only" else (
            f"{result[name + '_rows_median']:g} (mean {result[name + '_rows_mean']:.1f}, max {result[name + '_rows_max']})")
        print(f"  {name:16s} {result[name + '_ms_median']:9.1f} {result[name + '_cpu_ms_median']:9.1f} "
              f"{ratios[0]:>7s} {ratios[1]:>7s} {text_rows:>22s}")
    out = args.out or RESULTS / f"reasons{'-smoke' if args.smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
