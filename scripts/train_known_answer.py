#!/usr/bin/env python
"""Train the tiny "known-answer" CLIP fixture from scratch (CPU, deterministic).

    python scripts/train_known_answer.py --out tests/fixtures/known_answer_clip

The domain (shapes x colours on varied backgrounds) lives in
``knownanswer/domain.py`` (shared with the tests and the demo catalogue).
The script

1. builds a small byte-level BPE ``CLIPTokenizer`` whose merges spell the
   domain's words (any other text still tokenizes, byte by byte);
2. pre-renders a balanced training set (seeds < TRAIN_SEED_LIMIT) at sizes
   64-224 px (a quarter JPEG round-tripped) and runs it through the real
   ``CLIPImageProcessorPil``;
3. trains a small ``CLIPModel`` (ViT 64 px / patch 8) with a CLIP contrastive
   loss: every step, each image is contrasted with one caption per
   (shape, colour) pair, per colour and per shape (random templates), and
   each caption with the batch's images using soft targets, since batches
   hold several images of the same pair (see ``clip_loss``);
4. saves model (safetensors), tokenizer and image-processor config;
5. reloads the directory with plain ``CLIPProcessor`` + ``CLIPModel`` in
   float32 and measures quality on a held-out set (seeds >= HELDOUT_SEED_BASE),
   prints the figures, writes ``metrics.json`` and exits 1 if a gate fails.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the 2 cores are shared: do not spin

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Run as a script: the repository root holds the knownanswer package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tokenizers import pre_tokenizers  # noqa: E402
from tokenizers.trainers import BpeTrainer  # noqa: E402
from transformers import (  # noqa: E402
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
)
from transformers.utils import logging as hf_logging  # noqa: E402

from knownanswer import domain as dom  # noqa: E402

IMAGE_SIZE = 64
GATES = {
    "auroc_colour_mismatch": 0.98,
    "auroc_shape_mismatch": 0.90,
    "zeroshot_colour_top1": 0.90,
    "zeroshot_shape_top1": 0.80,
}
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


# ------------------------------------------------------------------ tokenizer


def build_tokenizer() -> CLIPTokenizer:
    """Byte-level BPE over the domain vocabulary, with the full byte alphabet
    (plain and ``</w>``) so unknown words still tokenize."""
    scratch = CLIPTokenizer()  # only for its normalizer / pre-tokenizer pipeline
    backend = scratch.backend_tokenizer
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    trainer = BpeTrainer(
        vocab_size=2000,
        min_frequency=1,
        special_tokens=[BOS, EOS],
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    backend.train_from_iterator(dom.all_captions(), trainer)
    model = json.loads(backend.to_str())["model"]
    trained_vocab: dict[str, int] = model["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    # deterministic final ids: specials, byte alphabet, alphabet + </w>, merged tokens
    vocab: dict[str, int] = {}
    for tok in [BOS, EOS] + alphabet + [a + "</w>" for a in alphabet]:
        vocab.setdefault(tok, len(vocab))
    for tok, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]):
        vocab.setdefault(tok, len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    return tok


def check_tokenizer(tok: CLIPTokenizer) -> dict:
    unk = tok.unk_token_id
    words = sorted({w for c in dom.all_captions() for w in c.replace(":", " ").split()})
    single = sum(len(tok(w, add_special_tokens=False)["input_ids"]) == 1 for w in words)
    odd = tok("zebra café 42 ÜBER-weird!", add_special_tokens=False)["input_ids"]
    assert unk not in odd, "unknown words must tokenize without <unk>"
    long = tok(" ".join(["red circle"] * 100), truncation=True, max_length=77)["input_ids"]
    assert len(long) == 77 and long[0] == tok.bos_token_id and long[-1] == tok.eos_token_id
    return {"vocab_size": len(tok), "domain_words": len(words), "domain_words_single_token": single}


# ----------------------------------------------------------------------- data


def jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def make_train_set(per_pair: int, image_processor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Balanced set: ``per_pair`` images for each (shape, colour), seeds
    < TRAIN_SEED_LIMIT.  Sizes mix 64 px with larger renders that go through
    the processor's bicubic resize; a quarter are JPEG round-tripped."""
    sizes = [64, 64, 80, 96, 128, 160, 224, 64]
    pix, shp, col = [], [], []
    n_pairs = len(dom.SHAPES) * len(dom.COLOURS)
    for j in range(per_pair):
        imgs = []
        for si, s in enumerate(dom.SHAPES):
            for ci, c in enumerate(dom.COLOURS):
                p = si * len(dom.COLOURS) + ci
                seed = j * n_pairs + p
                assert seed < dom.TRAIN_SEED_LIMIT
                size = sizes[(seed * 7) % len(sizes)]
                img = dom.render(s, c, seed=seed, size=size)
                if seed % 4 == 1:
                    img = jpeg_roundtrip(img, 70 + (seed * 13) % 26)
                imgs.append(img)
                shp.append(si)
                col.append(ci)
        pix.append(image_processor(imgs, return_tensors="pt")["pixel_values"])
    return torch.cat(pix), torch.tensor(shp), torch.tensor(col)


