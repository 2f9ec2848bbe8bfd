"""Training batches in two parts, so that a block of iterations can draw its random numbers ahead.

Every random number of training comes from one CPU stream per trial (``GANTrainer.rng``), so that a
run is the same on any device and a resumed run replays an uninterrupted one. Moving each draw to a
GPU on its own costs a host sync per batch (a copy from pageable memory waits for the queue of
launched kernels), four or more per iteration. A :class:`Sampler` therefore splits a batch into
``draw`` (the random part, on the CPU: indices, noise, colours) and ``materialise`` (the rest, on the
device: e.g. gathering images from a device-resident data set). The trainer takes a block's draws in
the order its iterations would take them, and :func:`to_device` copies them in one pinned,
non-blocking transfer per dtype: the same values as drawing one batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten

Drawn = Any
"""A draw's random part: a CPU tensor, or a (nested) tuple of them."""


def _identity(drawn: Tensor) -> Tensor:
    return drawn


@dataclass(frozen=True, eq=False)
class Sampler:
    """(batch size, CPU random generator) -> a training batch on the device, as ``draw`` then ``materialise``."""

    draw: Callable[[int, torch.Generator], Drawn]
    """Consumes the random stream; returns CPU tensors (or, with ``device=None``, tensors already in place)."""
    device: torch.device | None
    """Where ``materialise`` wants the draw; None: wherever ``draw`` put it (nothing to copy)."""
    materialise: Callable[[Drawn], Tensor] = _identity
    """The draw, moved to ``device`` -> the batch; no randomness here."""

    def __call__(self, n: int, rng: torch.Generator) -> Tensor:
        return self.materialise(to_device([self.draw(n, rng)], self.device)[0])


def as_sampler(sampler: Sampler | Callable[[int, torch.Generator], Tensor]) -> Sampler:
    """A plain ``(n, rng) -> batch`` function as a Sampler whose draw is the whole batch, in place."""
    return sampler if isinstance(sampler, Sampler) else Sampler(sampler, None)


def stacked(samplers: list[Sampler]) -> Sampler:
    """Several seeds' samplers as one, each drawing from its own stream (``rngs.generators``, in order), batches
    stacked in front: the draws a lone run of each seed would take."""
    devices = {s.device for s in samplers}
    if len(devices) != 1:
        raise ValueError(f"packed samplers must share a device, got {sorted(map(str, devices))}")

    def draw(n: int, rngs) -> tuple:
        return tuple(s.draw(n, rng) for s, rng in zip(samplers, rngs.generators, strict=True))

    def materialise(drawn: tuple) -> Tensor:
        return torch.stack([s.materialise(d) for s, d in zip(samplers, drawn, strict=True)])

    return Sampler(draw, devices.pop(), materialise)


def to_device(draws: list[Drawn], device: torch.device | None, *, always_flat: bool = False) -> list[Drawn]:
    """`draws` on `device`, one transfer per dtype: concatenated flat, pinned, copied without blocking the
    host, and cut back into the same shapes. A CPU target (or None) keeps them as they are, unless
    `always_flat` (for tests of the cutting on a machine without an accelerator)."""
    if device is None or (torch.device(device).type == "cpu" and not always_flat):
        return draws
    leaves, spec = tree_flatten(draws)
    moved: list[Tensor | None] = [None] * len(leaves)
    for dtype in dict.fromkeys(leaf.dtype for leaf in leaves):
        where = [i for i, leaf in enumerate(leaves) if leaf.dtype == dtype]
        flat = torch.cat([leaves[i].reshape(-1) for i in where])
        if torch.device(device).type == "cuda":
            # The caching host allocator keeps a pinned block until its copy has completed, so the
            # buffer may go out of scope here while the transfer is still in flight.
            flat = flat.pin_memory()
        flat = flat.to(device, non_blocking=True)
        for i, part in zip(where, flat.split([leaves[i].numel() for i in where])):
            moved[i] = part.view(leaves[i].shape)
    return tree_unflatten(moved, spec)


def nbytes(drawn: Drawn) -> int:
    return sum(leaf.numel() * leaf.element_size() for leaf in tree_flatten(drawn)[0])


def draw_indices(count: int, *per_sample: int) -> Callable[[int, torch.Generator], Tensor]:
    """A draw of n uniform indices into a data set of `count` items (shape [n, *per_sample])."""

    def draw(n: int, rng: torch.Generator) -> Tensor:
        return torch.randint(count, (n, *per_sample), generator=rng)

    return draw
