"""Milliseconds per training iteration (one D update + one G update) against unroll steps,
and what a profile's whole grid of trials would cost to train on this machine.

    python -m bench.unroll_cost [--experiment mog] [--profile paper] [--device cpu] [--json]
                                [--repeats 7] [--iterations 20]

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
    args = parser.parse_args()
    profiles = experiments.get(args.experiment).profiles
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
