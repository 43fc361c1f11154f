"""Benchmark assets: a CLIP checkpoint and a corpus of product photos with texts.

The checkpoint has ViT-B/32 dimensions (``CLIPConfig()`` defaults) and random weights,
saved with a ``CLIPTokenizer`` built from OpenAI's real BPE vocabulary (read offline out of
the ``open_clip_torch`` wheel) and a ``CLIPImageProcessorPil``, so ``CLIPModel`` and
``CLIPProcessor`` load it with ``from_pretrained`` like the real model. Random weights give
the real compute cost; the scores themselves are meaningless.

The corpus holds JPEGs that look like studio product shots (backdrop gradient, a textured
product silhouette with a shadow, sensor grain) at realistic pixel and byte sizes, and
product titles/descriptions of 5-60 words. Everything is deterministic for a given seed.

    python -m bench.assets            # full: ViT-B/32 + 200 images (a minute or two)
    python -m bench.assets --smoke    # tiny config + 4 small images (seconds)
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import statistics
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bench import quiet_transformers

CACHE = Path(__file__).resolve().parent / ".cache"
OPEN_CLIP = "open_clip_torch==3.3.0"
VOCAB_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
SEED = 20240601


def _full_config():
    from transformers import CLIPConfig

    return CLIPConfig()  # defaults are ViT-B/32: vision 768x12, text 512x12, projection 512


def _smoke_config():
    from transformers import CLIPConfig

    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    return CLIPConfig(text_config=dict(tiny), vision_config=dict(tiny), projection_dim=16)


@dataclass(frozen=True)
class Spec:
    """Size of one asset set; ``FULL`` for measurements, ``SMOKE`` for the test suite."""

    name: str
    n_images: int
    long_side: tuple[int, int]  # px, uniform
    jpeg_kb: tuple[int, int]  # accepted file size range
    config: Callable[[], object]

    @property
    def root(self) -> Path:
        return CACHE / self.name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"


FULL = Spec("full", 200, (1000, 2000), (150, 600), _full_config)
SMOKE = Spec("smoke", 4, (320, 480), (10, 60), _smoke_config)


# --- tokenizer --------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """OpenAI's reversible byte -> printable unicode map (same order as ``SimpleTokenizer``)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _bpe_vocab_file() -> bytes:
    """The gzipped BPE merges file, read out of the ``open_clip_torch`` wheel (downloaded once)."""
    wheels = CACHE / "wheels"
    found = sorted(wheels.glob("open_clip_torch-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", OPEN_CLIP, "--no-deps", "-d", str(wheels)],
            check=True,
        )
        found = sorted(wheels.glob("open_clip_torch-*.whl"))
    with zipfile.ZipFile(found[-1]) as wheel:
        return wheel.read(VOCAB_MEMBER)


def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges exactly as OpenAI's ``SimpleTokenizer`` builds them."""
    lines = gzip.decompress(_bpe_vocab_file()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    units = list(_bytes_to_unicode().values())
    tokens = units + [u + "</w>" for u in units] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise RuntimeError(f"CLIP vocabulary has {len(vocab)} entries, expected {VOCAB_SIZE}")
    return vocab, merges


def build_tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)  # 77: CLIP's text context


# --- checkpoint -------------------------------------------------------------------------


def build_checkpoint(spec: Spec, *, force: bool = False) -> Path:
    """Save a random-weight ``CLIPModel`` + tokenizer + PIL image processor to ``spec.model_dir``."""
    import torch
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    out = spec.model_dir
    if (out / "processor_config.json").exists() and not force:  # written last
        return out
    torch.manual_seed(SEED)
    CLIPModel(spec.config()).eval().save_pretrained(out)
    image_processor = CLIPImageProcessorPil()  # shortest_edge 224, center crop 224, CLIP mean/std
    CLIPProcessor(image_processor=image_processor, tokenizer=build_tokenizer()).save_pretrained(out)
    return out


# --- corpus -----------------------------------------------------------------------------

