"""GPU check: the engine on CUDA gives the float32 reference's answers, and how fast.

    bash bench/gpu_check.sh            # on a CUDA host; under 5 minutes
    python -m bench.gpu_check --device cpu --smoke   # the same code path on a CPU (tests)

1. Correctness: the engine's embeddings (DTYPE auto: float16 on CUDA) against
   plain transformers in float32 on the same device; min cosine must be >= 0.99,
   and the similarity scores must agree within 0.01.
2. Model alone: image-encoder throughput at batch 32 and 128.
3. End to end: JPEG bytes → decode_image (threads) → engine.encode_images, images/s.
Exits non-zero when the correctness check fails.
"""

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny checkpoint and 4 images")
    parser.add_argument("--images", type=int, default=128)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clipproject.settings")
    import django

    django.setup()
    import torch
    from django.test.utils import override_settings
    from transformers import CLIPModel, CLIPProcessor

    from bench import assets, quiet_transformers
    from clipcheck.engine.clip import ClipEngine
    from clipcheck.images import decode_image

    quiet_transformers()
    spec = assets.ensure_assets(assets.SMOKE if args.smoke else assets.FULL)
    pairs = assets.load_manifest(spec)
    count = 4 if args.smoke else args.images
    pairs = (pairs * (count // len(pairs) + 1))[:count]
    blobs = [path.read_bytes() for path, _ in pairs]
    texts = [text for _, text in pairs]

    with override_settings(CLIPCHECK={"MODEL": str(spec.model_dir), "DEVICE": args.device, "BATCH_SIZE": 32}):
        engine = ClipEngine.load(model_name=str(spec.model_dir), device=args.device)
        print(f"device {engine.device_name}, dtype {engine.dtype_name}, {count} images")
        images = [decode_image(blob).image for blob in blobs]

        # 1. Correctness against float32 plain transformers.
        processor = CLIPProcessor.from_pretrained(spec.model_dir)
        reference = CLIPModel.from_pretrained(spec.model_dir, dtype=torch.float32).to(engine.device).eval()
        sample = images[:16]
        with torch.no_grad():
            inputs = processor(images=sample, text=texts[:16], return_tensors="pt", padding=True, truncation=True).to(engine.device)
            ref_images = torch.nn.functional.normalize(reference.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output, dim=-1).cpu().numpy()
            ref_texts = torch.nn.functional.normalize(reference.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output, dim=-1).cpu().numpy()
        got_images = engine.encode_images(sample)
        got_texts, _ = engine.encode_texts(texts[:16])
        image_cos = (got_images * ref_images).sum(1).min()
        text_cos = (got_texts * ref_texts).sum(1).min()
        score_gap = np.abs((got_images * got_texts).sum(1) - (ref_images * ref_texts).sum(1)).max()
        correct = image_cos >= 0.99 and text_cos >= 0.99 and score_gap <= 0.01
        print(f"correctness: min cosine image {image_cos:.5f}, text {text_cos:.5f}; max score gap {score_gap:.5f} "
              f"-> {'OK' if correct else 'FAILED'}")

        # 2. Model alone.
        for batch in (32, 128):
            pixel_values = engine.preprocess(images[:min(batch, len(images))])
            pixel_values = np.tile(pixel_values, ((batch + len(pixel_values) - 1) // len(pixel_values), 1, 1, 1))[:batch]
            engine._forward_images(pixel_values)  # warm-up
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                engine._forward_images(pixel_values)
                if engine.device.startswith("cuda"):
                    torch.cuda.synchronize()
                runs.append(batch / (time.perf_counter() - started))
            print(f"model alone, batch {batch}: {statistics.median(runs):.1f} img/s (median of 3)")

        # 3. End to end: decode in threads while the model encodes.
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                decoded = [image.image for image in pool.map(decode_image, blobs)]
            engine.encode_images(decoded)
            runs.append(len(blobs) / (time.perf_counter() - started))
        print(f"end to end (JPEG bytes -> embeddings): {statistics.median(runs):.1f} img/s (median of 3)")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
