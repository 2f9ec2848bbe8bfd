"""Milliseconds per training iteration (one D update + one G update) against unroll steps,
and what a profile's whole grid of trials would cost to train on this machine.

    python -m bench.unroll_cost [--experiment mog] [--profile paper] [--device cpu] [--json]
                                [--repeats 7] [--iterations 20]
    python -m bench.unroll_cost --compare [--compare-with mog:paper stacked_mnist:quick] [--json]

`--compare` prints, side by side, the iteration with glibc's default allocator (before) and with freed host
memory kept for reuse, as every trial now runs (``trainables.host_memory``), for K in {0, 1, 5, 10} at one and two
threads. Each (setting, threads) pair runs in a fresh process, one at a time: the setting is process-wide and
cannot be undone. docs/results.md ("The unrolled step's speed") records what else was tried and measured.

Each row is one point of the profile's grid (unroll steps x its further axes, seeds aside) with
the profile's config, one torch thread (what a one-CPU trial gets); the time is the median over
`repeats` timed blocks of `iterations` iterations, after a warm-up block. For K > 0 the
stop-gradient variant is timed too. The projection multiplies by the profile's iterations and
seeds; it leaves out evaluation and snapshots. Trials sharing a GPU (the sweeps ask for a
fraction) run side by side, so divide by how many fit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch

from bench.devices import checked_device, describe, synchronizer
from trainables import experiments
from trainables.host_memory import keep_freed_memory
from trainables.losses import discriminator_loss
from trainables.trainer import GANTrainer
from trainables.unrolled import unrolled_generator_loss


def time_iteration(
    experiment: experiments.Experiment,
    config,
    device: torch.device,
    repeats: int,
    iterations: int,
    draw_ahead: bool = True,
) -> float:
    torch.manual_seed(0)
    trainer = GANTrainer(experiment.build(config, device).parts, config)
    return time_trainer(trainer, device, repeats, iterations, draw_ahead)


def time_trainer(
    trainer: GANTrainer, device: torch.device, repeats: int, iterations: int, draw_ahead: bool = True
) -> float:
    """Median milliseconds per iteration over `repeats` blocks of `iterations`, after a warm-up block: as a trial
    trains (``GANTrainer.train``, the block's draws taken ahead), or with `draw_ahead=False` one
    ``train_iteration`` at a time (one host-to-device transfer per iteration)."""
    synchronize = synchronizer(device)

    def block() -> None:
        if draw_ahead:
            trainer.train(iterations)
        else:
            for _ in range(iterations):
                trainer.train_iteration()

    block()  # warm-up: allocator, Adam state, first-call overheads
    blocks = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        block()
        synchronize()
        blocks.append((time.perf_counter() - start) * 1000 / iterations)
    return statistics.median(blocks)


def generator_step_against_higher(
    experiment_name: str, profile_name: str, unroll_steps: int, repeats: int, iterations: int, device: str = "cpu"
) -> dict:
    """One true second-order generator step (surrogate, backward, Adam step) built two ways on the same
    networks, optimizer state and minibatch: this project's unroll and the `higher` library's
    ``innerloop_ctx``. Timed in one process, interleaved block by block, so both see the same machine."""
    import higher

    device = torch.device(device)
    experiment = experiments.get(experiment_name)
    config = experiment.config(profile_name).with_values({"unroll_steps": unroll_steps, "second_order": True})
    torch.manual_seed(0)
    trainer = GANTrainer(experiment.build(config, device).parts, config)
    for _ in range(5):  # moments and step counts of a run under way
        trainer.train_iteration()
    parts, rng = trainer.parts, torch.Generator().manual_seed(1)
    real = parts.sample_real(config.batch_size, rng)
    noise = parts.sample_noise(config.batch_size, rng)
    state = {k: v.clone() for k, v in parts.generator.state_dict().items()}

    def ours() -> None:
        fake = parts.generator(noise)
        loss = unrolled_generator_loss(
            parts.discriminator, parts.d_optimizer, fake, real, unroll_steps=unroll_steps,
            d_loss=discriminator_loss, g_loss=parts.generator_loss,
        )  # fmt: skip
        parts.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.g_optimizer.step()

    def theirs() -> None:
        fake = parts.generator(noise)
        with higher.innerloop_ctx(parts.discriminator, parts.d_optimizer, copy_initial_weights=True) as (d, opt):
            for _ in range(unroll_steps):
                opt.step(discriminator_loss(d(real), d(fake)))
            loss = parts.generator_loss(d, real, fake)
        parts.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.g_optimizer.step()

    synchronize = synchronizer(device)
    times: dict[str, list[float]] = {"ours": [], "higher": []}
    for block in range(repeats + 1):
        for name, step in (("ours", ours), ("higher", theirs)):
            parts.generator.load_state_dict(state)  # the same starting point for both
            synchronize()
            start = time.perf_counter()
            for _ in range(iterations):
                step()
            synchronize()
            if block:  # the first block of each is a warm-up
                times[name].append((time.perf_counter() - start) * 1000 / iterations)
    ours_ms, higher_ms = statistics.median(times["ours"]), statistics.median(times["higher"])
    return {"unroll_steps": unroll_steps, "ours_ms": round(ours_ms, 3), "higher_ms": round(higher_ms, 3),
            "speedup": round(higher_ms / ours_ms, 3)}  # fmt: skip


def measure(
    experiment_name: str, profile_name: str, repeats: int, iterations: int, device: str = "cpu"
) -> tuple[list[dict], dict]:
    device = torch.device(device)
    experiment = experiments.get(experiment_name)
    profile = experiment.profiles[profile_name]
    base = experiment.config(profile_name)
    if experiment.prepare is not None:
        experiment.prepare(base)
    rows = []
    axes = list(profile.axes.items())
    for point in itertools.product(*(values for _, values in axes)):
        axis_values = {name: value for (name, _), value in zip(axes, point)}
        for unroll_steps in profile.unroll_steps:
            for second_order in (True,) if unroll_steps == 0 else (True, False):
                config = base.with_values({**axis_values, "unroll_steps": unroll_steps, "second_order": second_order})
                ms = time_iteration(experiment, config, device, repeats, iterations)
                rows.append(
                    {
                        **axis_values,
                        "unroll_steps": unroll_steps,
                        "second_order": second_order,
                        "ms_per_iter": round(ms, 3),
                    }
                )
    # The profile trains the second-order variant: one trial per seed and grid point.
    trained_ms = sum(r["ms_per_iter"] for r in rows if r["second_order"])
    projection = {
        "trials": len(profile.seeds) * sum(r["second_order"] for r in rows),
        "iterations_per_trial": base.iterations,
        "hours": trained_ms * len(profile.seeds) * base.iterations / 3.6e6,
    }
    return rows, projection


COMPARE_STEPS = (0, 1, 5, 10)
COMPARE_THREADS = (1, 2)
COMPARE_DEFAULT = ("mog:paper", "stacked_mnist:quick")


def _time_path(path: str, threads: int, targets: list[str], steps: list[int], repeats: int, iterations: int):
    """In a fresh process: ms per iteration of each target profile at each K, 'before' or 'now'."""
    if path == "now" and not keep_freed_memory():
        raise RuntimeError("this C library has no mallopt: there is nothing to compare")
    torch.set_num_threads(threads)
    out = {}
    for target in targets:
        name, profile = target.split(":")
        experiment = experiments.get(name)
        base = experiment.config(profile)
        if experiment.prepare is not None:
            experiment.prepare(base)
        for k in steps:
            config = base.with_values({"unroll_steps": k})
            out[f"{target}:{k}"] = time_iteration(experiment, config, torch.device("cpu"), repeats, iterations)
    return out


def compare(targets: list[str], steps=COMPARE_STEPS, threads=COMPARE_THREADS, repeats=5, iterations=10) -> list[dict]:
    """One row per (target, threads, K): ms per iteration before and now, and the speed-up."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    times = {}
    for thread_count in threads:
        for path in ("before", "now"):
            # One child at a time, so that the two paths never share the cores.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                times[path, thread_count] = pool.submit(
                    _time_path, path, thread_count, targets, list(steps), repeats, iterations
                ).result()
    rows = []
    for target in targets:
        name, profile = target.split(":")
        for thread_count in threads:
            for k in steps:
                before, now = (
                    times["before", thread_count][f"{target}:{k}"],
                    times["now", thread_count][f"{target}:{k}"],
                )
                rows.append({"experiment": name, "profile": profile, "threads": thread_count, "unroll_steps": k,
                             "before_ms": round(before, 3), "now_ms": round(now, 3),
                             "speedup": round(before / now, 3)})  # fmt: skip
    return rows


