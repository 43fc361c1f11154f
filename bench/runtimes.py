"""Every runtime side by side, in one run: ``python -m bench --runtimes``.

What is measured (docs/bench.md has the table and the latest figures):

- model alone, in this process, for PyTorch (the engine's dtype), OpenVINO exact and OpenVINO
  int8: the image encoder at the engine's batch (32), the texts of the audit's batches (titles
  and descriptions, cut into forwards like ``encode_texts`` does), one image forward; achieved
  GFLOP/s from the FLOPs of the towers (``vision_flops``, ``text_flops``) against the cores'
  matmul peak measured here (bf16; int8 taken as twice that: VNNI does twice the multiply-adds
  per instruction of AVX512-BF16). The int8 build is measured even where its guard failed on
  this checkpoint (the bench's weights are random): the row says whether it may be served;
- the naive loop, and ``clip_audit --recheck`` on every runtime that may be served;
- one gunicorn per served runtime, started with the shipped ``gunicorn.conf.py`` and the
  default admission settings (one worker, its 8 threads): uncached ``/clip/analyze`` p50,
  sequential throughput, 8 concurrent clients (answers that are 200, throughput), peak RSS;
  start to healthy with a cold and a warm runtime cache;
- the int8 guard on the known-answer model (``tests/fixtures/known_answer_clip``).

Rounds are interleaved: each round measures every runtime in turn, so load from other
processes hits them alike; figures are medians of rounds (latency percentiles pool requests).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.service import (
    CLIENTS,
    ROOT,
    TARGETS,
    Config,
    Inputs,
    Row,
    Target,
    Timings,
    Workspace,
    analyze_figures,
    analyze_round,
    audit_state_reset,
    audit_text_forwards,
    audit_timed,
    compared,
    concurrency_ceiling,
    django_setup,
    engine_pixels,
    free_port,
    gunicorn_wait_healthy,
    http_request,
    listing_texts,
    listings_seed,
    median,
    multipart,
    percentile,
    proc_cpu_seconds,
    proc_status_kb,
    process_stop,
    progress,
    usable_cores,
)

RUNTIMES = ("torch", "openvino", "openvino-int8")

TARGETS.update({
    "int8_image_vs_torch": Target(">= 2x", lambda r: r >= 2.0),
    "int8_text_vs_torch": Target(">= 1.8x", lambda r: r >= 1.8),
    "runtime_audit_vs_naive": Target(">= 4x", lambda r: r >= 4.0),
    "runtime_audit_vs_model": Target(">= 90%", lambda r: r >= 0.90),
    "analyze_vs_torch_server": Target("<= 0.6x", lambda r: r <= 0.6),
    "all_200": Target("100%", lambda r: r >= 1.0),
    "concurrent_vs_sequential_default": Target(">= 1.5x", lambda r: r >= 1.5),
    "guard_agreement": Target(">= 99.5%", lambda r: r >= 0.995),
    "guard_gap": Target("<= 0.01", lambda gap: gap <= 0.01),
    "warm_start": Target("<= 15 s", lambda s: s <= 15.0),
})


# --- FLOPs of the towers -------------------------------------------------------------------


def _encoder_flops(tokens: int, width: int, mlp: int, layers: int) -> float:
    """Multiply-adds x 2 of a transformer encoder on ``tokens`` tokens (softmax and norms omitted)."""
    projections = 4 * tokens * width * width  # q, k, v, out
    attention = 2 * tokens * tokens * width  # scores and weighted values
    feed_forward = 2 * tokens * width * mlp
    return 2.0 * layers * (projections + attention + feed_forward)


def vision_flops(config) -> float:
    """FLOPs of one image through the vision tower and its projection (ViT-B/32: about 4.4 G)."""
    vision = config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    embedding = 2.0 * patches * vision.num_channels * vision.patch_size ** 2 * vision.hidden_size
    encoder = _encoder_flops(patches + 1, vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers)
    return embedding + encoder + 2.0 * vision.hidden_size * config.projection_dim


def text_flops(config, tokens: int) -> float:
    """FLOPs of one text of ``tokens`` tokens (padding included) through the text tower."""
    text = config.text_config
    encoder = _encoder_flops(tokens, text.hidden_size, text.intermediate_size, text.num_hidden_layers)
    return encoder + 2.0 * text.hidden_size * config.projection_dim


def matmul_peak_gflops(threads: int) -> float:
    """bf16 GFLOP/s of a large square matmul on ``threads`` threads: the practical ceiling."""
    import torch

    torch.set_num_threads(threads)
    size = 2048
    a = torch.randn(size, size, dtype=torch.bfloat16)
    b = torch.randn(size, size, dtype=torch.bfloat16)
    a @ b
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


# --- engines -------------------------------------------------------------------------------


def load_engines(model_dir: Path, threads: int, cache_dir: Path) -> tuple[dict, dict]:
    """An engine per runtime (lanes off: each forward gets every thread) and the int8 guard."""
    from clipcheck.engine import openvino
    from clipcheck.engine.clip import ClipEngine, local_checkpoint, resolve_dtype
    from clipcheck.engine.lanes import ForwardLanes

    engines = {}
    for name in ("torch", "openvino"):
        progress(f"loading the {name} engine")
        engines[name] = ClipEngine.load(model_name=str(model_dir), num_threads=threads, runtime=name,
                                        concurrent_encoders=False, runtime_cache_dir=str(cache_dir))
    progress("building the int8 model (generic calibration set)")
    checkpoint = local_checkpoint(str(model_dir))
    guard = openvino.runtime_build(checkpoint=checkpoint, cache_dir=str(cache_dir))
    int8_dir = openvino.build_dir(cache_dir, checkpoint) / "int8"
    # Measured whatever its guard said: the bench's weights are random.
    base = engines["torch"]
    # At the precision its guard measured the unquantised layers at (None: the CPU default).
    precision = guard.get("precision")
    int8 = openvino.OpenVinoRuntime(
        image_model=openvino.compile_model(int8_dir / "image.xml", precision=precision, threads=threads),
        text_model=openvino.compile_model(int8_dir / "text.xml", precision=precision, threads=threads),
        logit_scale=base.logit_scale, int8=True, guard=guard,
    )
    engines["openvino-int8"] = ClipEngine(
        model_name=str(model_dir), runtime=int8, image_processor=base.image_processor, tokenizer=base.tokenizer,
        dims=base.dims, device=base.device, dtype=resolve_dtype("auto", base.device),
        lanes=ForwardLanes(count=1, threads=threads),
    )
    return engines, guard


def known_answer_guard(cache_dir: Path) -> dict:
    """The int8 guard on the known-answer model: held-out pictures with right and wrong captions,
    the build the test suite guards (``cache_dir`` is empty, so it is built afresh)."""
    from knownanswer.runtime import int8_build

    return int8_build(str(cache_dir))


# --- servers -------------------------------------------------------------------------------


def server_env(workspace: Workspace, *, runtime: str, cache_dir: Path) -> dict:
    env = {
        **os.environ, **workspace.env, "DJANGO_SETTINGS_MODULE": "bench.server_settings",
        "CLIPCHECK_RUNTIME": runtime, "CLIPCHECK_RUNTIME_CACHE_DIR": str(cache_dir),
    }
    env.pop("CLIPCHECK_NUM_THREADS", None)  # the default: every core, split between the lanes
    return env


def deploy_build(workspace: Workspace, cache_dir: Path) -> float:
    """The deploy step, `manage.py clip_build_runtime`, with the servers' settings: int8
    calibrated and guarded on the bench catalogue's own listings, models compiled. Seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "clip_build_runtime"], cwd=ROOT, capture_output=True, text=True,
        env=server_env(workspace, runtime="auto", cache_dir=cache_dir),
    )
    (workspace.root / "clip_build_runtime.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"clip_build_runtime failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.monotonic() - started


class RuntimeServer:
    """gunicorn with the shipped gunicorn.conf.py (one worker, its threads) and default admission."""

    def __init__(self, workspace: Workspace, *, runtime: str, cache_dir: Path, label: str):
        self.port = free_port()
        self.label = label
        self.log_path = workspace.root / f"gunicorn-{label}.log"
        env = {
            **server_env(workspace, runtime=runtime, cache_dir=cache_dir),
            "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "1",
            # Only so that a worker converting a model on a loaded machine is not killed.
            "GUNICORN_TIMEOUT": "600",
        }
        self.started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "clipproject.wsgi:application"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.worker_pid = None
        self.healthy_after = None

    def wait_healthy(self, timeout: float = 900) -> float:
        import json

        body, self.worker_pid = gunicorn_wait_healthy(
            self.process, self.port, timeout=timeout, log_tail=lambda: self.log_path.read_text()[-3000:])
        self.healthy_after = time.monotonic() - self.started
        self.health = json.loads(body)
        return self.healthy_after

    def request(self, method, path, body=None, content_type=None, timeout=300):
        return http_request(self.port, method, path, body, content_type, timeout)

    def post(self, body) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        status, payload = self.request("POST", "/clip/analyze", *body)
        return time.perf_counter() - started, status, payload

    def peak_rss_mb(self) -> float:
        return proc_status_kb(self.worker_pid, "VmHWM") / 1024

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.worker_pid)

    def stop(self) -> None:
        process_stop(self.process)