# (name, RGB) - the product is painted in the colour the text names.
COLORS = [
    ("black", (28, 28, 30)), ("white", (236, 236, 232)), ("red", (178, 34, 40)), ("navy", (30, 42, 84)),
    ("tan", (196, 154, 108)), ("olive", (110, 112, 58)), ("burgundy", (110, 24, 44)), ("grey", (128, 130, 134)),
    ("cream", (238, 226, 198)), ("forest green", (34, 84, 52)), ("mustard yellow", (214, 168, 40)),
    ("sky blue", (120, 176, 220)), ("blush pink", (226, 170, 170)), ("cognac brown", (140, 74, 36)),
]
MATERIALS = ["leather", "canvas", "stainless steel", "ceramic", "cotton", "merino wool", "bamboo", "recycled plastic",
             "suede", "walnut wood", "linen", "aluminium", "glass", "nylon"]
# (category, silhouette drawn for it)
CATEGORIES = [("handbag", "bag"), ("tote bag", "bag"), ("backpack", "bag"), ("sneaker", "shoe"), ("ankle boot", "shoe"),
              ("coffee mug", "mug"), ("travel mug", "bottle"), ("water bottle", "bottle"), ("desk lamp", "lamp"),
              ("table lamp", "lamp"), ("wristwatch", "round"), ("wall clock", "round"), ("armchair", "box"),
              ("storage box", "box"), ("over-ear headphones", "round"), ("crew neck t-shirt", "box")]
BRANDS = ["Northwind", "Atelier Nova", "Kestrel & Co", "Maison Verte", "Alder", "Quill", "Brightline", "Solvik", "Oda"]
ADJECTIVES = ["classic", "minimalist", "premium", "vintage", "handmade", "lightweight", "oversized", "compact",
              "waterproof", "everyday", "limited edition", "modern"]
FEATURES = ["adjustable strap", "magnetic closure", "reinforced stitching", "padded interior", "non-slip base",
            "double-wall insulation", "dimmable LED", "quick-release buckle", "hidden pocket", "brushed finish",
            "removable lining", "cushioned sole"]
OCCASIONS = ["daily commuting", "weekend trips", "the office", "gifting", "outdoor adventures", "home and studio use"]
CARE = ["Wipe clean with a damp cloth.", "Hand wash only.", "Machine washable at 30 degrees.",
        "Dishwasher safe.", "Avoid direct sunlight to preserve the colour."]


