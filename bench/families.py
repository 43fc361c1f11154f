"""Image and text embeddings per checkpoint family, on PyTorch and OpenVINO: ``python -m bench --families``.

For each family the engine serves (CLIP, SigLIP, fixed-resolution SigLIP 2) the
random-weight checkpoint of ``bench.family_assets`` at the chosen size (``tiny``
with ``--smoke``: the test suite's fixtures; ``base``: ViT-B/16 at 224 px, what
a real base checkpoint costs), plus the known-answer fixtures that exist
(``tests/fixtures/known_answer_clip``, ``known_answer_siglip``), is loaded
through ``ClipEngine.load`` on ``torch`` and ``openvino`` (``--dtype``: by
default each family's own precision on this CPU, bf16 for CLIP and float32
for SigLIP where the CPU has bf16; OpenVINO converted once, untimed) and timed:

- images: ``encode_images`` of a batch of product-sized pictures (preprocessing included);
- texts: ``_encode_text_batch`` of a batch of listing texts (the text cache bypassed).

Every figure is the median over interleaved rounds of milliseconds per item,
wall clock and this process's CPU time (``bench.timing``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench import quiet_transformers
from bench.family_assets import BASE, FAMILY_BUILDERS, TINY
from bench.service import Row
from bench.timing import interleaved

ROOT = Path(__file__).resolve().parent.parent
KNOWN_ANSWER_FIXTURES = {"known-answer CLIP": ROOT / "tests" / "fixtures" / "known_answer_clip",
                         "known-answer SigLIP": ROOT / "tests" / "fixtures" / "known_answer_siglip"}
RUNTIMES = ("torch", "openvino")
IMAGE_BATCH, TEXT_BATCH = 16, 32
TEXTS = [
    "red leather handbag with a gold clasp", "ein blaues Baumwollhemd mit langen Ärmeln",
    "une robe jaune en lin pour l'été", "zapatillas de running negras con suela blanca",
    "a set of six ceramic mugs in assorted pastel colours, dishwasher safe, 350 ml each",
]


def pictures(count: int, seed: int = 0) -> list[Image.Image]:
    """Product-sized RGB pictures (noise over a gradient: nothing a decoder caches)."""
    rng = np.random.default_rng(seed)
    sizes = [(800, 800), (1024, 768), (640, 960)]
    out = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        gradient = np.linspace(60, 200, width)[None, :, None] * np.ones((height, 1, 3))
        noisy = gradient + rng.normal(0, 20, (height, width, 3))
        out.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    return out


def checkpoints(size_name: str, workdir: Path) -> dict[str, Path]:
    """``{label: checkpoint directory}``: each family at ``size_name``, then the known-answer fixtures present."""
    size = TINY if size_name == "tiny" else BASE
    built = {f"{family} ({size.name})": build(workdir / family, size=size) for family, build in FAMILY_BUILDERS.items()}
    return {**built, **{label: path for label, path in KNOWN_ANSWER_FIXTURES.items() if (path / "config.json").is_file()}}


def run(config, *, size: str | None = None, dtype: str = "auto") -> dict:
    from clipcheck.engine.clip import ClipEngine

    quiet_transformers()
    size = size or ("tiny" if config.spec.name == "smoke" else "base")
    rounds = max(3, config.rounds)
    images, texts = pictures(IMAGE_BATCH), (TEXTS * TEXT_BATCH)[:TEXT_BATCH]
    rows, raw = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        for label, checkpoint in checkpoints(size, Path(workdir)).items():
            engines = {
                runtime: ClipEngine.load(model_name=str(checkpoint), runtime=runtime, num_threads=config.threads,
                                         dtype=dtype, runtime_cache_dir=str(Path(workdir) / "runtime"),
                                         text_cache_size=0)
                for runtime in RUNTIMES
            }
            calls = {}
            for runtime, engine in engines.items():
                calls[f"{runtime} images"] = lambda engine=engine: engine.encode_images(images)
                calls[f"{runtime} texts"] = lambda engine=engine: engine._encode_text_batch(texts)
            timings = interleaved(calls, repeats=rounds)
            family = next(iter(engines.values())).family
            raw[label] = {"family": family, **{name: timing.as_dict() for name, timing in timings.items()}}
            for runtime, engine in engines.items():
                for kind, count in (("images", IMAGE_BATCH), ("texts", TEXT_BATCH)):
                    timing = timings[f"{runtime} {kind}"]
                    rows.append(Row(
                        key=f"{label}:{runtime}:{kind}", label=f"{label} {runtime} ({engine.precision}) {kind}",
                        value=timing.median * 1000 / count, unit="ms/it",
                        note=f"cpu {timing.cpu_median * 1000 / count:.2f} ms/it; family {family}; batch {count}",
                    ))
    return {"rows": rows, "raw": raw}
