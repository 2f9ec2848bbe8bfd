"""Sweeps of the paper's experiments as Ray Tune runs: ``run_sweep(SweepSpec(...))``."""

from .spec import SweepError, SweepSpec
from .sweep import SweepResult, run_sweep

__all__ = ["SweepError", "SweepResult", "SweepSpec", "run_sweep"]