def product_text(rng: random.Random, color: str, material: str, category: str, n_words: int) -> str:
    """A title, followed by as much description as needed, cut to ``n_words`` words."""
    title = (f"{rng.choice(BRANDS)} {rng.choice(ADJECTIVES).title()} {color.title()} {material.title()} "
             f"{category.title()} with {rng.choice(FEATURES).title()}").split()
    sentences = [
        f"Crafted from {material}, this {color} {category} features a {rng.choice(FEATURES)} and a {rng.choice(FEATURES)}.",
        f"Designed for {rng.choice(OCCASIONS)}, it pairs a {rng.choice(ADJECTIVES)} silhouette with durable hardware.",
        f"Dimensions: {rng.randint(8, 60)} x {rng.randint(8, 60)} x {rng.randint(3, 30)} cm, "
        f"weight {rng.randint(90, 2400)} g.",
        rng.choice(CARE),
        f"Ships in recyclable packaging; colour may vary slightly from the photo of the {category}.",
        f"Ideal for {rng.choice(OCCASIONS)} and {rng.choice(OCCASIONS)}.",
    ]
    words = title + " ".join(sentences).split()
    return " ".join(words[:n_words])


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cell: int, channels: int = 1) -> np.ndarray:
    """Noise with ``cell``-px features in [-1, 1] (low-res noise upsampled bicubically)."""
    small = rng.integers(0, 256, (max(2, h // cell), max(2, w // cell), channels), dtype=np.uint8)
    planes = [np.asarray(Image.fromarray(small[..., c]).resize((w, h), Image.BICUBIC), np.float32) for c in range(channels)]
    return np.stack(planes, axis=-1) / 127.5 - 1.0


def _silhouette(rng: np.random.Generator, w: int, h: int, kind: str) -> Image.Image:
    """An anti-aliased 'L' mask of a product shape roughly centred in the frame."""
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = w * rng.uniform(0.42, 0.58), h * rng.uniform(0.45, 0.6)
    s = min(w, h) * rng.uniform(0.28, 0.38)
    line = max(4, int(s * 0.08))
    if kind == "bag":
        draw.rounded_rectangle((cx - s, cy - 0.6 * s, cx + s, cy + 0.8 * s), radius=int(0.15 * s), fill=255)
        draw.arc((cx - 0.6 * s, cy - 1.4 * s, cx + 0.6 * s, cy - 0.2 * s), 180, 360, fill=255, width=line)
    elif kind == "shoe":
        draw.polygon([(cx - 1.2 * s, cy + 0.5 * s), (cx - 1.1 * s, cy - 0.4 * s), (cx - 0.2 * s, cy - 0.5 * s),
                      (cx + 0.4 * s, cy), (cx + 1.2 * s, cy + 0.2 * s), (cx + 1.2 * s, cy + 0.5 * s)], fill=255)
    elif kind == "mug":
        draw.rounded_rectangle((cx - 0.7 * s, cy - 0.8 * s, cx + 0.5 * s, cy + 0.8 * s), radius=int(0.1 * s), fill=255)
        draw.ellipse((cx + 0.2 * s, cy - 0.5 * s, cx + 1.0 * s, cy + 0.4 * s), outline=255, width=line)
    elif kind == "bottle":
        draw.rounded_rectangle((cx - 0.45 * s, cy - 0.7 * s, cx + 0.45 * s, cy + 1.1 * s), radius=int(0.2 * s), fill=255)
        draw.rectangle((cx - 0.2 * s, cy - 1.2 * s, cx + 0.2 * s, cy - 0.6 * s), fill=255)
    elif kind == "lamp":
        draw.polygon([(cx - 0.8 * s, cy - 0.2 * s), (cx - 0.4 * s, cy - 1.1 * s), (cx + 0.4 * s, cy - 1.1 * s),
                      (cx + 0.8 * s, cy - 0.2 * s)], fill=255)
        draw.rectangle((cx - 0.06 * s, cy - 0.2 * s, cx + 0.06 * s, cy + 0.9 * s), fill=255)
        draw.ellipse((cx - 0.6 * s, cy + 0.8 * s, cx + 0.6 * s, cy + 1.1 * s), fill=255)
    elif kind == "round":
        draw.ellipse((cx - s, cy - s, cx + s, cy + s), fill=255)
    else:  # box
        draw.rectangle((cx - s, cy - 0.8 * s, cx + s, cy + 0.9 * s), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(max(1.0, s / 200)))


def _encode(pixels: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def product_photo(rng: np.random.Generator, w: int, h: int, rgb: tuple[int, int, int], kind: str,
                  target_bytes: int) -> bytes:
    """A studio-style product shot as JPEG (quality 90), its grain tuned to ``target_bytes``."""
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    top, bottom = rng.uniform(200, 250, 3), rng.uniform(150, 225, 3)
    backdrop = top * (1 - y) + bottom * y + 6 * _smooth_noise(rng, w, h, 64)

    mask = _silhouette(rng, w, h, kind)
    shift = (int(0.03 * w), int(0.04 * h))
    shadow = np.asarray(mask.transform(mask.size, Image.AFFINE, (1, 0, -shift[0], 0, 1, -shift[1]))
                        .filter(ImageFilter.GaussianBlur(min(w, h) / 40)), np.float32)[..., None] / 255
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :, None]
    shading = 1.0 + 0.25 * np.cos(1.5 * x) - 0.15 * y
    weave = _smooth_noise(rng, w, h, 3) * 0.6 + _smooth_noise(rng, w, h, 24) * 0.4
    body = np.asarray(rgb, np.float32) * shading + 14 * weave
    alpha = np.asarray(mask, np.float32)[..., None] / 255
    clean = (backdrop * (1 - 0.35 * shadow)) * (1 - alpha) + body * alpha

    grain = rng.standard_normal((h, w, 3), dtype=np.float32)
    lo, hi = 0.0, 16.0
    for _ in range(8):  # bisect grain strength until the JPEG lands near its target size
        sigma = (lo + hi) / 2
        data = _encode(clean + sigma * grain)
        if abs(len(data) - target_bytes) < 0.05 * target_bytes:
            break
        lo, hi = (sigma, hi) if len(data) < target_bytes else (lo, sigma)
    return data


ASPECTS = [3 / 4, 2 / 3, 4 / 5, 1.0, 1.0, 4 / 3, 3 / 2, 16 / 9]  # width / height


def build_corpus(spec: Spec, *, n: int | None = None, force: bool = False, seed: int = SEED) -> Path:
    """Write ``n`` (default ``spec.n_images``) JPEGs and ``manifest.json`` under ``spec.root``."""
    n = spec.n_images if n is None else n
    if spec.manifest.exists() and not force and len(json.loads(spec.manifest.read_text())) == n:
        return spec.manifest
    images = spec.root / "images"
    images.mkdir(parents=True, exist_ok=True)
    text_rng = random.Random(seed)
    lo_kb, hi_kb = spec.jpeg_kb
    entries = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        aspect = ASPECTS[i % len(ASPECTS)]
        long_side = int(rng.integers(spec.long_side[0], spec.long_side[1] + 1))
        w, h = (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
        color, rgb = COLORS[int(rng.integers(len(COLORS)))]
        category, kind = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        material = MATERIALS[int(rng.integers(len(MATERIALS)))]
        target = int(rng.uniform(lo_kb + 0.1 * (hi_kb - lo_kb), hi_kb - 0.1 * (hi_kb - lo_kb)) * 1024)
        data = product_photo(rng, w, h, rgb, kind, target)
        path = images / f"product_{i:04d}.jpg"
        path.write_bytes(data)
        text = product_text(text_rng, color, material, category, text_rng.randint(5, 60))
        entries.append({"path": str(path.relative_to(spec.root)), "text": text, "width": w, "height": h,
                        "bytes": len(data)})
    spec.manifest.write_text(json.dumps(entries, indent=1))
    return spec.manifest


def load_manifest(spec: Spec) -> list[tuple[Path, str]]:
    """``(absolute image path, text)`` pairs of the corpus."""
    return [(spec.root / e["path"], e["text"]) for e in json.loads(spec.manifest.read_text())]


def ensure_assets(spec: Spec, *, n: int | None = None, force: bool = False) -> Spec:
    build_checkpoint(spec, force=force)
    build_corpus(spec, n=n, force=force)
    return spec


# --- checks / CLI -----------------------------------------------------------------------


def describe(spec: Spec) -> str:
    """Human-readable summary of the assets, with the checks the benchmarks rely on."""
    from transformers import CLIPProcessor

    processor = CLIPProcessor.from_pretrained(spec.model_dir)
    tok = processor.tokenizer
    entries = json.loads(spec.manifest.read_text())
    kb = [e["bytes"] / 1024 for e in entries]
    words = [len(e["text"].split()) for e in entries]
    n_tokens = [len(ids) for ids in tok([e["text"] for e in entries])["input_ids"]]
    lo_kb, hi_kb = spec.jpeg_kb
    outside = sum(not lo_kb <= k <= hi_kb for k in kb)
    lines = [
        f"checkpoint  {spec.model_dir}",
        f"image proc  {type(processor.image_processor).__name__}",
        f"tokenizer   {type(tok).__name__}, vocab {len(tok)}",
    ]
    for text in ["a photo of a red leather handbag", "Northwind Minimalist Black Stainless-Steel Wristwatch!"]:
        lines.append(f"  {text!r} -> {tok.convert_ids_to_tokens(tok(text)['input_ids'])}")
    lines += [
        f"corpus      {len(entries)} images, {spec.manifest}",
        f"  JPEG KB   min {min(kb):.0f} / median {statistics.median(kb):.0f} / max {max(kb):.0f}"
        f" ({outside} outside {lo_kb}-{hi_kb})",
        f"  long side {min(max(e['width'], e['height']) for e in entries)}-"
        f"{max(max(e['width'], e['height']) for e in entries)} px, "
        f"aspects {sorted({round(e['width'] / e['height'], 2) for e in entries})}",
        f"  words     {min(words)}-{max(words)} (median {statistics.median(words):.0f}); "
        f"tokens {min(n_tokens)}-{max(n_tokens)}, {sum(t > 77 for t in n_tokens)} over 77 "
        f"(model_max_length {tok.model_max_length})",
        f"  example   {entries[0]['text']!r}",
    ]
    if len(tok) != VOCAB_SIZE or outside:
        raise SystemExit("\n".join(lines + ["asset check FAILED"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny config and 4 small images")
    parser.add_argument("--n", type=int, help="number of images (default: 200, smoke: 4)")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    quiet_transformers()
    spec = ensure_assets(SMOKE if args.smoke else FULL, n=args.n, force=args.force)
    print(describe(spec))


if __name__ == "__main__":
    main()
