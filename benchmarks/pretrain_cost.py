"""MAE vs SimCLR training cost, side by side in one run: samples/s and peak memory at the same encoder and batch.

    python benchmarks/pretrain_cost.py [--params params.yaml] [--modality image] [--batch 256] [--steps 20]
                                       [--mask-ratios 0.75 0.9]

Each method trains in its own fresh subprocess (so peak RSS is its own), the two
alternating for --rounds rounds; the ratio of medians is printed. MAE's paper
reports >= 3x from encoding only the visible 25 % of the tokens on large ViTs;
with few tokens per image the decoder and fixed per-step costs weigh more.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """Train `steps` steps of one method on random inputs of the modality's shape; print JSON."""
    sys.path.insert(0, str(ROOT))
    import resource

    import torch

    from modalities import get_modality
    from pipeline.params import load
    from pipeline.models import fresh_encoder
    from pipeline.objectives import BETAS, build_objective

    params = load(args.params)
    if args.mask_ratio is not None:
        section = params.modality(args.modality).model_copy(update={"mask_ratio": args.mask_ratio})
        params = params.model_copy(update={"modalities": params.modalities.model_copy(update={args.modality: section})})
    modality = get_modality(args.modality, params)
    model = build_objective(args.method, fresh_encoder(modality, params), modality, params)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=BETAS[args.method])
    x = torch.rand(modality.example_input(args.batch).shape)
    g = torch.Generator().manual_seed(0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            start = time.perf_counter()
        loss = model(x, None, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    print(json.dumps({"samples_per_s": args.steps * args.batch / seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_training_mb": rss_before / 1024}))


def measure(method: str, args, mask_ratio: float | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--method", method, "--params", args.params, "--modality",
           args.modality, "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if mask_ratio is not None:
        cmd += ["--mask-ratio", str(mask_ratio)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--modality", default="image")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mask-ratios", type=float, nargs="*", default=[])
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--method")
    ap.add_argument("--mask-ratio", type=float)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    import torch

    print(f"modality {args.modality}, batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"{args.rounds} alternating rounds; {torch.get_num_threads()} threads, "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'} visible (the workers run on the CPU)")
    configs = [("simclr", None), ("mae", None)] + [("mae", r) for r in args.mask_ratios]
    runs: dict[tuple, list[dict]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for method, ratio in configs:
            runs[(method, ratio)].append(measure(method, args, ratio))
    simclr = statistics.median(r["samples_per_s"] for r in runs[("simclr", None)])
    print(f"{'method':<22}{'samples/s':>12}{'peak RSS MB':>14}{'vs SimCLR':>12}")
    for (method, ratio), results in runs.items():
        speed = statistics.median(r["samples_per_s"] for r in results)
        peak = statistics.median(r["peak_rss_mb"] for r in results)
        label = method + (f" (mask {ratio})" if ratio is not None else " (params)")
        print(f"{label:<22}{speed:>12.1f}{peak:>14.0f}{speed / simclr:>11.2f}x")


if __name__ == "__main__":
    main()
