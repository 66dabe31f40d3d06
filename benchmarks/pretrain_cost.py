"""MAE vs SimCLR training cost, side by side in one run: samples/s and peak memory at the same encoder and batch.

    python benchmarks/pretrain_cost.py [--params params.yaml] [--modality image] [--batch 256] [--steps 20]
                                       [--set modalities.image.patch_size=4 ...]

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
sys.path.insert(0, str(ROOT))


def worker(args) -> None:
    """Train `steps` steps of one method on random inputs of the modality's shape; print JSON."""
    import resource

    import torch

    from modalities import get_modality
    from pipeline.models.loading import fresh_encoder
    from pipeline.models.methods import BETAS, build_objective

    params = with_overrides(args.params, args.set)
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


def with_overrides(params_file: str, assignments: list[str]):
    """params.yaml with dotted-key overrides (`a.b.c=value`, value parsed as YAML), validated."""
    import yaml

    from pipeline.config.params import parse

    raw = yaml.safe_load(Path(params_file).read_text())
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return parse(raw, f"{params_file} with {assignments}")


def measure(method: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--method", method, "--params", args.params, "--modality",
           args.modality, "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    cmd += [f"--set={a}" for a in args.set]
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
    ap.add_argument("--set", action="append", default=[], help="override a params key: a.b.c=value")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--method")
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    import torch

    params = with_overrides(args.params, args.set)
    section = params.modality(args.modality)
    print(f"modality {args.modality} ({section.model_dump(exclude={'augment', 'split'})}), encoder "
          f"{params.encoder.model_dump()}, batch {args.batch}; {args.steps} timed steps after {args.warmup} "
          f"warm-up, {args.rounds} alternating rounds, each in a fresh process on the CPU "
          f"({torch.get_num_threads()} threads)")
    runs: dict[str, list[dict]] = {"simclr": [], "mae": []}
    for _ in range(args.rounds):
        for method in runs:
            runs[method].append(measure(method, args))
    speed = {m: statistics.median(r["samples_per_s"] for r in results) for m, results in runs.items()}
    peak = {m: statistics.median(r["peak_rss_mb"] for r in results) for m, results in runs.items()}
    print(f"{'method':<10}{'samples/s':>12}{'peak RSS MB':>14}")
    for method in runs:
        print(f"{method:<10}{speed[method]:>12.1f}{peak[method]:>14.0f}")
    print(f"MAE / SimCLR throughput ratio: {speed['mae'] / speed['simclr']:.2f}x; "
          f"peak memory ratio: {peak['mae'] / peak['simclr']:.2f}x")


if __name__ == "__main__":
    main()