# --- the run -------------------------------------------------------------------------------


def run(config: Config) -> dict:
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clipcheck-bench-runtimes-")))
        workspace = Workspace(root=root, model_dir=config.spec.model_dir)
        django_setup(workspace, threads=config.threads)
        return _measure(config, workspace, root, stack)


def _measure(config: Config, workspace: Workspace, root: Path, stack: ExitStack) -> dict:
    import torch
    from django.conf import settings

    from bench import quiet_transformers
    from bench.naive import load_fp32, naive_score
    from clipcheck.images import decode_image
    from clipcheck.settings import clip_settings

    quiet_transformers()
    threads = config.threads
    # Kept between runs (keyed by content): the builds are not what is measured here,
    # except by the cold start below, which gets an empty cache of its own.
    cache_dir = config.spec.root / "runtime"
    inputs = Inputs(config.spec)
    listings_seed(inputs, config.audit_listings)

    progress("int8 guard on the known-answer model")
    guard_known = known_answer_guard(root / "known-answer-cache")
    progress("bf16 matmul peak")
    peak_bf16 = matmul_peak_gflops(threads)
    engines, guard_bench = load_engines(config.spec.model_dir, threads, cache_dir)
    torch.set_num_threads(threads)
    served = "openvino-int8" if guard_bench["passed"] else "openvino"

    # Cold start: the server converts (and compiles) into an empty cache of its own; warm: again.
    progress("servers: start to healthy, cold then warm runtime cache")
    start_cache = root / "start-cache"
    cold = RuntimeServer(workspace, runtime="auto", cache_dir=start_cache, label="cold")
    stack.callback(cold.stop)
    cold_seconds = cold.wait_healthy()
    cold.stop()
    progress("deploy step: manage.py clip_build_runtime (int8 on the catalogue's own photos)")
    build_seconds = deploy_build(workspace, start_cache)
    servers = {"auto": RuntimeServer(workspace, runtime="auto", cache_dir=start_cache, label="auto")}
    stack.callback(servers["auto"].stop)
    warm_seconds = servers["auto"].wait_healthy()
    servers["torch"] = RuntimeServer(workspace, runtime="torch", cache_dir=start_cache, label="torch")
    stack.callback(servers["torch"].stop)
    torch_start_seconds = servers["torch"].wait_healthy()

    batch = int(clip_settings.BATCH_SIZE)
    batch_jpegs = [data for data, _ in inputs.pairs[:batch]]
    pictures = [decode_image(data).image for data in batch_jpegs]
    pixels = engine_pixels(engines["torch"], pictures, batch)
    listing_batch = [listing_texts(text) for _, text in inputs.pairs[:min(batch, config.audit_listings)]]
    listing_text_batch = sorted((text for pair in listing_batch for text in pair), key=len)
    text_batches = [listing_text_batch[start:start + batch] for start in range(0, len(listing_text_batch), batch)]
    text_tokens = [engines["torch"].tokenize(chunk)[0]["input_ids"].shape for chunk in text_batches]
    model_config = engines["torch"].runtime.model.config
    text_gflop = sum(rows * text_flops(model_config, length) for rows, length in text_tokens) / 1e9
    image_gflop = batch * vision_flops(model_config) / 1e9

    naive_model, processor = load_fp32(config.spec)
    from bench.assets import load_manifest

    naive_pairs = load_manifest(config.spec)[:config.naive_pairs]
    naive_score(naive_model, processor, *naive_pairs[0])
    for engine in engines.values():  # first calls pick kernels
        engine._forward_images(pixels[:4])
        engine._encode_text_batch(listing_text_batch[:4])
    for server in servers.values():
        for _ in range(2):
            data, text = inputs.fresh()
            server.post(multipart({"text": text}, data))

    image, text, single = ({name: Timings() for name in engines} for _ in range(3))
    naive, audits = Timings(), {name: [] for name in ("torch", served)}
    audit_texts = {name: Timings() for name in audits}
    audit_text_rows = {name: [] for name in audits}
    figures = {name: analyze_figures() for name in servers}
    for round_number in range(1, config.rounds + 1):
        for name, engine in engines.items():
            progress(f"round {round_number}/{config.rounds}: model alone, {name}")
            torch.set_num_threads(threads)
            image[name].add(lambda: engine._forward_images(pixels), repeats=2)
            text[name].add(lambda: [engine._encode_text_batch(chunk) for chunk in text_batches], repeats=1)
            single[name].add(lambda: engine._forward_images(pixels[:1]), repeats=config.forward_repeats)
        progress(f"round {round_number}/{config.rounds}: naive")
        naive.add(lambda: [naive_score(naive_model, processor, path, t) for path, t in naive_pairs], repeats=1)
        for name in audits:
            progress(f"round {round_number}/{config.rounds}: clip_audit, {name}")
            # A batch job: no web request's time budget on its computations.
            settings.CLIPCHECK = {**settings.CLIPCHECK, "RUNTIME": name, "RUNTIME_CACHE_DIR": str(cache_dir),
                                  "CONCURRENT_ENCODERS": False, "INFERENCE_TIMEOUT_SECONDS": 3600}
            clip_settings.reload()
            audit_state_reset()
            audit_forwards = []  # not text_batches: the text rows above measure those every round
            audits[name].append(audit_timed(config.audit_listings, audit_forwards))
            # The audit's text forwards alone (passages, attribute rewrites, category prompts),
            # batch for batch, on this runtime's engine.
            torch.set_num_threads(threads)
            audit_texts[name].add(lambda: audit_text_forwards(engines[name], audit_forwards), repeats=1)
            audit_text_rows[name].append(sum(len(texts) for texts in audit_forwards))
        for name, server in servers.items():
            progress(f"round {round_number}/{config.rounds}: gunicorn {name}")
            analyze_round(lambda body, server=server: server.request("POST", "/clip/analyze", *body), inputs,
                          server.cpu_seconds, figures[name], sequential=config.analyze_requests,
                          per_client=config.requests_per_client)

    model_mb = sum(f.stat().st_size for f in config.spec.model_dir.glob("*.safetensors")) / 2**20
    raw = {
        "threads": threads, "cores": usable_cores(), "batch": batch, "served": served, "peak_bf16_gflops": peak_bf16,
        "image_gflop_per_batch": image_gflop, "text_gflop_per_pass": text_gflop,
        "texts_per_pass": len(listing_text_batch), "listings_per_pass": len(listing_batch),
        "precisions": {name: engine.precision for name, engine in engines.items()},
        "image": {k: v.__dict__ for k, v in image.items()}, "text": {k: v.__dict__ for k, v in text.items()},
        "single": {k: v.__dict__ for k, v in single.items()}, "naive": {"pairs": len(naive_pairs), **naive.__dict__},
        "audit": audits, "servers": figures,
        "audit_texts": {name: {"rows": audit_text_rows[name], "listings": config.audit_listings,
                               **timings.__dict__} for name, timings in audit_texts.items()},
        "server_health": {name: server.health for name, server in servers.items()},
        "peak_rss_mb": {name: server.peak_rss_mb() for name, server in servers.items()},
        "model_on_disk_mb": model_mb,
        "start_seconds": {"cold": cold_seconds, "warm": warm_seconds, "torch": torch_start_seconds,
                          "deploy_build": build_seconds},
        "guard_known_answer": guard_known, "guard_bench_model": guard_bench,
    }
    return {"rows": build_rows(config, raw), "raw": raw}


