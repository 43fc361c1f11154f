"""clip_adapt at catalogue scale: ``python -m bench --adaptation``.

10,000 labelled photos in 50 categories, as ``clip_adapt`` reads them:
stored embeddings (512 floats packed as ``ImageEmbedding`` rows are)
unpacked, a head fitted on the training split (the full grid of blends and
shrinkages, calibration on out-of-fold predictions) and judged on the
held-out split with its 400 bootstrap resamples (overall and per category). The embeddings are drawn
around 50 centres with prompts that point beside them, so the blend and
the gate have real work. Target: at most 5 minutes on 2 cores (docs/adaptation.md).
The baseline measured beside it: the same photos scored by the zero-shot
prompts alone (what serves without an adaptation).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from bench.service import Row

CATEGORIES, DIM, PHOTOS = 50, 512, 10_000
TARGET_SECONDS = 300


def catalogue(photos=PHOTOS, categories=CATEGORIES, dim=DIM, seed=0):
    """(packed embeddings as stored, labels, prompt embeddings)."""
    from clipcheck.models import ImageEmbedding

    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((categories, dim)))
    labels = rng.integers(0, categories, photos)
    embeddings = _unit(centres[labels] + 7.0 * rng.standard_normal((photos, dim)) / np.sqrt(dim))
    prompts = _unit(centres + 4.5 * rng.standard_normal((categories, dim)) / np.sqrt(dim))
    return [ImageEmbedding.pack(row) for row in embeddings], labels, prompts


def _unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def adapt_once(packed, labels, prompts):
    """One clip_adapt's arithmetic; returns (wall seconds, CPU seconds, held-out accuracy before, after)."""
    from clipcheck import adaptation

    wall, cpu = time.perf_counter(), time.process_time()
    embeddings = np.stack([np.frombuffer(bytes(row), dtype=np.float32) for row in packed]).astype(np.float64)
    keys = list(range(len(labels)))
    held_out = adaptation.stratified_held_out(keys, labels)
    names = [f"category {number}" for number in range(prompts.shape[0])]
    head, _ = adaptation.head_fit(
        embeddings[~held_out], labels[~held_out], keys=[key for key, out in zip(keys, held_out) if not out],
        categories=names, text_weights=prompts, logit_scale=100.0,
    )
    judged, truth = embeddings[held_out], labels[held_out]
    against = -np.ones(len(truth), dtype=int)
    table = adaptation.held_out_figures(
        adaptation.HeldOut(adaptation.softmax(100.0 * judged @ prompts.T), truth, against),
        adaptation.HeldOut(head.probabilities(judged), truth, against), categories=names,
    )
    accuracy = table["overall"]["accuracy"]
    return time.perf_counter() - wall, time.process_time() - cpu, accuracy["before"], accuracy["after"]


def zero_shot_once(packed, prompts):
    wall, cpu = time.perf_counter(), time.process_time()
    embeddings = np.stack([np.frombuffer(bytes(row), dtype=np.float32) for row in packed])
    (embeddings @ prompts.T).argmax(axis=1)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(config):
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clipproject.settings")
    django.setup()
    packed, labels, prompts = catalogue()
    adapt, baseline = [], []
    for _ in range(config.rounds):  # interleaved: the baseline sees the same machine load
        baseline.append(zero_shot_once(packed, prompts))
        adapt.append(adapt_once(packed, labels, prompts))
    wall = statistics.median(run[0] for run in adapt)
    cpu = statistics.median(run[1] for run in adapt)
    base_wall = statistics.median(run[0] for run in baseline)
    base_cpu = statistics.median(run[1] for run in baseline)
    _, _, before, after = adapt[-1]
    rows = [
        Row(key="adapt_10k", label=f"clip_adapt, {PHOTOS:,} photos in {CATEGORIES} categories", value=wall, unit="s",
            ratio=wall / base_wall, comparison=f"{wall / base_wall:.0f}x zero-shot scoring", cpu_ratio=cpu / base_cpu,
            target=f"<= {TARGET_SECONDS} s", met=wall <= TARGET_SECONDS,
            note=f"CPU {cpu:.1f} s; held-out top-1 {before:.3f} -> {after:.3f}"),
        Row(key="zero_shot_10k", label=f"zero-shot scoring, {PHOTOS:,} photos", value=base_wall, unit="s",
            note=f"CPU {base_cpu:.2f} s"),
    ]
    return {"rows": rows, "raw": {"adapt": adapt, "zero_shot": baseline}}
