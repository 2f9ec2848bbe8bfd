"""Seed-iterations per second with S seeds packed into one model (``trainables.packed``) against
S lone runs, on the MoG model of a profile, one torch thread.

    python -m bench.seed_packing [--profile quick] [--unroll-steps 0 10] [--seeds-per-trial 1 2 4 8 16]
                                 [--device cpu] [--repeats 3] [--iterations 5] [--json]

For each K and S: the lone time is one seed's trainer (every seed costs the same), the packed time
is one iteration of the packed trainer divided by S; blocks of `iterations` iterations alternate
between the two, and each time is the median over `repeats` blocks, so both see the same machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch

from bench.devices import checked_device, describe, synchronizer
from trainables import experiments
from trainables.packed import PackedTrainer, pack_parts
from trainables.trainer import GANTrainer
from trainables.trial import seed_everything


def packed_trainer(config, seeds: list[int], device: torch.device, graph_backend=None) -> PackedTrainer:
    """S packed MoG seeds, each built by its own seed; `graph_backend` stands in for CUDA graphs (tests)."""
    experiment = experiments.get("mog")
    parts = []
    for seed in seeds:
        seed_everything(seed)
        parts.append(experiment.build(dataclasses.replace(config, seed=seed), device).parts)
    packed, losses = pack_parts(parts, config, device)
    return PackedTrainer(packed, losses, config, seeds, graph_backend)


def measure(profile: str, unroll_steps, seeds_per_trial, device: str, repeats: int, iterations: int) -> list[dict]:
    torch.set_num_threads(1)
    device = torch.device(device)
    synchronize = synchronizer(device)
    experiment = experiments.get("mog")
    rows = []
    for k in unroll_steps:
        config = experiment.config(profile, {"unroll_steps": k})
        seed_everything(0)
        lone = GANTrainer(experiment.build(config, device).parts, config)
        for s in seeds_per_trial:
            packed = packed_trainer(config, list(range(s)), device)
            times = {"lone": [], "packed": []}
            for trainer in (lone, packed):  # warm-up
                trainer.train_iteration()
            for _ in range(repeats):
                for name, trainer in (("lone", lone), ("packed", packed)):
                    synchronize()
                    start = time.perf_counter()
                    for _ in range(iterations):
                        trainer.train_iteration()
                    synchronize()
                    times[name].append((time.perf_counter() - start) * 1000 / iterations)
            lone_ms, packed_ms = statistics.median(times["lone"]), statistics.median(times["packed"]) / s
            rows.append(
                {
                    "unroll_steps": k,
                    "seeds_per_trial": s,
                    "lone_ms_per_seed_iter": lone_ms,
                    "packed_ms_per_seed_iter": packed_ms,
                    "speedup": lone_ms / packed_ms,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", help="a mog profile (its batch size and model)")
    parser.add_argument("--unroll-steps", nargs="+", type=int, default=[0, 10])
    parser.add_argument("--seeds-per-trial", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    args = parser.parse_args()
    if args.profile not in experiments.get("mog").profiles:
        parser.error(f"unknown mog profile {args.profile!r}")
    if min(args.seeds_per_trial) < 1 or min(args.unroll_steps) < 0:
        parser.error("seeds per trial must be >= 1 and unroll steps >= 0")
    device = checked_device(parser, args.device)
    rows = measure(args.profile, args.unroll_steps, args.seeds_per_trial, device, args.repeats, args.iterations)
    if args.json:
        print(json.dumps({"device": args.device, "rows": rows}))
        return
    print(f"mog, {args.profile} profile, {args.device}, 1 torch thread, torch {torch.__version__}, {describe(device)}")
    print(" K   S  lone ms/seed-iter  packed ms/seed-iter  speedup")
    for r in rows:
        print(
            f"{r['unroll_steps']:>2} {r['seeds_per_trial']:>3} {r['lone_ms_per_seed_iter']:>18.2f} "
            f"{r['packed_ms_per_seed_iter']:>20.2f} {r['speedup']:>8.2f}x"
        )


if __name__ == "__main__":
    main()
