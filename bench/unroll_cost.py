"""Milliseconds per training iteration (one D update + one G update) against unroll steps.

    python -m bench.unroll_cost [--json] [--repeats 7] [--iterations 20]

The paper's MoG model at batch 512, one torch thread; each row is the median over
`repeats` timed blocks of `iterations` iterations, after a warm-up block.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from trainables import experiments
from trainables.trainer import GANTrainer


def time_iteration(unroll_steps: int, second_order: bool, repeats: int, iterations: int) -> float:
    experiment = experiments.get("mog")
    config = experiment.config("paper", {"unroll_steps": unroll_steps, "second_order": second_order,
                                         "batch_size": 512})
    torch.manual_seed(0)
    trainer = GANTrainer(experiment.build(config, torch.device("cpu")).parts, config)
    for _ in range(iterations):  # warm-up: allocator, Adam state, first-call overheads
        trainer.train_iteration()
    blocks = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            trainer.train_iteration()
        blocks.append((time.perf_counter() - start) * 1000 / iterations)
    return statistics.median(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for unroll_steps in (0, 1, 5, 10):
        for second_order in ((True,) if unroll_steps == 0 else (True, False)):
            ms = time_iteration(unroll_steps, second_order, args.repeats, args.iterations)
            rows.append({"unroll_steps": unroll_steps, "second_order": second_order, "ms_per_iter": round(ms, 3)})
    base = rows[0]["ms_per_iter"]
    if args.json:
        print(json.dumps(rows))
        return
    print(f"MoG model, batch 512, 1 torch thread, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"{'unroll_steps':>12} {'second_order':>12} {'ms/iter':>9} {'x K=0':>7}")
    for row in rows:
        print(f"{row['unroll_steps']:>12} {str(row['second_order']):>12} {row['ms_per_iter']:>9.2f} "
              f"{row['ms_per_iter'] / base:>7.2f}")


if __name__ == "__main__":
    main()
