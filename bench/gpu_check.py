"""The GPU check: one command that says whether this project's GPU path works on a machine, and what it costs.

    python -m bench.gpu_check [--device cuda] [--out gpu_check.json] [--repeats 5] [--iterations 20] [--quick]

Prints one table and writes the same rows as JSON to `--out`. Rows:

* the environment: torch, its CUDA build, the device;
* resume: a MoG trial on the device stopped after its second report, saved to a state file, and resumed in a
  new ``Trial``, against the same trial run uninterrupted (every metric of every report compared exactly);
* float64 agreement: one unrolled K = 5 generator gradient of the MoG paper model, on the CPU and on the device;
* ms per MoG iteration (paper model) at each of the paper profile's unroll steps, eager, and with each
  iteration captured as a CUDA graph (``trainables.graphs``): its speed-up, and how far a graphed run is
  from the same run eager (same capturable Adam) after 50 iterations; packed MoG seeds with graphs too.
  Graphs need a CUDA device: on the CPU those rows say so;
* seed-iterations per second with S seeds packed into one model (``trainables.packed``): the MoG paper model
  at K = 10, and the Stacked MNIST paper models at D = 1/4 G, K = 5 (random digits, as below);
* ms per Stacked MNIST iteration at each point of its paper grid (D = 1/4 and 1/2 G), on random digits of
  MNIST's shape: the cost of an iteration does not depend on the pixels, so no data set is needed;
* the projected training time of the MoG and Stacked MNIST ``paper`` grids on one such device: one trial at a
  time, and with as many trials side by side as the sweep's GPU share lets (1 / ``gpu_fraction``), assuming
  they do not slow each other (an optimistic bound). Evaluation is not included.

The JSON is rewritten after every section, so a check stopped part way (a GPU lease ending) keeps what it
measured. A section that fails is one line in the table (``FAILED: ...``) and in the JSON's ``errors``; the
sections after it still run, and the command exits 1.

Needs no download. ``--device cpu --quick`` runs the whole check in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.devices import checked_device, describe
from bench.seed_packing import measure as measure_packing
from bench.seed_packing import packed_trainer
from bench.unroll_cost import time_iteration, time_trainer
from trainables import experiments, graphs
from trainables.artifacts import LOCAL
from trainables.data.stacked_mnist import StackedMnist
from trainables.experiments.stacked_mnist import stacked_parts
from trainables.layout import SweepLayout
from trainables.losses import discriminator_loss
from trainables.packed import PackedTrainer, pack_parts
from trainables.trainer import GANTrainer
from trainables.trial import Trial, seed_everything
from trainables.trial_state import TrialStateFile
from trainables.unrolled import unrolled_generator_loss

MOG = experiments.get("mog")
STACKED = experiments.get("stacked_mnist")


def environment(device: torch.device) -> dict:
    return {
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device": str(device),
        "device_name": describe(device),
    }


def _metrics(reports) -> list[tuple[int, dict]]:
    return [(r.step, dict(r.metrics)) for r in reports]


def resume_check(device: torch.device) -> dict:
    """Stopped after the second report and resumed from its state file, against the trial run straight through."""
    cfg = MOG.config("smoke", {"unroll_steps": 5, "iterations": 30, "report_every": 10, "snapshot_every": 10})
    straight = _metrics(Trial(MOG, cfg, device).reports())
    first = Trial(MOG, cfg, device)
    reports = first.reports()
    head = _metrics([next(reports), next(reports)])  # steps 0 and 10
    with tempfile.TemporaryDirectory() as folder:
        state_file = TrialStateFile(SweepLayout(folder), "seed=0,unroll_steps=5")
        state_file.save(first.state_dict())
        del first, reports
        torch.manual_seed(12345)  # a new process would start from other global random state
        resumed = Trial(MOG, cfg, device)
        resumed.load_state_dict(state_file.load())
        tail = _metrics(resumed.reports())
    joined = head + tail
    same_steps = [s for s, _ in joined] == [s for s, _ in straight]
    differences = [
        abs(a[name] - b[name])
        for (_, a), (_, b) in zip(joined, straight)
        for name in a
        if not (math.isnan(a[name]) and math.isnan(b[name]))
    ]
    worst = max(differences, default=0.0)
    return {"steps": [s for s, _ in joined], "identical": same_steps and worst == 0.0, "max_abs_diff": worst}


def float64_agreement(device: torch.device, unroll_steps: int = 5) -> dict:
    """The generator's gradient of f_K on one minibatch, float64, CPU against `device` (same networks and batch)."""
    cfg = MOG.config("paper", {"unroll_steps": unroll_steps})
    gradients = []
    for where in (torch.device("cpu"), device):
        seed_everything(0)
        parts = MOG.build(cfg, where, LOCAL).parts
        parts.generator.double(), parts.discriminator.double()
        rng = torch.Generator().manual_seed(1)
        real = parts.sample_real(cfg.batch_size, rng).double()
        fake = parts.generator(parts.sample_noise(cfg.batch_size, rng).double())
        loss = unrolled_generator_loss(
            parts.discriminator, parts.d_optimizer, fake, real, unroll_steps=unroll_steps,
            d_loss=discriminator_loss, g_loss=parts.generator_loss,
        )  # fmt: skip
        grads = torch.autograd.grad(loss, list(parts.generator.parameters()))
        gradients.append(torch.cat([g.reshape(-1) for g in grads]).cpu())
    cpu, other = gradients
    relative = ((cpu - other).abs().max() / cpu.abs().max()).item()
    return {"unroll_steps": unroll_steps, "max_relative_diff": relative}


