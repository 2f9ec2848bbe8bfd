"""Divergences of a histogram over discrete modes from the uniform distribution."""

from __future__ import annotations

import math

from torch import Tensor


def kl_to_uniform(counts: Tensor) -> float:
    """KL(p || uniform) = log(m) - H(p), p = counts / sum(counts) over m bins; NaN for an empty histogram."""
    counts = counts.double()
    total = counts.sum()
    if total == 0:
        return math.nan
    p = counts[counts > 0] / total
    return math.log(len(counts)) + (p * p.log()).sum().item()
