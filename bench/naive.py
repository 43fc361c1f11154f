"""The naive baseline: what a hand-written per-item client loop does.

Per (image, text) pair: full-size ``Image.open(path).convert("RGB")``, one
``CLIPProcessor(images=..., text=..., padding=True)`` call, one float32 ``CLIPModel``
forward, cosine of the two embeddings. ``truncation=True`` is the one concession: without
it, texts over CLIP's 77 tokens (5% of the corpus) make the forward raise.

    python -m bench.naive [--smoke] [--pairs 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from bench import quiet_transformers
from bench.assets import FULL, SMOKE, Spec, ensure_assets, load_manifest
from bench.timing import measure

RESULTS = Path(__file__).resolve().parent / "results"


def load_fp32(spec: Spec) -> tuple[CLIPModel, CLIPProcessor]:
    model = CLIPModel.from_pretrained(spec.model_dir, dtype=torch.float32).eval()
    return model, CLIPProcessor.from_pretrained(spec.model_dir)


def naive_score(model: CLIPModel, processor: CLIPProcessor, path: Path, text: str) -> float:
    """Score one pair the naive way."""
    image = Image.open(path).convert("RGB")
    inputs = processor(images=image, text=text, return_tensors="pt", padding=True, truncation=True)
    with torch.no_grad():
        out = model(**inputs)
    return torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds).item()


def stage_ms(model: CLIPModel, processor: CLIPProcessor, pairs: list[tuple[Path, str]]) -> dict[str, float]:
    """Median per-pair milliseconds of each stage of the naive loop."""
    stages = {"decode": [], "processor": [], "forward": []}
    for path, text in pairs:
        t0 = time.perf_counter()
        image = Image.open(path).convert("RGB")
        t1 = time.perf_counter()
        inputs = processor(images=image, text=text, return_tensors="pt", padding=True, truncation=True)
        t2 = time.perf_counter()
        with torch.no_grad():
            model(**inputs)
        t3 = time.perf_counter()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
            stages[name].append(dt * 1e3)
    return {name: statistics.median(v) for name, v in stages.items()}


def run_naive(spec: Spec, *, pairs: int, repeats: int) -> dict:
    """Pairs/second of the naive loop over the first ``pairs`` corpus pairs (median of repeats)."""
    model, processor = load_fp32(spec)
    subset = load_manifest(spec)[:pairs]
    timing = measure(lambda: [naive_score(model, processor, p, t) for p, t in subset], repeats=repeats)
    return {
        "pairs": len(subset),
        "threads": torch.get_num_threads(),
        "pairs_per_s": len(subset) / timing.median,
        "ms_per_pair": timing.median / len(subset) * 1e3,
        "stage_ms": stage_ms(model, processor, subset),
        **timing.as_dict(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--pairs", type=int, help="pairs per repeat (default 40, smoke 4)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3, smoke 1)")
    args = parser.parse_args(argv)
    quiet_transformers()
    spec = ensure_assets(SMOKE if args.smoke else FULL)
    result = run_naive(spec, pairs=args.pairs or (4 if args.smoke else 40), repeats=args.repeats or (1 if args.smoke else 3))
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result["stage_ms"].items())
    print(f"naive fp32, {result['threads']} threads: {result['pairs_per_s']:.2f} pairs/s "
          f"({result['ms_per_pair']:.1f} ms/pair; median ms: {stages})")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"naive-{spec.name}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