def mog_iteration_ms(device: torch.device, repeats: int, iterations: int) -> list[dict]:
    rows = []
    for k in MOG.profiles["paper"].unroll_steps:
        config = MOG.config("paper", {"unroll_steps": k})
        rows.append(
            {
                "unroll_steps": k,
                "eager_ms": time_iteration(MOG, config, device, repeats, iterations),
                # The same iterations drawing their batches one iteration at a time: what drawing a block ahead saves.
                "draws_per_iteration_ms": time_iteration(MOG, config, device, repeats, iterations, draw_ahead=False),
            }
        )
    return rows


def mog_trainer(config, device: torch.device, backend: graphs.GraphBackend | None = None) -> GANTrainer:
    """The MoG trainer of `config`; with ``cuda_graphs`` and no CUDA device, `backend` stands in (tests)."""
    seed_everything(config.seed)
    trainer = GANTrainer(MOG.build(config, device, LOCAL).parts, config, backend)
    if not config.cuda_graphs:  # the same optimizers as the graphed run, so the two can be compared
        graphs.make_capturable(trainer.parts.g_optimizer, trainer.parts.d_optimizer)
    return trainer


def graphed_against_eager(unroll_steps: int, device: torch.device, backend_factory, iterations: int = 50) -> float:
    """The largest parameter difference between a graphed run and the same run eager, after `iterations`."""
    config = MOG.config("paper", {"unroll_steps": unroll_steps})
    runs = [
        mog_trainer(dataclasses.replace(config, cuda_graphs=on), device, backend_factory() if on else None)
        for on in (True, False)
    ]
    for trainer in runs:
        trainer.train(iterations)
    pairs = zip(*(list(t.parts.generator.parameters()) + list(t.parts.discriminator.parameters()) for t in runs))
    return max((a - b).abs().max().item() for a, b in pairs)


def cuda_graph_check(
    device: torch.device, eager_rows: list[dict], seeds_per_trial: list[int], repeats: int, iterations: int,
    backend_factory=None,
) -> dict:  # fmt: skip
    """MoG iterations and packed seeds with CUDA graphs, against eager (``eager_rows``, one seed)."""
    if backend_factory is None:
        if device.type != "cuda":
            return {"measured": False, "note": f"CUDA graphs need a CUDA device: not measured on {device.type}"}
        backend_factory = lambda: graphs.CudaGraph(device)  # noqa: E731
    rows = []
    for row in eager_rows:
        k = row["unroll_steps"]
        trainer = mog_trainer(MOG.config("paper", {"unroll_steps": k, "cuda_graphs": True}), device, backend_factory())
        trainer.train(graphs.WARMUP_ITERATIONS + 1)  # warmed up and captured before the timing
        ms = time_trainer(trainer, device, repeats, iterations)
        rows.append(
            {
                "unroll_steps": k,
                "graphs_ms": ms,
                "eager_ms": row["eager_ms"],
                "times_eager": row["eager_ms"] / ms,
                "max_abs_diff_to_eager": graphed_against_eager(k, device, backend_factory),
            }
        )
    lone_ms = next(r["eager_ms"] for r in eager_rows if r["unroll_steps"] == 10)
    packed = []
    for s in seeds_per_trial:
        config = MOG.config("paper", {"unroll_steps": 10, "cuda_graphs": True})
        trainer = packed_trainer(config, list(range(s)), device, backend_factory())
        trainer.train(graphs.WARMUP_ITERATIONS + 1)
        ms = time_trainer(trainer, device, repeats, iterations) / s
        rate = {"seed_iterations_per_s": 1000 / ms, "times_one_seed": lone_ms / ms}
        packed.append({"unroll_steps": 10, "seeds_per_trial": s, **rate})
    return {"measured": True, "iteration": rows, "packed_seeds": packed}


