"""Typed configuration shared by every experiment.

Each experiment subclasses :class:`GANConfig`, adds its own fields and sets paper
defaults; a profile (smoke / quick / paper) is a set of field changes on top of those.
Values the paper does not print (reconstructed from its appendix wording, the authors'
demo notebook or a later re-implementation such as PacGAN's) are reasoned defaults, marked
[R] or [S] in the field docs, and every field can be overridden
(``--set name=value`` on the command line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError

C = TypeVar("C", bound="GANConfig")

MAX_UNROLL_STEPS = 100
"""The paper unrolls at most 20 steps (Figure 2); each step costs about one more discriminator update inside
the generator's graph, so far more is a typo, not an experiment."""
BOUNDS = {"unroll_steps": MAX_UNROLL_STEPS, "iterations": 10_000_000, "batch_size": 65_536, "generator_steps": 100}
"""Upper bounds of integer fields: beyond them a value is a mistake that would only fail later, inside a trial."""


@dataclass(frozen=True)
class GANConfig:
    seed: int = 0
    """Seeds model initialisation, data and noise sampling, and evaluation."""
    unroll_steps: int = 0
    """K: discriminator optimizer steps unrolled inside the generator's graph (0 = standard GAN)."""
    second_order: bool = True
    """False = the paper's stop-gradient variant (first gradient term only)."""
    average_over_unroll: bool = False
    """With second_order=False: the generator's loss averaged over the K unrolled discriminators
    theta_D^1..theta_D^K, each held constant (the paper's Appendix B, third second-gradient variant)."""
    fresh_unroll_batches: bool = False
    """Draw a new minibatch for every unrolled step; the paper reuses one (no significant difference)."""
    d_ensemble_size: int = 1
    """N: the generator trains against the mean loss over the last N discriminators (the paper's
    historical averaging, Appendix B; [R] values, a sweep axis). 1 = the current discriminator."""
    d_ensemble_every: int = 1
    """S: a discriminator joins the ensemble every S iterations (Appendix B: longer delays, less stable)."""
    generator_steps: int = 1
    """Generator updates per discriminator update (Appendix B ablation uses 5)."""
    batch_size: int = 512
    iterations: int = 25_000
    """Training iterations; one iteration = one D update then `generator_steps` G updates."""
    report_every: int = 500
    """Metrics are computed, written to Parquet and checkpointed every this many iterations."""
    snapshot_every: int = 5_000
    """Generated-sample snapshots for the figures every this many iterations (multiple of report_every)."""
    torch_threads: int = 1
    """torch intra-op threads; fixed because the thread count changes float32 results."""
    deterministic: bool = True
    """On a GPU: deterministic cuDNN and cuBLAS kernels, no cuDNN autotuning and no TF32, so that a seed gives the
    same numbers run after run and a retried trial rewrites the same rows (``trial.set_determinism``). False lets
    cuDNN pick its fastest kernels and TF32 matmuls: faster, not reproducible. The CPU is deterministic either way."""
    cuda_graphs: bool = False
    """Capture each training iteration once as a CUDA graph and replay it (``trainables.graphs``): one launch
    where eager runs launch over a thousand small kernels per unrolled iteration. Off until measured on a GPU
    (nothing here has been); needs a CUDA device. Adam then keeps its step count on the device
    (``capturable=True``), which rounds differently: reproducible by seed, not equal to a run without graphs.
    Not with historical averaging."""
    noise_dim: int = 256
    """Dimension of the generator's Gaussian noise z."""
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    beta1: float = 0.5
    """Adam's first-moment decay, both networks."""
    beta2: float = 0.999
    """Adam's second-moment decay, both networks (PyTorch's and TensorFlow's default)."""
    shared_noise: bool = False
    """The generator's (first) update of an iteration reuses the noise batch of that iteration's discriminator
    update, as DCGAN-TensorFlow and PacGAN's re-implementation do; False draws a fresh one."""
    generator_loss: str = "non_saturating"
    """'non_saturating' (-log D(G(z)), the paper's MNIST and image models) or 'minimax' (log(1 - D(G(z))))."""
    gradient_probe: bool = False
    """At every report, measure the two terms of the generator's gradient of f_K (Metz et al. 2017, Section 2) on a
    fixed probe minibatch: their norms and cosine become the metrics grad_first_norm, grad_second_norm and
    grad_cosine (``metrics.gradient_terms``). Training is untouched. Not with seeds packed into one trial."""

    def __post_init__(self) -> None:
        for name in (
            "d_ensemble_size",
            "d_ensemble_every",
            "generator_steps",
            "batch_size",
            "iterations",
            "report_every",
            "snapshot_every",
            "torch_threads",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.unroll_steps, int) or isinstance(self.unroll_steps, bool) or self.unroll_steps < 0:
            raise ConfigError(f"unroll_steps must be a non-negative integer, got {self.unroll_steps!r}")
        for name, bound in BOUNDS.items():
            if getattr(self, name) > bound:
                raise ConfigError(f"{name} must be at most {bound:,}, got {getattr(self, name):,}")
        for name, kind in self.field_types().items():
            value = getattr(self, name)
            if kind is float and not (isinstance(value, int | float) and math.isfinite(value)):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        check_choice("generator_loss", self.generator_loss, ("non_saturating", "minimax"))
        if (self.d_ensemble_size > 1 or self.d_ensemble_every > 1) and self.unroll_steps:
            raise ConfigError("a discriminator ensemble (historical averaging) replaces unrolling: use unroll_steps 0")
        if self.cuda_graphs and (self.d_ensemble_size > 1 or self.d_ensemble_every > 1):
            raise ConfigError("cuda_graphs cannot capture historical averaging: its ensemble changes as training goes")
        if self.average_over_unroll and self.second_order:
            raise ConfigError("average_over_unroll is a stop-gradient variant: set second_order=false too")
        if self.average_over_unroll and self.unroll_steps == 0:
            raise ConfigError(
                "average_over_unroll averages over the K unrolled discriminators: it needs unroll_steps >= 1"
            )
        if self.noise_dim < 1 or not (self.g_lr > 0 and self.d_lr > 0 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("noise_dim, g_lr and d_lr must be positive and beta1, beta2 in [0, 1)")
        if self.snapshot_every % self.report_every:
            raise ConfigError(
                f"snapshot_every ({self.snapshot_every}) must be a multiple of report_every ({self.report_every})"
            )

    @property
    def adam_betas(self) -> tuple[float, float]:
        """Adam's (beta1, beta2), both networks: this config's values (once a classmethod, which gave the class
        defaults and so silently ignored --set beta1/beta2)."""
        return (self.beta1, self.beta2)

    def refuse_changed(self, names: tuple[str, ...], why: str) -> None:
        """One line for a field this experiment inherits but never reads, set away from its default: accepting it
        would ignore it silently."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        changed = [n for n in names if getattr(self, n) != defaults[n]]
        if changed:
            raise ConfigError(f"{', '.join(changed)}: {why}")

    @classmethod
    def field_types(cls) -> dict[str, type]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    def with_values(self: C, values: dict[str, Any]) -> C:
        """A copy with `values` applied; strings are parsed to the field's type (for --set)."""
        types = self.field_types()
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise ConfigError(
                f"unknown {type(self).__name__} field(s): {', '.join(unknown)}; known: {', '.join(types)}"
            )
        return dataclasses.replace(self, **{k: parse_value(k, v, types[k]) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def key_value(text: str) -> tuple[str, str]:
    """'name=value' from a command line (``--set``) as (name, value); argparse turns the error into one line."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return key, value


def parse_value(name: str, value: Any, kind: type) -> Any:
    if not isinstance(value, str) or kind is str:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if kind is bool:
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        return kind(value)
    except ValueError:
        raise ConfigError(f"{name} expects a {kind.__name__}, got {value!r}") from None