def build_rows(config: Config, raw: dict) -> list[Row]:
    t, batch, served = raw["threads"], raw["batch"], raw["served"]
    wall = lambda part: median(part["wall"])  # noqa: E731
    cpu = lambda part: median(part["cpu"])  # noqa: E731
    image = {name: batch / wall(part) for name, part in raw["image"].items()}
    image_cpu = {name: cpu(part) for name, part in raw["image"].items()}
    texts = raw["texts_per_pass"]
    text = {name: texts / wall(part) for name, part in raw["text"].items()}
    text_cpu = {name: cpu(part) for name, part in raw["text"].items()}
    peak, precisions = raw["peak_bf16_gflops"], raw["precisions"]
    guard_bench = raw["guard_bench_model"]
    int8_note = "guard passed on this checkpoint" if guard_bench["passed"] else (
        f"guard failed on this random-weight checkpoint (agreement {guard_bench['agreement']:.1%}, gap "
        f"{guard_bench['max_score_gap']:.3f}): measured, not served")
    rows = []
    for name in RUNTIMES:
        label = f"image encoder, batch {batch}: {name} ({precisions[name]}) [{t} thr]"
        row = Row(f"image@{name}", label, image[name], "img/s",
                  note=f"cpu {image_cpu[name] / batch * 1e3:.0f} ms/img" + ("; " + int8_note if "int8" in name else ""))
        if name != "torch":
            row = compared(row, image[name] / image["torch"], f"{image[name] / image['torch']:.2f}x torch",
                           "int8_image_vs_torch" if "int8" in name else None,
                           cpu_ratio=image_cpu["torch"] / image_cpu[name])
        rows.append(row)
    for name in RUNTIMES:
        label = f"text encoder, audit batches ({texts} texts): {name} [{t} thr]"
        row = Row(f"text@{name}", label, text[name], "txt/s", note=f"cpu {text_cpu[name] / texts * 1e3:.1f} ms/text")
        if name != "torch":
            row = compared(row, text[name] / text["torch"], f"{text[name] / text['torch']:.2f}x torch",
                           "int8_text_vs_torch" if "int8" in name else None,
                           cpu_ratio=text_cpu["torch"] / text_cpu[name])
        rows.append(row)
    for name in RUNTIMES:
        ceiling = peak * (2 if "int8" in name else 1)
        image_gflops = raw["image_gflop_per_batch"] / wall(raw["image"][name])
        text_gflops = raw["text_gflop_per_pass"] / wall(raw["text"][name])
        rows.append(compared(
            Row(f"gflops@{name}", f"achieved GFLOP/s, image | text: {name} [{t} thr]", image_gflops, "GFLOP/s",
                note=f"text {text_gflops:.0f} GFLOP/s ({text_gflops / ceiling:.0%}); ceiling {ceiling:.0f} GFLOP/s "
                     f"({'int8 = 2x ' if 'int8' in name else ''}bf16 matmul measured on {t} thr)"),
            image_gflops / ceiling, f"{image_gflops / ceiling:.0%} of ceiling"))
    naive = raw["naive"]["pairs"] / wall(raw["naive"])
    naive_cpu = cpu(raw["naive"]) / raw["naive"]["pairs"]
    for name, runs in raw["audit"].items():
        audit = median([a["images"] / a["wall_s"] for a in runs])
        audit_cpu = median([a["cpu_s"] / a["images"] for a in runs])
        # The old definition of the model work per listing: one image of a batch-32 forward, a
        # listing's two texts. It leaves out most of the audit's text forwards.
        listing_s = wall(raw["image"][name]) / batch + wall(raw["text"][name]) / raw["listings_per_pass"]
        listing_cpu = image_cpu[name] / batch + text_cpu[name] / raw["listings_per_pass"]
        # What the audit's verdicts need: the same image forward and the text forwards the audit
        # ran (title, description passages, attribute rewrites of failing passages, category
        # prompts), replayed alone at the engine's batch.
        texts_run = raw["audit_texts"][name]
        own_s = wall(raw["image"][name]) / batch + wall(texts_run) / texts_run["listings"]
        own_cpu = image_cpu[name] / batch + cpu(texts_run) / texts_run["listings"]
        rows_per_listing = median(texts_run["rows"]) / texts_run["listings"]
        rows.append(compared(
            Row(f"audit_vs_naive@{name}", f"clip_audit --recheck, {config.audit_listings} listings: {name} [{t} thr]",
                audit, "img/s", note=f"naive {naive:.2f} img/s; cpu {audit_cpu * 1e3:.0f} ms/img"),
            audit / naive, f"{audit / naive:.2f}x naive", "runtime_audit_vs_naive" if name == served else None,
            cpu_ratio=naive_cpu / audit_cpu))
        rows.append(compared(
            Row(f"audit_vs_model_2texts@{name}", f"clip_audit vs {name} model alone, 1 image + 2 texts", audit,
                "img/s", note="old definition: leaves out the passages, rewrites and prompts the verdicts need"),
            audit * listing_s, f"{audit * listing_s:.0%} of model alone", cpu_ratio=listing_cpu / audit_cpu))
        rows.append(compared(
            Row(f"audit_vs_model@{name}", f"clip_audit vs {name} model alone, its own forwards", audit, "img/s",
                note=f"1 image + {rows_per_listing:.1f} text rows per listing; cpu {own_cpu * 1e3:.0f} ms/listing"),
            audit * own_s, f"{audit * own_s:.0%} of model alone",
            "runtime_audit_vs_model" if name == served else None, cpu_ratio=own_cpu / audit_cpu))
    servers = raw["servers"]
    p50 = {name: percentile(f["latency"], 50) * 1e3 for name, f in servers.items()}
    p50_cpu = {name: median(f["sequential_cpu"]) * 1e3 for name, f in servers.items()}
    rows.append(Row("analyze_p50@torch", "/clip/analyze p50 uncached, torch server (default config)", p50["torch"],
                    "ms", note=f"worker cpu {p50_cpu['torch']:.0f} ms/req"))
    rows.append(compared(
        Row("analyze_p50@auto", f"/clip/analyze p50 uncached, auto server ({raw['server_health']['auto']['runtime']})",
            p50["auto"], "ms", note=f"worker cpu {p50_cpu['auto']:.0f} ms/req"),
        p50["auto"] / p50["torch"], f"{p50['auto'] / p50['torch']:.2f}x torch server", "analyze_vs_torch_server",
        cpu_ratio=p50_cpu["auto"] / p50_cpu["torch"]))
    for name, f in servers.items():
        ok = f["statuses"].count(200) / len(f["statuses"])
        others = sorted({s for s in f["statuses"] if s != 200})
        rows.append(compared(
            Row(f"all_200@{name}", f"{CLIENTS} concurrent clients, default config: 200s, {name} server", ok * 100, "%",
                note=f"{len(f['statuses'])} requests" + (f"; other statuses {others}" if others else "")),
            ok, f"{ok:.0%} answered 200", "all_200"))
        sequential, concurrent = median(f["sequential"]), median(f["concurrent"])
        concurrent_cpu = median(f["concurrent_cpu"])
        ceiling = concurrency_ceiling(cores=raw["cores"], sequential=sequential, cpu_per_request=concurrent_cpu)
        rows.append(compared(
            Row(f"concurrent@{name}", f"{CLIENTS} concurrent clients vs sequential, {name} server", concurrent,
                "req/s", note=f"sequential {sequential:.2f} req/s; worker cpu {concurrent_cpu * 1e3:.0f} ms/req under "
                              f"{CLIENTS} clients: at most {ceiling:.2f}x on {raw['cores']} cores"),
            concurrent / sequential, f"{concurrent / sequential:.2f}x sequential",
            "concurrent_vs_sequential_default"))
    guard = raw["guard_known_answer"]
    rows.append(compared(
        Row("guard_agreement", "int8 vs float32 on known answers: verdict agreement", guard["agreement"] * 100, "%",
            note=f"{guard['pairs']} held-out pairs at threshold {guard['threshold']:g}"),
        guard["agreement"], f"{guard['agreement']:.2%} agree", "guard_agreement"))
    rows.append(compared(
        Row("guard_gap", "int8 vs float32 on known answers: max score gap", guard["max_score_gap"], "score",
            note=(f"int8 {'enabled' if guard['passed'] else 'refused'} on the known-answer model: "
                  f"{guard['int8_layers']} of {guard['matmul_layers']} matmuls int8; every matmul int8: "
                  f"{guard['steps'][0]['max_score_gap']:.4f}")),
        guard["max_score_gap"], f"{guard['max_score_gap']:.4f}", "guard_gap"))
    for name, peak_mb in raw["peak_rss_mb"].items():
        over = peak_mb - raw["model_on_disk_mb"]
        rows.append(compared(Row(f"rss@{name}", f"gunicorn worker peak RSS (VmHWM), {name} server", peak_mb, "MB"),
                             over, f"model {raw['model_on_disk_mb']:.0f} MB {over:+.0f} MB", "rss_over_model"))
    starts = raw["start_seconds"]
    rows.append(Row("start_cold", "start to healthy, auto server, cold runtime cache", starts["cold"], "s",
                    note="converts and compiles the exact model"))
    rows.append(Row("deploy_build", "manage.py clip_build_runtime (deploy step, int8 + guard)", starts["deploy_build"],
                    "s", note="quantises on the catalogue's photos, guards, compiles"))
    rows.append(compared(Row("start_warm", "start to healthy, auto server, warm runtime cache", starts["warm"], "s",
                             note=f"torch server {starts['torch']:.1f} s"),
                         starts["warm"], f"{starts['warm']:.1f} s", "warm_start"))
    return rows