def caption_table(tok: CLIPTokenizer):
    """All training captions with their (shape, colour) labels; -1 = unspecified."""
    caps, cs, cc, kind = [], [], [], []
    for si, s in enumerate(dom.SHAPES):
        for ci, c in enumerate(dom.COLOURS):
            for k in range(len(dom.FULL_TEMPLATES)):
                caps.append(dom.caption(s, c, k)); cs.append(si); cc.append(ci); kind.append(0)
    for ci, c in enumerate(dom.COLOURS):
        for k in range(len(dom.COLOUR_TEMPLATES)):
            caps.append(dom.colour_caption(c, k)); cs.append(-1); cc.append(ci); kind.append(1)
    for si, s in enumerate(dom.SHAPES):
        for k in range(len(dom.SHAPE_TEMPLATES)):
            caps.append(dom.shape_caption(s, k)); cs.append(si); cc.append(-1); kind.append(2)
    enc = tok(caps, padding=True, return_tensors="pt")
    return caps, enc["input_ids"], enc["attention_mask"], torch.tensor(cs), torch.tensor(cc), torch.tensor(kind)


# ---------------------------------------------------------------------- model


def build_model(tok: CLIPTokenizer, args) -> CLIPModel:
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=args.text_hidden,
            intermediate_size=args.text_hidden * 4,
            num_hidden_layers=args.text_layers,
            num_attention_heads=4,
            projection_dim=args.proj,
            max_position_embeddings=77,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        vision_config=dict(
            image_size=IMAGE_SIZE,
            patch_size=args.patch,
            hidden_size=args.vision_hidden,
            intermediate_size=args.vision_hidden * 4,
            num_hidden_layers=args.vision_layers,
            num_attention_heads=4,
            projection_dim=args.proj,
        ),
        projection_dim=args.proj,
    )
    return CLIPModel(cfg)


