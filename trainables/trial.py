"""One trial, start to finish, without Ray: seed, build, train, evaluate at every report.

The Ray adapter drives :meth:`Trial.reports`; the tests use it directly, to check that a
trial under Ray gives the numbers of the same trial without it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .artifacts import LOCAL, Assets
from .config import GANConfig
from .errors import ConfigError
from .experiments import Experiment
from .lineage import apply_optimiser_settings, changed_fields
from .metrics.gradient_terms import GradientProbe
from .packed import PackedTrainer, load_seed_into, load_seed_trainer_states, pack_parts, seed_trainer_state
from .trainer import DIVERGENCE_CHECK_EVERY, GANTrainer


@dataclass
class Report:
    step: int
    metrics: dict[str, float]
    samples: dict[str, Tensor] = field(default_factory=dict)
    """'model' every snapshot_every iterations, plus 'data' in the first report."""
    status: str = "running"
    """'running', 'finished' (the last report) or 'diverged' (losses or parameters not finite: the
    trial's last report, at the iteration where it happened; its metrics are NaN)."""


def set_determinism(deterministic: bool) -> None:
    """Set every process-wide switch that makes GPU kernels reproducible, on or off.

    Set both ways on every trial: a Ray worker reused for the next trial keeps these globals. cuBLAS reads
    CUBLAS_WORKSPACE_CONFIG when it first starts in a process, so it is set before any GPU work (the sweep
    also sets it for every trial process). Ops with no deterministic GPU kernel (``bincount`` in some metrics)
    warn instead of failing the trial (``warn_only``).
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    # TF32 rounds float32 matmuls and convolutions to a 10-bit mantissa on Ampere and later GPUs.
    torch.backends.cudnn.allow_tf32 = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic


def pin_process(config: GANConfig) -> None:
    """The process-wide settings a trial's numbers depend on, set on every trial: threads change float32
    results, and a process Ray reuses for the next trial keeps the previous one's."""
    torch.set_num_threads(config.torch_threads)
    set_determinism(config.deterministic)


def train_until(trainer: GANTrainer, end: int, watching: list[int] | None = None) -> list[int | None]:
    """Train to iteration `end`, or until a watched model's losses stop being finite (read every
    ``DIVERGENCE_CHECK_EVERY`` iterations, not every one: each read is a host sync). Returns
    ``trainer.nonfinite_at()``. `watching`: the packed seeds whose divergence ends the block (default all)."""
    while trainer.iteration < end:
        # To the next check, in one block of draws taken ahead (``GANTrainer.train``).
        next_check = (trainer.iteration // DIVERGENCE_CHECK_EVERY + 1) * DIVERGENCE_CHECK_EVERY
        trainer.train(min(end, next_check) - trainer.iteration)
        if trainer.iteration % DIVERGENCE_CHECK_EVERY == 0 and trainer.iteration < end:
            nonfinite = trainer.nonfinite_at()
            if any(nonfinite[i] is not None for i in watching or range(len(nonfinite))):
                return nonfinite
    return trainer.nonfinite_at()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluation_rng(seed: int, step: int) -> torch.Generator:
    # Its own stream per (seed, step), so evaluating never shifts the training stream.
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def make_report(experiment: Experiment, config: GANConfig, run, step: int, last_losses: dict[str, float]) -> Report:
    """One report of a trial at `step`: the experiment's metrics and the snapshots due then."""
    rng = evaluation_rng(config.seed, step)
    metrics = {**run.evaluate(rng), **last_losses}
    samples = {}
    if step % config.snapshot_every == 0 or step == config.iterations:
        samples["model"] = run.model_samples(rng)
    if step == 0:
        samples["data"] = run.data_samples(rng)
    for kind, values in list(samples.items()):
        samples.update(run.describe(kind, values))
    if step == config.iterations:
        # Work too costly for every report (e.g. inference by optimisation), done once at the end.
        extra_metrics, extra_samples = run.final(rng)
        metrics.update(extra_metrics)
        samples.update(extra_samples)
    undeclared = sorted(set(metrics) - set(experiment.metrics))
    if undeclared:  # the Parquet schema has a column per declared metric: anything else would be dropped unseen
        raise ValueError(f"{experiment.name} reports metrics it does not declare in Experiment.metrics: {undeclared}")
    for name in experiment.metrics:  # declared, not measured at this step (e.g. a final-only metric)
        metrics.setdefault(name, float("nan"))
    return Report(step, metrics, samples, "finished" if step == config.iterations else "running")


def diverged_report(experiment: Experiment, step: int, last_losses: dict[str, float]) -> Report:
    # Evaluating a model with NaN weights measures nothing (and some metrics fail on NaN).
    metrics = {name: float("nan") for name in experiment.metrics}
    metrics.update(last_losses)
    return Report(step, metrics, {}, "diverged")


class Trial:
    """One seed's trial. ``report_batches``, ``state_dict(index)`` and ``load_states`` are shared with
    ``PackedTrial``, so one protocol (``trainables.protocol``) drives either."""

    def __init__(
        self, experiment: Experiment, config: GANConfig, device: torch.device | str = "cpu", assets: Assets = LOCAL
    ):
        pin_process(config)
        seed_everything(config.seed)
        self.experiment, self.config = experiment, config
        self.run = experiment.build(config, torch.device(device), assets)
        self.trainer = GANTrainer(self.run.parts, config)
        # Drawn after the trainer exists and from its own stream: the training run is the same with or without it.
        self.probe = (
            GradientProbe(self.run.parts, config.batch_size, config.unroll_steps) if config.gradient_probe else None
        )
        self.elapsed_s = 0.0
        self.diverged_at: int | None = None

    def _report(self) -> Report:
        measured = self.trainer.last_losses | (self.probe.metrics() if self.probe else {})
        return make_report(self.experiment, self.config, self.run, self.trainer.iteration, measured)

    def _diverged_report(self) -> Report:
        return diverged_report(self.experiment, self.trainer.iteration, self.trainer.last_losses)

    def reports(self) -> Iterator[Report]:
        """Yields the step-0 report (on a fresh start), then one every report_every iterations.

        A trial whose losses (watched on the device every iteration, read every
        ``DIVERGENCE_CHECK_EVERY``) or parameters (checked at each report) stop being finite yields
        one 'diverged' report at the first such iteration and stops: training on from NaN weights
        cannot recover, and a retry from the last state would diverge again.
        """
        cfg = self.config
        if self.diverged_at is not None:
            return
        if self.trainer.iteration == 0:
            yield self._report()
        while self.trainer.iteration < cfg.iterations:
            start = time.perf_counter()
            end = min(cfg.iterations, self.trainer.iteration + cfg.report_every)
            nonfinite_at = train_until(self.trainer, end)[0]
            self.elapsed_s += time.perf_counter() - start
            if nonfinite_at is not None:
                self.diverged_at = nonfinite_at
                yield diverged_report(self.experiment, nonfinite_at, self.trainer.nonfinite_losses())
                return
            if not self.trainer.parameters_finite():
                self.diverged_at = self.trainer.iteration
                yield self._diverged_report()
                return
            yield self._report()

    def report_batches(self) -> Iterator[list[tuple[int, Report]]]:
        """``reports`` as ``PackedTrial.reports`` gives them: lists of (seed index, report), here index 0."""
        for report in self.reports():
            yield [(0, report)]

    def state_dict(self, index: int = 0) -> dict[str, Any]:
        return {
            "trainer": self.trainer.state_dict(),
            "elapsed_s": self.elapsed_s,
            "torch_rng": torch.get_rng_state(),
            "config": self.config.to_dict(),
            "diverged_at": self.diverged_at,
        }

    @staticmethod
    def finished_state(state: dict[str, Any], config: GANConfig) -> bool:
        """Whether a saved state (``state_dict``) is this config's trial run to its end, or diverged."""
        done = state["trainer"]["iteration"] >= config.iterations or state.get("diverged_at") is not None
        return state["config"] == config.to_dict() and done

    def load_state_dict(self, state: dict[str, Any], mutable: tuple[str, ...] = ()) -> None:
        """Resume from `state`, written by this config, or by one that differs only in `mutable` fields (a
        checkpoint scheduler's exploit, ``lineage``): those are this config's again once the state is in."""
        changed = changed_fields(state["config"], self.config.to_dict())
        if set(changed) - set(mutable):
            raise ValueError("checkpoint was written by a different configuration")
        self.trainer.load_state_dict(state["trainer"])
        if changed:
            apply_optimiser_settings(self.run.parts.g_optimizer, self.run.parts.d_optimizer, self.config)
        self.elapsed_s = float(state["elapsed_s"])
        self.diverged_at = state.get("diverged_at")
        torch.set_rng_state(state["torch_rng"])

    def load_states(self, states: list[dict[str, Any] | None]) -> bool:
        """Resume from the saved state in `states` (one, this seed's), if there is one."""
        if states[0] is None:
            return False
        self.load_state_dict(states[0])
        return True


class PackedTrial:
    """Several seeds of one configuration trained as one packed model (``trainables.packed``).

    Each seed reports, diverges and saves exactly as its own ``Trial`` would: the same steps, the
    same metrics up to float rounding, and a state in the ``Trial.state_dict`` format, so a seed can
    resume packed or alone. ``elapsed_s`` is the packed trial's time (all its seeds together).
    """

    def __init__(
        self, experiment: Experiment, configs: list[GANConfig], device: torch.device | str = "cpu",
        assets: Assets = LOCAL,
    ):  # fmt: skip
        base = configs[0]
        if any(c.to_dict() | {"seed": 0} != base.to_dict() | {"seed": 0} for c in configs):
            raise ValueError("packed seeds must share every config field but the seed")
        if base.gradient_probe:
            raise ConfigError("gradient_probe measures one model's gradient: run it with one seed per trial")
        pin_process(base)
        self.experiment, self.configs, self.device = experiment, configs, torch.device(device)
        self.runs = []
        for config in configs:
            seed_everything(config.seed)  # each seed's networks initialised as its own trial's
            self.runs.append(experiment.build(config, self.device, assets))
        parts, losses = pack_parts([run.parts for run in self.runs], base, self.device)
        self.trainer = PackedTrainer(parts, losses, base, [c.seed for c in configs])
        self.elapsed_s = 0.0
        self.diverged_at: list[int | None] = [None] * len(configs)

    def _active(self) -> list[int]:
        return [i for i, step in enumerate(self.diverged_at) if step is None]

    def _report(self, index: int) -> Report:
        run = self.runs[index]
        load_seed_into(self.trainer, index, run.parts.generator, run.parts.discriminator)
        losses = self.trainer.seed_losses[index]
        return make_report(self.experiment, self.configs[index], run, self.trainer.iteration, losses)

    def reports(self) -> Iterator[list[tuple[int, Report]]]:
        """Like ``Trial.reports``, one list of (seed index, report) at a time. A seed that diverges
        gets its 'diverged' report at that iteration and no more; the others train on."""
        cfg = self.configs[0]
        if self.trainer.iteration == 0 and self._active():
            yield [(i, self._report(i)) for i in self._active()]
        while self.trainer.iteration < cfg.iterations and self._active():
            start = time.perf_counter()
            end = min(cfg.iterations, (self.trainer.iteration // cfg.report_every + 1) * cfg.report_every)
            nonfinite_at = train_until(self.trainer, end, self._active())
            self.elapsed_s += time.perf_counter() - start
            at_end = self.trainer.iteration == end
            params_finite = self.trainer.params_finite_per_seed() if at_end else [True] * len(self.configs)
            out = []
            for i in self._active():
                if nonfinite_at[i] is not None:
                    self.diverged_at[i] = nonfinite_at[i]
                    losses = self.trainer.nonfinite_losses(i)
                elif not params_finite[i]:
                    self.diverged_at[i] = self.trainer.iteration
                    losses = self.trainer.seed_losses[i]
                else:
                    continue
                out.append((i, diverged_report(self.experiment, self.diverged_at[i], losses)))
            if out:
                yield out
            if at_end and self._active():
                yield [(i, self._report(i)) for i in self._active()]

    def state_dict(self, index: int) -> dict[str, Any]:
        """Seed `index`'s state, in the format of its own ``Trial.state_dict``."""
        return {
            "trainer": seed_trainer_state(self.trainer, index),
            "elapsed_s": self.elapsed_s,
            "torch_rng": torch.get_rng_state(),
            "config": self.configs[index].to_dict(),
            "diverged_at": self.diverged_at[index],
        }

    def load_state_dicts(self, states: list[dict[str, Any] | None]) -> bool:
        """Resume every seed from its saved state. False (and nothing loaded) unless every seed has one,
        written by its config, at one iteration: then the packed trial starts afresh, which rewrites
        the same rows (training is deterministic by seed)."""
        usable = all(s is not None and s["config"] == c.to_dict() for s, c in zip(states, self.configs))
        if not usable or len({s["trainer"]["iteration"] for s in states}) != 1:
            return False
        load_seed_trainer_states(self.trainer, [s["trainer"] for s in states])
        self.elapsed_s = max(float(s["elapsed_s"]) for s in states)
        self.diverged_at = [s.get("diverged_at") for s in states]
        torch.set_rng_state(states[0]["torch_rng"])
        return True

    load_states = load_state_dicts

    def report_batches(self) -> Iterator[list[tuple[int, Report]]]:
        return self.reports()
