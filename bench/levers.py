"""Micro-benchmarks of the speed levers for the CLIP engine, against the float32 baseline.

Levers: weight dtype (float32 / bfloat16 weights / bfloat16 autocast) and batch size for the
image encoder, text-encoder latency, torch thread count, JPEG draft decoding, batched
tensor preprocessing, ``torch.compile`` and ONNX Runtime. Variants of one lever run
interleaved (one call of each per round) so that load from other processes on this shared
machine hits them alike; figures are medians over rounds, warm-up excluded.

    python -m bench.levers            # full ViT-B/32 (10-20 minutes on 2 busy cores)
    python -m bench.levers --smoke    # tiny model, 4 images, seconds; skips compile/ONNX
    python -m bench.levers --threads 1 --only image threads

Prints one table and writes ``bench/results/levers[-smoke][-Nthr][-LEVERS].json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from bench import quiet_transformers
from bench.assets import CACHE, CATEGORIES, COLORS, FULL, SMOKE, Spec, ensure_assets, load_manifest
from bench.naive import RESULTS, load_fp32, run_naive
from bench.timing import Timing, interleaved

ORT_DIR = CACHE / "ort"  # onnxruntime/onnx/onnxscript, pip-installed with --target (kept out of the venv)
DTYPES = ("fp32", "bf16", "autocast")


@dataclass
class Row:
    lever: str
    variant: str
    value: float | None  # None: skipped
    unit: str
    speedup: float | None = None  # wall-clock speedup vs the group's fp32 / full-decode / processor baseline
    cpu_speedup: float | None = None  # the same in CPU seconds (steadier under load from other processes)
    note: str = ""


def compare(lever: str, timings: dict[str, Timing], base: str, value: Callable[[float], float], unit: str, *,
            label: Callable[[str], str] = str, note: Callable[[str], str] = lambda _: "") -> list[Row]:
    """One row per timed variant; ``value`` maps median wall seconds to the shown figure."""
    b = timings[base]
    return [Row(lever, label(k), value(t.median), unit, b.median / t.median, b.cpu_median / t.cpu_median, note(k))
            for k, t in timings.items()]


# --- candidate fast-path building blocks -----------------------------------------------


def open_draft(path: Path, min_side: int) -> Image.Image:
    """Decode a JPEG at the largest 1/2, 1/4, 1/8 DCT reduction keeping both sides >= ``min_side``."""
    image = Image.open(path)
    image.draft("RGB", (min_side, min_side))  # picks scale = largest s in (8,4,2,1) with size // s >= min_side
    return image.convert("RGB")


def preprocess_batch(images: Iterable[Image.Image], processor: CLIPProcessor) -> torch.Tensor:
    """``CLIPImageProcessorPil`` semantics (BICUBIC shortest-edge resize, center crop, rescale,
    normalise) with the normalisation done once for the whole batch in torch."""
    ip = processor.image_processor
    size, crop = ip.size["shortest_edge"], ip.crop_size["height"]
    crops = []
    for image in images:
        w, h = image.size
        scale = size / min(w, h)
        new = (size, int(h * scale)) if w <= h else (int(w * scale), size)  # HF truncates the long side
        image = image.resize(new, Image.BICUBIC)
        left, top = (new[0] - crop) // 2, (new[1] - crop) // 2
        crops.append(np.asarray(image.crop((left, top, left + crop, top + crop))))
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(ip.image_std).view(1, 3, 1, 1)
    return (batch * ip.rescale_factor - mean) / std


def processor_pixels(images: Iterable[Image.Image], processor: CLIPProcessor) -> torch.Tensor:
    """Reference preprocessing: ``CLIPImageProcessorPil`` one image at a time."""
    return torch.cat([processor.image_processor(im, return_tensors="pt")["pixel_values"] for im in images])


# --- helpers ----------------------------------------------------------------------------


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Models:
    """The float32 model, a bfloat16-weight copy, and feature functions per dtype mode."""

    def __init__(self, spec: Spec):
        self.fp32, self.processor = load_fp32(spec)
        self.bf16 = CLIPModel.from_pretrained(spec.model_dir, dtype=torch.bfloat16).eval()

    def image(self, mode: str, pixels: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if mode == "bf16":
                return self.bf16.get_image_features(pixel_values=pixels.to(torch.bfloat16)).pooler_output
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
                return self.fp32.get_image_features(pixel_values=pixels).pooler_output

    def text(self, mode: str, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            model = self.bf16 if mode == "bf16" else self.fp32
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
                return model.get_text_features(**tokens).pooler_output


# --- levers -----------------------------------------------------------------------------


def image_encoder(m: Models, pixels: torch.Tensor, batches: tuple[int, ...], smoke: bool) -> list[Row]:
    rows = []
    for batch in batches:
        x = pixels[:batch]
        t = interleaved({mode: (lambda mode=mode: m.image(mode, x)) for mode in DTYPES},
                        repeats=2 if smoke else max(3, 32 // batch))
        rows += compare("image encoder", t, "fp32", lambda s, batch=batch: batch / s, "img/s",
                        label=lambda k, batch=batch: f"{k} batch {batch}",
                        note=lambda k, t=t: f"{t[k].median * 1e3:.0f} ms/batch")
    ref = m.image("fp32", pixels)
    for mode in ("bf16", "autocast"):
        cos = cosine(ref, m.image(mode, pixels))
        rows.append(Row("image emb. cosine", f"{mode} vs fp32", cos.min().item(), "min cos",
                        note=f"mean {cos.mean():.5f} over {len(cos)} images"))
    return rows


def text_encoder(m: Models, texts: list[str], prompts: list[str], smoke: bool) -> list[Row]:
    rows = []
    tok = m.processor.tokenizer
    for label, batch in ((f"1 text ({len(texts[0].split())} words)", texts[:1]), (f"{len(prompts)} prompts", prompts)):
        tokens = dict(tok(batch, padding=True, truncation=True, return_tensors="pt"))
        t = interleaved({mode: (lambda mode=mode: m.text(mode, tokens)) for mode in DTYPES},
                        repeats=2 if smoke else 10)
        rows += compare("text encoder", t, "fp32", lambda s: s * 1e3, "ms", label=lambda k, label=label: f"{k} {label}")
        ref = m.text("fp32", tokens)
        rows.append(Row("text emb. cosine", f"bf16 vs fp32, {label}", cosine(ref, m.text("bf16", tokens)).min().item(),
                        "min cos"))
    return rows


def thread_counts(m: Models, pixels: torch.Tensor, batch: int, smoke: bool) -> list[Row]:
    x = pixels[:batch]

    def call(mode: str, n: int):
        with threads(n):
            m.image(mode, x)

    variants = {f"{mode} {n} thr": (lambda mode=mode, n=n: call(mode, n)) for mode in ("fp32", "bf16") for n in (1, 2)}
    t = interleaved(variants, repeats=2 if smoke else 4)
    return compare("threads", t, "fp32 2 thr", lambda s: batch / s, "img/s", label=lambda k: f"{k} batch {batch}")


def decoding(m: Models, paths: list[Path], smoke: bool) -> list[Row]:
    size = m.processor.image_processor.crop_size["height"]
    decoders = {
        "full decode": lambda p: Image.open(p).convert("RGB"),
        f"draft >={size}": lambda p: open_draft(p, size),
        f"draft >={2 * size}": lambda p: open_draft(p, 2 * size),
    }
    rows = []
    reps = 1 if smoke else 3
    decode_t = interleaved({k: (lambda d=d: [d(p) for p in paths]) for k, d in decoders.items()}, repeats=reps)
    total_t = interleaved({k: (lambda d=d: processor_pixels([d(p) for p in paths], m.processor))
                           for k, d in decoders.items()}, repeats=reps)
    ref_pixels = processor_pixels([decoders["full decode"](p) for p in paths], m.processor)
    ref = m.image("fp32", ref_pixels)
    scale, dpx = {}, {}
    for name, decode in decoders.items():
        images = [decode(p) for p in paths]
        pixels = processor_pixels(images, m.processor)
        scale[name] = np.median([Image.open(p).size[0] / im.size[0] for p, im in zip(paths, images)])
        dpx[name] = (pixels - ref_pixels).abs()
        if name != "full decode":
            cos = cosine(ref, m.image("fp32", pixels))
            rows.append(Row("decode emb. cosine", f"{name} vs full", cos.min().item(), "min cos",
                            note=f"mean {cos.mean():.5f} over {len(cos)} images (fp32)"))
    per_image = lambda s: s * 1e3 / len(paths)  # noqa: E731
    return (compare("decode", decode_t, "full decode", per_image, "ms/img", note=lambda k: f"median scale 1/{scale[k]:.0f}")
            + compare("decode + processor", total_t, "full decode", per_image, "ms/img",
                      note=lambda k: f"|dpx| max {dpx[k].max():.3f}, mean {dpx[k].mean():.4f}")
            + rows)


def preprocessing(m: Models, paths: list[Path], smoke: bool) -> list[Row]:
    size = m.processor.image_processor.crop_size["height"]
    rows = []
    for label, decode in (("full-size input", lambda p: Image.open(p).convert("RGB")),
                          (f"draft >={size} input", lambda p: open_draft(p, size))):
        images = [decode(p) for p in paths]
        t = interleaved({"processor": lambda: processor_pixels(images, m.processor),
                         "batched tensor": lambda: preprocess_batch(images, m.processor)}, repeats=2 if smoke else 3)
        diff = (preprocess_batch(images, m.processor) - processor_pixels(images, m.processor)).abs().max().item()
        rows += compare("preprocess", t, "processor", lambda s, n=len(images): s * 1e3 / n, "ms/img",
                        label=lambda k, label=label: f"{k}, {label}",
                        note=lambda k, diff=diff: f"|dpx| max {diff:.1e}" if k != "processor" else "")
    return rows


# --- torch.compile / ONNX Runtime (each in a subprocess with a time limit) --------------


class VisionTower(torch.nn.Module):
    """``get_image_features`` as a module returning the projected embeddings (to compile/export)."""

    def __init__(self, clip: CLIPModel):
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.clip.get_image_features(pixel_values=pixel_values).pooler_output


def _worker(kind: str, spec: Spec, batch: int) -> list[Row]:
    """Run in a child process: eager vs the compiled / exported vision tower, interleaved."""
    dtype = torch.bfloat16 if kind == "compile-bf16" else torch.float32
    eager = VisionTower(CLIPModel.from_pretrained(spec.model_dir, dtype=dtype)).eval()
    x = torch.randn(batch, 3, 224, 224, dtype=dtype)
    start = time.perf_counter()
    if kind.startswith("compile"):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp()  # cold compile, not a cached one
        compiled = torch.compile(eager)
        fast = lambda: compiled(x)  # noqa: E731
        variant = f"torch.compile {kind[-4:]}"
    else:
        sys.path.append(str(ORT_DIR))
        import onnxruntime as ort

        onnx_path = Path(tempfile.mkdtemp()) / "vision.onnx"
        torch.onnx.export(eager, (x,), onnx_path, input_names=["pixel_values"], dynamo=True,
                          dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch")}})
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        feed = {"pixel_values": x.numpy()}
        fast = lambda: torch.from_numpy(session.run(None, feed)[0])  # noqa: E731
        variant = f"onnxruntime {ort.__version__} fp32"
    with torch.inference_mode():  # entered here, not inside the traced module: dynamo cannot trace it
        diff = (fast() - eager(x)).abs().max().item()  # the first call also compiles
        setup = time.perf_counter() - start
        t = interleaved({"eager": lambda: eager(x), "fast": fast}, repeats=5)
    names = {"eager": f"eager {variant[-4:]} batch {batch}", "fast": f"{variant} batch {batch}"}
    notes = {"eager": "same process", "fast": f"setup {setup:.0f} s, max |d| {diff:.1e}"}
    return compare("compiled", t, "eager", lambda s: batch / s, "img/s", label=names.get, note=notes.get)


def run_worker(kind: str, batch: int, timeout: int) -> list[Row]:
    if kind == "onnx" and not (ORT_DIR / "onnxruntime").exists():
        return [Row("compiled", "onnxruntime", None, "img/s",
                    note=f"skipped: pip install --target {ORT_DIR} onnxruntime onnx onnxscript")]
    cmd = [sys.executable, "-m", "bench.levers", "--worker", kind, "--batch", str(batch),
           "--threads", str(torch.get_num_threads())]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True,
                              cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        return [Row("compiled", kind, None, "img/s", note=f"skipped: not done within {timeout} s")]
    except subprocess.CalledProcessError as err:
        return [Row("compiled", kind, None, "img/s", note=f"failed: {err.stderr.strip().splitlines()[-1]}")]
    return [Row(**r) for r in json.loads(done.stdout.strip().splitlines()[-1])]


# --- table / CLI ------------------------------------------------------------------------


def format_table(rows: list[Row]) -> str:
    lines = [f"{'lever':<20} {'variant':<34} {'value':>10} {'unit':<8} {'x base':>7} {'cpu x':>6}  note", "-" * 118]
    for r in rows:
        value = "-" if r.value is None else f"{r.value:.5f}" if r.unit == "min cos" else f"{r.value:.2f}"
        speed, cpu = (f"{x:.2f}" if x is not None else "" for x in (r.speedup, r.cpu_speedup))
        lines.append(f"{r.lever:<20} {r.variant:<34} {value:>10} {r.unit:<8} {speed:>7} {cpu:>6}  {r.note}")
    return "\n".join(lines)


LEVERS = ("naive", "image", "text", "threads", "decode", "preprocess", "compile", "onnx")


def run_levers(spec: Spec, *, naive_pairs: int, only: Iterable[str]) -> tuple[list[Row], dict | None]:
    """Rows of the selected levers (in ``LEVERS`` order) and the naive-loop details, if run."""
    smoke = spec is SMOKE
    m = Models(spec)
    pairs = load_manifest(spec)
    paths = [p for p, _ in pairs][: 4 if smoke else 32]
    batches = (1, 2) if smoke else (1, 8, 32)
    pixels = processor_pixels([Image.open(p).convert("RGB") for p in paths[: max(batches)]], m.processor)
    prompts = [f"a photo of a {color} {category}" for color, _ in COLORS for category, _ in CATEGORIES][:45]
    texts = [t for _, t in pairs]
    texts.sort(key=lambda t: abs(len(t.split()) - 30))  # one text of typical (~30 words) length first
    naive: dict = {}

    def naive_row() -> list[Row]:
        naive.update(run_naive(spec, pairs=naive_pairs, repeats=1 if smoke else 3))
        stages = ", ".join(f"{k} {v:.0f}" for k, v in naive["stage_ms"].items())
        return [Row("naive loop", f"fp32, 1 pair per call, {naive['threads']} thr", naive["pairs_per_s"], "pairs/s",
                    1.0, 1.0, f"{naive['ms_per_pair']:.0f} ms/pair; {stages}")]

    stages: dict[str, Callable[[], list[Row]]] = {
        "naive": naive_row,
        "image": lambda: image_encoder(m, pixels, batches, smoke),
        "text": lambda: text_encoder(m, texts, prompts, smoke),
        "threads": lambda: thread_counts(m, pixels, batches[-1] if smoke else 8, smoke),
        "decode": lambda: decoding(m, paths, smoke),
        "preprocess": lambda: preprocessing(m, paths, smoke),
        "compile": lambda: run_worker("compile-fp32", 8, timeout=240) + run_worker("compile-bf16", 8, timeout=240),
        "onnx": lambda: run_worker("onnx", 8, timeout=240),
    }
    rows = []
    for name in (n for n in LEVERS if n in set(only)):
        print(f"[levers] {name}", file=sys.stderr, flush=True)
        rows += stages[name]()
    return rows, naive or None


def cpu_model() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    isa = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{name or platform.machine()}, {os.cpu_count()} cpus, {' '.join(isa) or 'no bf16 ISA'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model and 4 images; skips compile/ONNX")
    parser.add_argument("--only", nargs="+", choices=LEVERS, help="levers to run (default: all; smoke: all but compile, onnx)")
    parser.add_argument("--naive-pairs", type=int, help="pairs per naive-loop repeat (default 20, smoke 4)")
    parser.add_argument("--threads", type=int, help="torch threads for all but the 'threads' lever (default: torch's)")
    parser.add_argument("--worker", choices=("compile-fp32", "compile-bf16", "onnx"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_transformers()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = ensure_assets(SMOKE if args.smoke else FULL)
    if args.worker:
        print(json.dumps([asdict(r) for r in _worker(args.worker, spec, args.batch)]))
        return

    only = args.only or [n for n in LEVERS if not (args.smoke and n in ("compile", "onnx"))]
    load_before = os.getloadavg()
    started = time.time()
    rows, naive = run_levers(spec, naive_pairs=args.naive_pairs or (4 if args.smoke else 20), only=only)
    machine = {
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "wall_s": time.time() - started,
    }
    print(format_table(rows))
    print(f"\n{machine['cpu']}; torch {torch.__version__} ({machine['cpu_capability']}), {machine['threads']} threads; "
          f"load average {load_before[0]:.2f} before, {machine['loadavg_after'][0]:.2f} after; {machine['wall_s']:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    suffix = ("-smoke" if args.smoke else "") + (f"-{args.threads}thr" if args.threads else "")
    suffix += "-" + "-".join(only) if args.only else ""
    out = RESULTS / f"levers{suffix}.json"
    out.write_text(json.dumps({"spec": spec.name, "levers": only, "machine": machine, "naive": naive,
                               "rows": [asdict(r) for r in rows]}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