def random_digits(config, device: torch.device) -> StackedMnist:
    """Random uint8 digits of MNIST's shape: an iteration's cost does not depend on the pixels (timing only)."""
    digits = np.random.default_rng(0).integers(0, 256, size=(1024, 28, 28), dtype=np.uint8)
    return StackedMnist(digits, np.zeros(1024, dtype=np.int64), device, config.image_size)


def stacked_trainer(config, device: torch.device) -> GANTrainer:
    """The Stacked MNIST paper models on random digits."""
    seed_everything(config.seed)
    return GANTrainer(stacked_parts(config, random_digits(config, device), device), config)


def stacked_packing(device: torch.device, seeds_per_trial: list[int], repeats: int, iterations: int) -> list[dict]:
    """Seed-iterations per second of S packed Stacked MNIST seeds (D = 1/4 G, K = 5) against one lone seed."""
    config = STACKED.config("paper", {"unroll_steps": 5, "d_size": 0.25})
    data = random_digits(config, device)
    lone_ms = time_trainer(stacked_trainer(config, device), device, repeats, iterations)
    rows = []
    for s in seeds_per_trial:
        parts = []
        for seed in range(s):
            seed_everything(seed)
            parts.append(stacked_parts(config, data, device))
        packed, losses = pack_parts(parts, config, device)
        ms = time_trainer(PackedTrainer(packed, losses, config, list(range(s))), device, repeats, iterations) / s
        rate = {"seed_iterations_per_s": 1000 / ms, "times_one_seed": lone_ms / ms}
        rows.append({"unroll_steps": 5, "seeds_per_trial": s, **rate})
    return rows


def stacked_iteration_ms(device: torch.device, repeats: int, iterations: int, quick: bool) -> list[dict]:
    profile = STACKED.profiles["paper"]
    sizes = profile.axes["d_size"][:1] if quick else profile.axes["d_size"]
    steps = (0, 1) if quick else profile.unroll_steps
    rows = []
    for d_size in sizes:
        for k in steps:
            config = STACKED.config("paper", {"unroll_steps": k, "d_size": d_size})
            ms = time_trainer(stacked_trainer(config, device), device, repeats, iterations)
            rows.append({"d_size": d_size, "unroll_steps": k, "eager_ms": ms})
    return rows


def packing(device: torch.device, seeds_per_trial: list[int], repeats: int, iterations: int) -> list[dict]:
    rows = measure_packing("paper", [10], seeds_per_trial, device, repeats, iterations)
    lone = rows[0]["lone_ms_per_seed_iter"]
    return [
        {
            "unroll_steps": r["unroll_steps"],
            "seeds_per_trial": r["seeds_per_trial"],
            "seed_iterations_per_s": 1000 / r["packed_ms_per_seed_iter"],
            "times_one_seed": lone / r["packed_ms_per_seed_iter"],
        }
        for r in rows
    ]


