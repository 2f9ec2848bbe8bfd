"""One trial, start to finish, without Ray: seed, build, train, evaluate at every report.

The Ray adapter drives :meth:`Trial.reports`; the tests use it directly, to check that a
trial under Ray gives the numbers of the same trial without it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import GANConfig
from .experiments import Experiment
from .trainer import GANTrainer


@dataclass
class Report:
    step: int
    metrics: dict[str, float]
    samples: dict[str, Tensor] = field(default_factory=dict)
    """'model' every snapshot_every iterations, plus 'data' in the first report."""
    status: str = "running"
    """'running', 'finished' (the last report) or 'diverged' (losses or parameters not finite: the
    trial's last report, at the iteration where it happened; its metrics are NaN)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trial:
    def __init__(self, experiment: Experiment, config: GANConfig, device: torch.device | str = "cpu"):
        # Pinned on every trial, also under Ray with reused actors: threads change float32
        # results, and a reused process keeps the previous trial's global state.
        torch.set_num_threads(config.torch_threads)
        seed_everything(config.seed)
        self.experiment, self.config = experiment, config
        self.run = experiment.build(config, torch.device(device))
        self.trainer = GANTrainer(self.run.parts, config)
        self.elapsed_s = 0.0
        self.diverged_at: int | None = None

    def _evaluation_rng(self, step: int) -> torch.Generator:
        # Its own stream per (seed, step), so evaluating never shifts the training stream.
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)

    def _report(self) -> Report:
        step = self.trainer.iteration
        rng = self._evaluation_rng(step)
        metrics = {**self.run.evaluate(rng), **self.trainer.last_losses}
        samples = {}
        if step % self.config.snapshot_every == 0 or step == self.config.iterations:
            samples["model"] = self.run.model_samples(rng)
        if step == 0:
            samples["data"] = self.run.data_samples(rng)
        describe = getattr(self.run, "describe", None)
        if describe is not None:
            for kind, values in list(samples.items()):
                samples.update(describe(kind, values))
        final = getattr(self.run, "final", None)
        if final is not None and step == self.config.iterations:
            # Work too costly for every report (e.g. inference by optimisation), done once at the end.
            extra_metrics, extra_samples = final(rng)
            metrics.update(extra_metrics)
            samples.update(extra_samples)
        for name in self.experiment.metrics:
            metrics.setdefault(name, float("nan"))
        return Report(step, metrics, samples, "finished" if step == self.config.iterations else "running")

    def _diverged_report(self) -> Report:
        # Evaluating a model with NaN weights measures nothing (and some metrics fail on NaN).
        metrics = {name: float("nan") for name in self.experiment.metrics}
        metrics.update(self.trainer.last_losses)
        return Report(self.trainer.iteration, metrics, {}, "diverged")

    def reports(self) -> Iterator[Report]:
        """Yields the step-0 report (on a fresh start), then one every report_every iterations.

        A trial whose losses (checked every iteration) or parameters (checked at each report) stop
        being finite yields one 'diverged' report at that iteration and stops: training on from
        NaN weights cannot recover, and a retry from the last state would diverge again.
        """
        cfg = self.config
        if self.diverged_at is not None:
            return
        if self.trainer.iteration == 0:
            yield self._report()
        while self.trainer.iteration < cfg.iterations:
            start = time.perf_counter()
            for _ in range(min(cfg.report_every, cfg.iterations - self.trainer.iteration)):
                self.trainer.train_iteration()
                if not self.trainer.losses_finite():
                    break
            self.elapsed_s += time.perf_counter() - start
            if not (self.trainer.losses_finite() and self.trainer.parameters_finite()):
                self.diverged_at = self.trainer.iteration
                yield self._diverged_report()
                return
            yield self._report()

    def state_dict(self) -> dict[str, Any]:
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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["config"] != self.config.to_dict():
            raise ValueError("checkpoint was written by a different configuration")
        self.trainer.load_state_dict(state["trainer"])
        self.elapsed_s = float(state["elapsed_s"])
        self.diverged_at = state.get("diverged_at")
        torch.set_rng_state(state["torch_rng"])