def clip_loss(model, pixel_values, ids, mask, img_s, img_c, txt_s, txt_c, txt_kind):
    """CLIP contrastive loss against a per-step caption set that holds one
    full caption for every (shape, colour) pair, one colour-only caption per
    colour and one shape-only caption per shape (templates drawn at random).

    image -> text: a softmax over the 48 full captions, one over the colour
    captions and one over the shape captions (the last two train exactly the
    zero-shot prompts' use);  text -> image: softmax over the batch images with
    soft targets, since several images match each caption.
    """
    img = F.normalize(model.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)
    txt = F.normalize(model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, dim=-1)
    logits = model.logit_scale.exp() * img @ txt.t()  # [n_img, n_txt]
    pos = ((txt_s[None, :] < 0) | (txt_s[None, :] == img_s[:, None])) & (
        (txt_c[None, :] < 0) | (txt_c[None, :] == img_c[:, None])
    )
    losses, accs = [], []
    for k in (0, 1, 2):  # full / colour-only / shape-only captions
        cols = txt_kind == k
        target = pos[:, cols].float().argmax(1)  # exactly one positive per image in each group
        losses.append(F.cross_entropy(logits[:, cols], target))
        accs.append((logits[:, cols].argmax(1) == target).float().mean().item())
    posf = pos.float()
    t2i = -(posf / posf.sum(0, keepdim=True) * F.log_softmax(logits, dim=0)).sum(0)
    losses.append(t2i.mean())
    return sum(losses) / len(losses), accs


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Label-preserving horizontal flips (every upright shape is left-right symmetric)."""
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def train(args, tok, image_processor):
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    t0 = time.time()
    pix, img_s, img_c = make_train_set(args.per_pair, image_processor)
    caps, cap_ids, cap_mask, cap_s, cap_c, cap_kind = caption_table(tok)
    full_idx = torch.nonzero(cap_kind == 0).squeeze(1)
    col_idx = torch.nonzero(cap_kind == 1).squeeze(1)
    shp_idx = torch.nonzero(cap_kind == 2).squeeze(1)
    n_col, n_shp, n_ft = len(dom.COLOURS), len(dom.SHAPES), len(dom.FULL_TEMPLATES)
    n_ct, n_st = len(dom.COLOUR_TEMPLATES), len(dom.SHAPE_TEMPLATES)
    print(f"data: {len(pix)} training images, {len(caps)} captions, {time.time() - t0:.1f}s", flush=True)

    model = build_model(tok, args)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters", flush=True)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-6,
    )
    warm = max(1, args.steps // 15)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )

    # indices of images grouped by pair so each batch is balanced over pairs
    pair = img_s * n_col + img_c
    n_pairs = n_shp * n_col
    by_pair = [torch.nonzero(pair == p).squeeze(1) for p in range(n_pairs)]
    per_batch = max(1, args.batch // n_pairs)

    t_train, cpu0 = time.time(), time.process_time()
    acc_hist = []
    for step in range(args.steps):
        sel = torch.cat([bp[torch.randint(0, len(bp), (per_batch,), generator=g)] for bp in by_pair])
        x = augment(pix[sel], g)
        s_b, c_b = img_s[sel], img_c[sel]
        # per-step caption set: every pair / colour / shape once, random templates
        tmpl = torch.randint(0, 1 << 20, (len(cap_kind),), generator=g)
        cap = torch.cat([
            full_idx.view(-1, n_ft)[torch.arange(n_pairs), tmpl[:n_pairs] % n_ft],
            col_idx.view(n_col, -1)[torch.arange(n_col), tmpl[n_pairs:n_pairs + n_col] % n_ct],
            shp_idx.view(n_shp, -1)[torch.arange(n_shp), tmpl[-n_shp:] % n_st],
        ])
        ids, mask = cap_ids[cap], cap_mask[cap]
        L = int(mask.sum(1).max())
        loss, accs = clip_loss(model, x, ids[:, :L], mask[:, :L], s_b, c_b, cap_s[cap], cap_c[cap], cap_kind[cap])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        acc_hist.append(accs)
        if step % 25 == 0 or step == args.steps - 1:
            el = time.time() - t_train
            a = np.mean(acc_hist[-25:], axis=0)
            print(
                f"step {step:4d}/{args.steps} loss {loss.item():.4f} batch-acc full/colour/shape "
                f"{a[0]:.2f}/{a[1]:.2f}/{a[2]:.2f} "
                f"scale {model.logit_scale.exp().item():.1f} lr {sched.get_last_lr()[0]:.2e} "
                f"[{el:.0f}s wall, {time.process_time() - cpu0:.0f}s cpu]",
                flush=True,
            )
    train_s = time.time() - t_train
    train_cpu_s = time.process_time() - cpu0
    model.eval()
    return model, (train_s, train_cpu_s), n_params


# ----------------------------------------------------------------- evaluation


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability a random positive scores above a random negative (ties = 1/2)."""
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    i = 0
    while i < len(sv):  # average ranks for ties
        j = i
        while j + 1 < len(sv) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rp = ranks[: len(pos)].sum()
    return float((rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def pick_threshold(pos: np.ndarray, neg: np.ndarray) -> dict:
    """Threshold maximising balanced accuracy (mean of TPR and TNR); among
    equally good thresholds, the middle of the best range."""
    cand = np.unique(np.concatenate([pos, neg]))
    cand = np.concatenate([[cand[0] - 1e-3], (cand[:-1] + cand[1:]) / 2, [cand[-1] + 1e-3]])
    ps, ns = np.sort(pos), np.sort(neg)
    tpr = 1 - np.searchsorted(ps, cand, side="left") / len(ps)  # pos >= thr
    tnr = np.searchsorted(ns, cand, side="left") / len(ns)  # neg < thr
    bal = (tpr + tnr) / 2
    best = bal.max()
    idx = np.nonzero(bal >= best - 1e-12)[0]
    thr = float((cand[idx[0]] + cand[idx[-1]]) / 2)
    tp = float((pos >= thr).mean())
    tn = float((neg < thr).mean())
    prec = (pos >= thr).sum() / max(1, (pos >= thr).sum() + (neg >= thr).sum())
    f1 = 2 * prec * tp / max(1e-12, prec + tp)
    return {"threshold": round(thr, 4), "balanced_accuracy": tp / 2 + tn / 2, "tpr": tp, "tnr": tn, "f1": float(f1)}


@torch.no_grad()
def evaluate(model_dir: Path, per_pair: int) -> dict:
    """Plain transformers inference, float32, from the saved directory."""
    processor = CLIPProcessor.from_pretrained(model_dir)
    model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    classes = {"image_processor": type(processor.image_processor).__name__, "tokenizer": type(processor.tokenizer).__name__}
    assert classes == {"image_processor": "CLIPImageProcessorPil", "tokenizer": "CLIPTokenizer"}, classes
    items = dom.heldout_items(per_pair=per_pair)

    def img_emb(images):
        out = []
        for i in range(0, len(images), 128):
            inp = processor(images=images[i : i + 128], return_tensors="pt")
            out.append(F.normalize(model.get_image_features(**inp).pooler_output, dim=-1))
        return torch.cat(out)

    def txt_emb(texts):
        inp = processor(text=texts, padding=True, truncation=True, return_tensors="pt")
        return F.normalize(model.get_text_features(**inp).pooler_output, dim=-1)

    images = [dom.render(s, c, seed=seed, size=size) for s, c, seed, size in items]
    I = img_emb(images)

    n_ft = len(dom.FULL_TEMPLATES)
    caps = [dom.caption(s, c, k) for s in dom.SHAPES for c in dom.COLOURS for k in range(n_ft)]
    T = txt_emb(caps)
    sim = (I @ T.t()).numpy()

    def cap_index(s, c, k):
        return (dom.SHAPES.index(s) * len(dom.COLOURS) + dom.COLOURS.index(c)) * n_ft + k

    rng = np.random.default_rng(12345)
    match, mis_col, mis_shp = [], [], []
    for n, (s, c, seed, size) in enumerate(items):
        k = int(rng.integers(n_ft))
        match.append(sim[n, cap_index(s, c, k)])
        mis_col += [sim[n, cap_index(s, c2, k)] for c2 in dom.COLOURS if c2 != c]
        mis_shp += [sim[n, cap_index(s2, c, k)] for s2 in dom.SHAPES if s2 != s]
    match, mis_col, mis_shp = map(np.asarray, (match, mis_col, mis_shp))
    mis_all = np.concatenate([mis_col, mis_shp])

    # per-image pairwise ranking accuracy: the true caption beats every mismatch (same template)
    n_col, n_shp = len(dom.COLOURS), len(dom.SHAPES)
    col_rank = (match[:, None] > mis_col.reshape(len(items), n_col - 1)).all(1).mean()
    shp_rank = (match[:, None] > mis_shp.reshape(len(items), n_shp - 1)).all(1).mean()

    # zero-shot classification
    zc = (I @ txt_emb([dom.colour_prompt(c) for c in dom.COLOURS]).t()).argmax(1).numpy()
    zs = (I @ txt_emb([dom.shape_prompt(s) for s in dom.SHAPES]).t()).argmax(1).numpy()
    true_c = np.array([dom.COLOURS.index(c) for _, c, _, _ in items])
    true_s = np.array([dom.SHAPES.index(s) for s, _, _, _ in items])
    zs_by_size = {
        str(sz): {
            "colour": float((zc == true_c)[[it[3] == sz for it in items]].mean()),
            "shape": float((zs == true_s)[[it[3] == sz for it in items]].mean()),
        }
        for sz in dom.HELDOUT_SIZES
    }
    confusion_colour = {
        c: {c2: int(((true_c == i) & (zc == j)).sum()) for j, c2 in enumerate(dom.COLOURS) if ((true_c == i) & (zc == j)).any()}
        for i, c in enumerate(dom.COLOURS)
    }
    confusion_shape = {
        s: {s2: int(((true_s == i) & (zs == j)).sum()) for j, s2 in enumerate(dom.SHAPES) if ((true_s == i) & (zs == j)).any()}
        for i, s in enumerate(dom.SHAPES)
    }

    # pipeline-bug sanity checks (informational): the answers SHOULD change
    sub = [it for it in items if it[1] in ("red", "blue")][::4]
    bgr = [Image.fromarray(np.asarray(dom.render(s, c, seed=sd, size=sz))[..., ::-1].copy()) for s, c, sd, sz in sub]
    zc_bgr = (img_emb(bgr) @ txt_emb([dom.colour_prompt(c) for c in dom.COLOURS]).t()).argmax(1).numpy()
    swapped = {"red": "blue", "blue": "red"}
    bgr_flip = float(np.mean([dom.COLOURS[p] == swapped[c] for p, (_, c, _, _) in zip(zc_bgr, sub)]))

    blk = [it for it in items if it[1] == "black"][::2]
    rgba = [dom.render(s, c, seed=sd, size=sz, background="transparent") for s, c, sd, sz in blk]
    on_white = []
    on_black = []
    for im in rgba:
        w = Image.new("RGB", im.size, (255, 255, 255)); w.paste(im, mask=im.split()[3]); on_white.append(w)
        b = Image.new("RGB", im.size, (0, 0, 0)); b.paste(im, mask=im.split()[3]); on_black.append(b)
    S = txt_emb([dom.shape_prompt(s) for s in dom.SHAPES])
    C = txt_emb([dom.colour_prompt(c) for c in dom.COLOURS])
    Iw, Ib = img_emb(on_white), img_emb(on_black)
    ts = np.array([dom.SHAPES.index(s) for s, _, _, _ in blk])
    black = dom.COLOURS.index("black")
    transp = {
        "black_objects_on_white_shape_top1": float(((Iw @ S.t()).argmax(1).numpy() == ts).mean()),
        "black_objects_on_white_colour_top1": float(((Iw @ C.t()).argmax(1).numpy() == black).mean()),
        "black_objects_on_black_shape_top1": float(((Ib @ S.t()).argmax(1).numpy() == ts).mean()),
    }
    Tblk = txt_emb([dom.caption(s, "black", 0) for s, _, _, _ in blk])
    transp["black_on_white_median_match_cos"] = float(np.median((Iw * Tblk).sum(1).numpy()))
    transp["black_on_black_median_match_cos"] = float(np.median((Ib * Tblk).sum(1).numpy()))

    # JPEG (quality 75) round trip of every 4th held-out image: zero-shot stays right?
    jsub = items[::4]
    Ij = img_emb([jpeg_roundtrip(images[i], 75) for i in range(0, len(items), 4)])
    jpeg = {
        "colour_top1": float(((Ij @ C.t()).argmax(1).numpy() == true_c[::4]).mean()),
        "shape_top1": float(((Ij @ S.t()).argmax(1).numpy() == true_s[::4]).mean()),
        "n": len(jsub),
    }

    thr = pick_threshold(match, mis_all)
    q = lambda a, p: round(float(np.percentile(a, p)), 4)  # noqa: E731
    return {
        "heldout_images": len(items),
        "heldout_sizes": list(dom.HELDOUT_SIZES),
        "auroc_colour_mismatch": auroc(match, mis_col),
        "auroc_shape_mismatch": auroc(match, mis_shp),
        "auroc_any_mismatch": auroc(match, mis_all),
        "rank_true_beats_all_colour_swaps": float(col_rank),
        "rank_true_beats_all_shape_swaps": float(shp_rank),
        "zeroshot_colour_top1": float((zc == true_c).mean()),
        "zeroshot_shape_top1": float((zs == true_s).mean()),
        "zeroshot_by_size": zs_by_size,
        "confusion_colour": confusion_colour,
        "confusion_shape": confusion_shape,
        "cosine": {
            "match_median": q(match, 50),
            "match_p05": q(match, 5),
            "colour_mismatch_median": q(mis_col, 50),
            "colour_mismatch_p95": q(mis_col, 95),
            "shape_mismatch_median": q(mis_shp, 50),
            "shape_mismatch_p95": q(mis_shp, 95),
        },
        "threshold": thr,
        "jpeg_q75_zeroshot": jpeg,
        "processor_classes": classes,
        "pipeline_bug_checks": {
            "bgr_swap_red_blue_flipped_fraction": bgr_flip,
            **transp,
        },
    }


# ----------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/known_answer_clip"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=96, help="rounded down to a multiple of the 48 pairs")
    ap.add_argument("--per-pair", type=int, default=150, help="training images per (shape, colour)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vision-hidden", type=int, default=128)
    ap.add_argument("--vision-layers", type=int, default=2)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--text-hidden", type=int, default=64)
    ap.add_argument("--text-layers", type=int, default=2)
    ap.add_argument("--proj", type=int, default=64)
    ap.add_argument("--eval-per-pair", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-only", action="store_true", help="only evaluate an existing --out directory")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    hf_logging.set_verbosity_error()
    t_all = time.time()
    out: Path = args.out

    if not args.eval_only:
        tok = build_tokenizer()
        tok_info = check_tokenizer(tok)
        print(f"tokenizer: {tok_info}", flush=True)
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        )
        model, (train_s, train_cpu_s), n_params = train(args, tok, image_processor)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)
    else:
        train_s, train_cpu_s, n_params, tok_info = None, None, None, None

    t_eval = time.time()
    m = evaluate(out, args.eval_per_pair)
    size_bytes = sum(f.stat().st_size for f in out.iterdir() if f.is_file() and f.name != "metrics.json")
    m.update(
        {
            "gates": GATES,
            "train_seconds": None if train_s is None else round(train_s, 1),
            "train_cpu_seconds": None if train_cpu_s is None else round(train_cpu_s, 1),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "eval_seconds": round(time.time() - t_eval, 1),
            "total_seconds": round(time.time() - t_all, 1),
            "checkpoint_bytes": size_bytes,
            "parameters": n_params,
            "tokenizer": tok_info,
            "command": "python scripts/train_known_answer.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "train_config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        }
    )
    failed = [k for k, v in GATES.items() if not m[k] >= v]
    m["gates_passed"] = not failed
    if not args.eval_only:
        (out / "metrics.json").write_text(json.dumps(m, indent=2, sort_keys=False) + "\n")

    print("\n=== held-out quality (plain CLIPProcessor + CLIPModel, float32) ===")
    print(f"held-out images: {m['heldout_images']} (sizes {m['heldout_sizes']}, seeds >= {dom.HELDOUT_SEED_BASE})")
    for k, v in GATES.items():
        print(f"  {k:28s} {m[k]:.4f}   (gate >= {v})  {'OK' if m[k] >= v else 'FAIL'}")
    print(f"  {'auroc_any_mismatch':28s} {m['auroc_any_mismatch']:.4f}")
    print(f"  true caption beats all colour swaps: {m['rank_true_beats_all_colour_swaps']:.4f}, "
          f"all shape swaps: {m['rank_true_beats_all_shape_swaps']:.4f}")
    print(f"  zero-shot by size: {m['zeroshot_by_size']}")
    c = m["cosine"]
    print(f"  cosine match median {c['match_median']:.4f} (p05 {c['match_p05']:.4f}); "
          f"colour-mismatch median {c['colour_mismatch_median']:.4f} (p95 {c['colour_mismatch_p95']:.4f}); "
          f"shape-mismatch median {c['shape_mismatch_median']:.4f} (p95 {c['shape_mismatch_p95']:.4f})")
    t = m["threshold"]
    print(f"  SUGGESTED MISMATCH THRESHOLD (raw cosine): {t['threshold']:.4f}  "
          f"(balanced acc {t['balanced_accuracy']:.4f}, TPR {t['tpr']:.4f}, TNR {t['tnr']:.4f}, F1 {t['f1']:.4f})")
    print(f"  JPEG q75 zero-shot: {m['jpeg_q75_zeroshot']}")
    print(f"  pipeline-bug checks: {m['pipeline_bug_checks']}")
    print(f"  colour confusion: {m['confusion_colour']}")
    print(f"  shape confusion: {m['confusion_shape']}")
    print(
        f"checkpoint: {out} ({size_bytes / 1e6:.2f} MB), train {m['train_seconds']}s wall / "
        f"{m['train_cpu_seconds']}s cpu, total {m['total_seconds']}s, load average {m['load_average_at_end']}"
    )
    if failed:
        print(f"QUALITY GATES FAILED: {failed}", file=sys.stderr)
        return 1
    print("all quality gates passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