def projection(experiment: experiments.Experiment, ms_rows: list[dict], key: str = "eager_ms") -> dict:
    """The paper grid's training hours from the measured ms per iteration (rows keyed by unroll steps and axes)."""
    profile = experiment.profiles["paper"]
    iterations = experiment.config("paper").iterations
    per_point = [r[key] * iterations / 3.6e6 for r in ms_rows]
    trials = len(profile.seeds) * len(ms_rows)
    sequential = len(profile.seeds) * sum(per_point)
    side_by_side = max(1, math.floor(1 / experiment.gpu_fraction))
    return {
        "experiment": experiment.name,
        "path": "CUDA graphs" if key == "graphs_ms" else "eager",
        "trials": trials,
        "iterations_per_trial": iterations,
        "one_at_a_time_h": sequential,
        "trials_side_by_side": side_by_side,
        "side_by_side_h": sequential / side_by_side,
        "complete": trials == len(profile.seeds) * _grid_size(profile),
    }


def _grid_size(profile) -> int:
    return len(profile.unroll_steps) * math.prod(len(v) for v in profile.axes.values())


def run_check(device: torch.device, repeats: int, iterations: int, quick: bool, save=None) -> dict:
    """Every section in turn; `save(result)` after each, so a check stopped part way keeps what it measured.

    A section that fails is recorded under ``errors`` (its exception in one line) and the next one runs:
    one failing row must not cost the others, as a GPU is lent for minutes at a time.
    """
    torch.set_num_threads(1)  # what a one-CPU trial gets
    start = time.perf_counter()
    result = {
        "environment": environment(device),
        "settings": {"repeats": repeats, "iterations": iterations, "quick": quick, "torch_threads": 1},
        "errors": {},
    }

    def section(name: str, compute) -> None:
        try:
            result[name] = compute()
        except Exception as error:  # reported in the table and the JSON, then the next section runs
            result["errors"][name] = f"{type(error).__name__}: {error}".splitlines()[0]
        result["wall_s"] = time.perf_counter() - start
        if save is not None:
            save(result)

    section("resume", lambda: resume_check(device))
    section("float64_agreement", lambda: float64_agreement(device))
    section("mog_iteration", lambda: mog_iteration_ms(device, repeats, iterations))
    graph_seeds = [2] if quick else [8, 64]
    section("cuda_graphs", lambda: cuda_graph_check(device, result["mog_iteration"], graph_seeds, repeats, iterations))
    section("packed_seeds", lambda: packing(device, [1, 2] if quick else [1, 8, 32, 64], repeats, iterations))
    stacked_seeds = [1, 2] if quick else [1, 4, 8]
    section("stacked_packed_seeds", lambda: stacked_packing(device, stacked_seeds, repeats, iterations))
    section("stacked_mnist_iteration", lambda: stacked_iteration_ms(device, repeats, iterations, quick))
    section("projections", lambda: projections(result))
    return result


def projections(result: dict) -> list[dict]:
    """The paper grids' projected times, from whichever timing sections succeeded."""
    out = []
    if "mog_iteration" in result:
        out.append(projection(MOG, result["mog_iteration"]))
    if "stacked_mnist_iteration" in result:
        out.append(projection(STACKED, result["stacked_mnist_iteration"]))
    if result.get("cuda_graphs", {}).get("measured"):
        out.append(projection(MOG, result["cuda_graphs"]["iteration"], key="graphs_ms"))
    return out


def _row(label: str, value: str) -> str:
    return f"{label:<44} {value}"


def resume_lines(resume: dict) -> list[str]:
    same = "yes" if resume["identical"] else "NO"
    detail = f"(steps {resume['steps']}, max |diff| {resume['max_abs_diff']:.3g})"
    return [_row("resume after 2nd report = uninterrupted", f"{same} {detail}")]


def agreement_lines(agree: dict) -> list[str]:
    label = f"float64 f_K gradient, K={agree['unroll_steps']}, CPU vs device"
    return [_row(label, f"max relative diff {agree['max_relative_diff']:.3g}")]


def mog_lines(rows: list[dict]) -> list[str]:
    return [
        _row(
            f"MoG paper iteration, K={r['unroll_steps']}, eager",
            f"{r['eager_ms']:.2f} ms ({r['draws_per_iteration_ms']:.2f} ms drawing per iteration, not per block)",
        )
        for r in rows
    ]


