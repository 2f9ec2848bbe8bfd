"""The two terms of the unrolled generator's gradient, measured along a training run.

    python -m bench.second_gradient EXPERIMENT [--profile quick] [--unroll-steps 5] [--iterations 600]
                                    [--every 100] [--set NAME=VALUE ...] [--json]

Metz et al. (2017, Section 2) split the generator's gradient of f_K into the gradient at theta_D^K (the first
term) and the part that flows back through the K unrolled discriminator steps (the second term). This trains
one trial's networks as a sweep would (the profile's config, `--set` on top) and every `--every` iterations
measures, on one fixed probe minibatch, both terms' norms and the cosine between them, beside the losses:
a second term pointing against the first (cosine near -1) with a similar norm cancels the generator's gradient.
The probe leaves the training run untouched: the same seed trains the same networks with or without it.
"""

from __future__ import annotations

import argparse
import json

from bench.devices import checked_device
from trainables import experiments
from trainables.config import key_value
from trainables.errors import ConfigError
from trainables.metrics.gradient_terms import GradientProbe, gradient_terms
from trainables.trainer import GANTrainer
from trainables.trial import Trial


def measure(experiment_name: str, profile: str, values: dict, iterations: int, every: int, device) -> list[dict]:
    """The trial a sweep would run for this config (same set-up, seeds and networks), probed along the way."""
    experiment = experiments.get(experiment_name)
    trial = Trial(experiment, experiment.config(profile, values), device)
    return probe_run(trial.trainer, iterations, every)


def probe_run(trainer: GANTrainer, iterations: int, every: int) -> list[dict]:
    """Train `trainer` to `iterations`, measuring the gradient's terms at the start and every `every` iterations."""
    parts, config = trainer.parts, trainer.config
    probe = GradientProbe(parts, config.batch_size, config.unroll_steps)
    rows = []
    while True:
        losses = trainer.last_losses if trainer.iteration else {"d_loss": float("nan"), "g_loss": float("nan")}
        terms = gradient_terms(parts, probe.real, probe.noise, config.unroll_steps)
        rows.append({"iteration": trainer.iteration, **terms, **losses})
        if trainer.iteration >= iterations:
            return rows
        trainer.train(min(every, iterations - trainer.iteration))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.second_gradient",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", choices=experiments.names())
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--unroll-steps", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--every", type=int, default=100, help="iterations between measurements")
    parser.add_argument(
        "--set", nargs="*", type=key_value, default=[], metavar="NAME=VALUE", help="config fields, as for a sweep"
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    args = parser.parse_args(argv)
    if args.iterations < 0 or args.every < 1:
        parser.error("--iterations must be >= 0 and --every >= 1")
    values = {"unroll_steps": args.unroll_steps, **dict(args.set)}
    device = checked_device(parser, args.device)
    try:
        rows = measure(args.experiment, args.profile, values, args.iterations, args.every, device)
    except ConfigError as error:
        parser.error(str(error))
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{args.experiment}, {args.profile} profile, {values}: the generator's gradient of f_K on one probe batch")
    header = ("iteration", 9), ("|first|", 9), ("|second|", 9), ("cosine", 7), ("|full|/|first|", 14), ("d_loss", 7)
    print(" ".join(f"{name:>{width}}" for name, width in (*header, ("g_loss", 7))))
    for r in rows:
        print(
            f"{r['iteration']:>9} {r['first_norm']:>9.4f} {r['second_norm']:>9.4f} {r['cosine']:>7.3f} "
            f"{r['full_over_first']:>14.3f} {r['d_loss']:>7.3f} {r['g_loss']:>7.3f}"
        )


if __name__ == "__main__":
    main()