def print_comparison(rows: list[dict]) -> None:
    print(
        f"ms per training iteration (one D update + one G update), cpu, torch {torch.__version__}, "
        f"{describe(torch.device('cpu'))}; before: glibc's default allocator; now: freed host memory kept"
    )
    print(f"{'experiment':>14} {'profile':>8} {'threads':>7} {'K':>3} {'before':>9} {'now':>9} {'speed-up':>9}")
    for r in rows:
        print(f"{r['experiment']:>14} {r['profile']:>8} {r['threads']:>7} {r['unroll_steps']:>3} "
              f"{r['before_ms']:>9.2f} {r['now_ms']:>9.2f} {r['speedup']:>8.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="mog", choices=experiments.names())
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--json", action="store_true", help="print the rows and the projection as one JSON object")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument(
        "--versus-higher", type=int, nargs="*", default=None, metavar="K",
        help="also time one generator step at these unroll steps against the `higher` library (default 5 10)",
    )  # fmt: skip
    parser.add_argument("--compare", action="store_true", help="the iteration before and now, side by side (above)")
    parser.add_argument(
        "--compare-with", nargs="+", default=list(COMPARE_DEFAULT), metavar="EXPERIMENT:PROFILE",
        help=f"what --compare times (default {' '.join(COMPARE_DEFAULT)})",
    )  # fmt: skip
    args = parser.parse_args()
    if args.compare:
        for target in args.compare_with:
            name, _, profile = target.partition(":")
            if name not in experiments.names() or profile not in experiments.get(name).profiles:
                parser.error(f"--compare-with {target}: not an EXPERIMENT:PROFILE of this project")
        if args.device != "cpu":
            parser.error("--compare times the CPU paths; on a GPU use python -m bench.gpu_check")
        rows = compare(args.compare_with, repeats=args.repeats, iterations=args.iterations)
        print(json.dumps({"compare": rows})) if args.json else print_comparison(rows)
        return
    profiles = experiments.get(args.experiment).profiles
    keep_freed_memory()  # as every trial does (``trial.pin_process``), so the projection is what a sweep pays
    if args.profile not in profiles:
        parser.error(f"unknown profile {args.profile!r} for {args.experiment}; choose from {', '.join(profiles)}")
    torch.set_num_threads(1)
    device = checked_device(parser, args.device)
    rows, projection = measure(args.experiment, args.profile, args.repeats, args.iterations, device)
    versus = [
        generator_step_against_higher(args.experiment, args.profile, k, args.repeats, args.iterations, args.device)
        for k in ([5, 10] if args.versus_higher is None else args.versus_higher)
    ]
    if args.json:
        print(json.dumps({"rows": rows, "projection": projection, "versus_higher": versus}))
        return
    axes = [k for k in rows[0] if k not in ("unroll_steps", "second_order", "ms_per_iter")]
    where = describe(device)
    print(
        f"{args.experiment}, {args.profile} profile, {args.device}, 1 torch thread, torch {torch.__version__}, {where}"
    )
    print(
        "".join(f"{name:>8}" for name in axes) + f"{'unroll_steps':>13} {'second_order':>12} {'ms/iter':>9} "
        f"{'x K=0':>7}"
    )
    base = {}
    for row in rows:
        key = tuple(row[name] for name in axes)
        base.setdefault(key, row["ms_per_iter"])
        print(
            "".join(f"{row[name]!s:>8}" for name in axes) + f"{row['unroll_steps']:>13} "
            f"{str(row['second_order']):>12} {row['ms_per_iter']:>9.2f} {row['ms_per_iter'] / base[key]:>7.2f}"
        )
    for row in versus:
        print(
            f"one generator step, K={row['unroll_steps']} second order: ours {row['ours_ms']:.2f} ms, "
            f"higher {row['higher_ms']:.2f} ms: {row['speedup']:.2f}x faster than higher"
        )
    print(
        f"the whole profile: {projection['trials']} trials x {projection['iterations_per_trial']:,} iterations, "
        f"one at a time on {args.device} (one thread): {projection['hours']:.2f} h of training, evaluation not "
        f"included"
    )


if __name__ == "__main__":
    main()