def graph_lines(check: dict) -> list[str]:
    if not check["measured"]:
        return [_row("MoG iteration with CUDA graphs", check["note"])]
    lines = [
        _row(
            f"MoG paper iteration, K={r['unroll_steps']}, CUDA graphs",
            f"{r['graphs_ms']:.2f} ms ({r['times_eager']:.2f} x eager; after 50 its max |diff| to eager "
            f"{r['max_abs_diff_to_eager']:.3g})",
        )
        for r in check["iteration"]
    ]
    lines += [
        _row(
            f"MoG K={r['unroll_steps']}, {r['seeds_per_trial']} seeds packed, CUDA graphs",
            f"{r['seed_iterations_per_s']:.0f} seed-iterations/s ({r['times_one_seed']:.2f} x one eager seed)",
        )
        for r in check["packed_seeds"]
    ]
    return lines


def packed_lines(rows: list[dict], name: str = "MoG", digits: int = 0) -> list[str]:
    return [
        _row(
            f"{name} K={r['unroll_steps']}, {r['seeds_per_trial']} seeds packed",
            f"{r['seed_iterations_per_s']:.{digits}f} seed-iterations/s ({r['times_one_seed']:.2f} x one seed)",
        )
        for r in rows
    ]


def stacked_lines(rows: list[dict]) -> list[str]:
    return [
        _row(f"Stacked MNIST iteration, D={r['d_size']} G, K={r['unroll_steps']}", f"{r['eager_ms']:.2f} ms")
        for r in rows
    ]


def projection_lines(rows: list[dict]) -> list[str]:
    lines = []
    for p in rows:
        grid = "paper grid" if p["complete"] else "part of the paper grid (--quick)"
        graphed = ", CUDA graphs" if p["path"] != "eager" else ""
        lines.append(
            f"{p['experiment'] + ' ' + grid + graphed:<44} {p['trials']} trials x {p['iterations_per_trial']:,} its: "
            f"{p['one_at_a_time_h']:.2f} h one at a time, {p['side_by_side_h']:.2f} h with "
            f"{p['trials_side_by_side']} side by side (if they do not slow each other)"
        )
    return lines


SECTION_LINES = {
    "resume": resume_lines,
    "float64_agreement": agreement_lines,
    "mog_iteration": mog_lines,
    "cuda_graphs": graph_lines,
    "packed_seeds": packed_lines,
    "stacked_packed_seeds": lambda rows: packed_lines(rows, "Stacked D=1/4", 1),
    "stacked_mnist_iteration": stacked_lines,
    "projections": projection_lines,
}
"""Each section's rows in the table, in the order the check runs them."""


def table(result: dict) -> str:
    env = result["environment"]
    lines = [
        f"GPU check: torch {env['torch']} (CUDA build {env['cuda_build']}), {env['device']}: {env['device_name']}",
        _row("check", "result"),
        _row("torch.cuda.is_available()", str(env["cuda_available"])),
    ]
    for name, section_lines in SECTION_LINES.items():
        if name in result["errors"]:
            lines.append(_row(f"{name}", f"FAILED: {result['errors'][name]}"))
        elif name in result:
            lines.extend(section_lines(result[name]))
    lines.append(_row("wall time of this check", f"{result['wall_s']:.0f} s"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    parser.add_argument("--out", default="gpu_check.json", help="where the JSON goes (default: gpu_check.json)")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per row (median taken)")
    parser.add_argument("--iterations", type=int, default=20, help="iterations per timed block")
    parser.add_argument("--quick", action="store_true", help="a few rows, 2 seeds packed at most: seconds on a CPU")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.iterations < 1:
        parser.error("--repeats and --iterations must be at least 1")
    device = checked_device(parser, args.device)
    out = Path(args.out)
    if not out.parent.is_dir():
        parser.error(f"--out {args.out}: folder {out.parent} does not exist")
    result = run_check(device, args.repeats, args.iterations, args.quick, save=lambda r: write_json(out, r))
    print(table(result))
    print(f"written: {out}", file=sys.stderr)
    if result["errors"]:
        print(f"gpu_check: {len(result['errors'])} section(s) failed: {', '.join(result['errors'])}", file=sys.stderr)
        sys.exit(1)


def write_json(out: Path, result: dict) -> None:
    # Replaced whole, so a check killed while writing leaves the previous section's file, not half of one.
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(result, indent=2))
    partial.replace(out)


if __name__ == "__main__":
    main()
