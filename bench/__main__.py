"""The end-to-end benchmark of the service: one table, every figure measured in the same run.

    python -m bench                        # ViT-B/32, 3 rounds (about 4-5 minutes on 2 busy cores)
    python -m bench --smoke                # tiny model, 1 round (seconds; the test suite runs it)
    python -m bench --threads 2 --compare-threads 0
    python -m bench --runtimes             # torch, OpenVINO and OpenVINO int8 side by side (bench/runtimes.py)
    python -m bench --adaptation           # clip_adapt on 10,000 labelled photos (bench/adaptation.py)
    python -m bench --families             # image and text embeddings per checkpoint family (bench/families.py)

Prints the table and writes ``bench/results/bench.json`` (``bench-smoke.json`` for
``--smoke``). ``bench/service.py`` says what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench.assets import ensure_assets
from bench.naive import RESULTS
from bench.service import Config, format_table, machine, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model, tiny counts, one round")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the naive loop, the model alone, the audit and the first server "
                             "(default 1)")
    parser.add_argument("--compare-threads", type=int, default=2,
                        help="CLIPCHECK_NUM_THREADS of a second server measured beside the first (default 2; 0: none)")
    parser.add_argument("--rounds", type=int, help="measurement rounds (default 3, smoke 1)")
    parser.add_argument("--runtimes", action="store_true",
                        help="compare the runtimes (torch, openvino, openvino-int8) instead: bench/runtimes.py")
    parser.add_argument("--adaptation", action="store_true",
                        help="clip_adapt's fit and gate on 10,000 labelled photos instead: bench/adaptation.py")
    parser.add_argument("--families", action="store_true",
                        help="image and text embeddings of CLIP, SigLIP and SigLIP 2 checkpoints on torch and "
                             "openvino instead (base size; --smoke: the tiny test fixtures): bench/families.py")
    parser.add_argument("--dtype", default="auto",
                        help="with --families: the engines' DTYPE (default auto: each family's own)")
    parser.add_argument("--threshold", type=float,
                        help="CLIPCHECK_THRESHOLD of the audit and the servers (default: the service's). The "
                             "random-weight checkpoint scores every pair near 0, so at the default every text is a "
                             "mismatch and pays for its attribute rewrites (the worst case); 0 makes every text "
                             "pass (a clean catalogue, the common case)")
    parser.add_argument("--out", type=Path, help="JSON results file (default bench/results/bench[-smoke].json)")
    args = parser.parse_args(argv)

    make = Config.smoke if args.smoke else Config.full
    config = make(threads=args.threads, compare_threads=args.compare_threads or None,
                  **({"rounds": args.rounds} if args.rounds else {}))
    if not args.families:  # the family benchmark builds its own checkpoints
        ensure_assets(config.spec)
    if args.threshold is not None:
        # Read by the settings of this process, the servers and the deploy step alike.
        os.environ["CLIPCHECK_THRESHOLD"] = str(args.threshold)
    load_before, started = os.getloadavg(), time.monotonic()
    if args.runtimes:
        from bench import runtimes

        result = runtimes.run(config)
    elif args.adaptation:
        from bench import adaptation

        result = adaptation.run(config)
    elif args.families:
        from bench import families

        result = families.run(config, dtype=args.dtype)
    else:
        result = run(config)
    load_after, wall = os.getloadavg(), time.monotonic() - started
    info = {**machine(), "date": time.strftime("%Y-%m-%d"), "loadavg_before": load_before,
            "loadavg_after": load_after, "wall_s": wall, "threshold": args.threshold}

    title = ("runtimes side by side" if args.runtimes else "clip_adapt at scale" if args.adaptation
             else "checkpoint families" if args.families else "end to end")
    print(f"\nclipcheck {title} ({config.spec.name} assets, {config.rounds} round(s); "
          f"{info['cpu']}, {info['cores']} cores, avx512_bf16 {'yes' if info['avx512_bf16'] else 'no'}"
          + (f"; THRESHOLD {args.threshold:g}" if args.threshold is not None else "") + ")")
    print(format_table(result["rows"]))
    print(f"throughputs: median of {'interleaved ' if args.runtimes else ''}rounds; latency percentiles: all requests "
          f"of all rounds pooled.\n"
          f"load average before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}; run {wall:.0f} s")

    name = ("bench" + ("-runtimes" if args.runtimes else "") + ("-adaptation" if args.adaptation else "")
            + ("-families" if args.families else "")
            + (f"-{args.dtype}" if args.families and args.dtype != "auto" else "")
            + ("-smoke" if args.smoke else "")
            + (f"-threshold{args.threshold:g}" if args.threshold is not None else ""))
    out = args.out or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    config_info = {**asdict(config), "spec": config.spec.name}
    out.write_text(json.dumps({"config": config_info, "machine": info, "rows": [asdict(r) for r in result["rows"]],
                               "raw": result["raw"]}, indent=1))
    print(f"wrote {out}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
