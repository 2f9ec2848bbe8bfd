"""Who a trial is under Tune's checkpoint schedulers (Population Based Training, PB2, pausing HyperBand).

Without them a trial is its grid point (``grid_point``): its seed, K and axes say which rows are its own. PBT breaks
that: an exploit copies a donor's whole config (seed and K included) and its checkpoint into another trial, so a
clone would name itself after the donor and write into the donor's rows. Here a trial is instead a **member** (Tune's
trial id), and its history is a chain of **generations**: a member starts at generation 0; each exploit starts the
next generation from the donor's state, whose segment (member and generation) and step it records as its parent.
A generation's rows are their own trial in the results (``trial_id`` below), so every (trial, step) is written once
whatever the schedule does; the superseded generation's last row is rewritten with the status ``exploited``.

Only the optimiser's settings, and K as a discrete choice (the paper's own variable), may change between
generations: anything else (the architecture, the schedule, the batch size, the seed) would make the donor's state
describe another experiment, so it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ConfigError

MUTABLE_FIELDS = ("g_lr", "d_lr", "beta1", "beta2", "unroll_steps")
"""What a checkpoint scheduler may change at an exploit: re-applied to the optimisers after the donor's state loads."""


@dataclass(frozen=True)
class Lineage:
    member: str
    """Tune's trial id: the member of the population."""
    generation: int = 0
    parent: str = ""
    """The donor segment's ``trial_id`` (empty for generation 0)."""
    parent_step: int = -1
    """The donor's step when this generation started from its state (-1 for generation 0)."""

    @property
    def trial_id(self) -> str:
        """This generation's trial id in the results: its rows are one trial's."""
        return f"member={self.member},generation={self.generation}"

    def columns(self) -> dict[str, Any]:
        return {"generation": self.generation, "parent": self.parent, "parent_step": self.parent_step}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Lineage:
        return cls(**values)

    def successor(self, member: str, donor: Lineage, donor_step: int) -> Lineage:
        """`member`'s next generation, started from `donor`'s state at `donor_step` (self: member's own latest)."""
        return Lineage(member, self.generation + 1, donor.trial_id, donor_step)


def refuse_immutable(names: Iterable[str], what: str) -> None:
    """One line naming every field in `names` that may not change between generations."""
    fixed = sorted(set(names) - set(MUTABLE_FIELDS))
    if fixed:
        raise ConfigError(
            f"{what} {', '.join(fixed)}: a checkpoint scheduler may change only {', '.join(MUTABLE_FIELDS)} "
            f"(unroll_steps as a list of values)"
        )


def check_mutations(hyperparam_mutations: Mapping[str, Any]) -> None:
    """A PBT ``hyperparam_mutations`` (or PB2 ``hyperparam_bounds``) this trainable can honour, or one line."""
    refuse_immutable(hyperparam_mutations, "cannot mutate")
    steps = hyperparam_mutations.get("unroll_steps")
    if steps is not None and not (
        isinstance(steps, list | tuple) and steps and all(isinstance(k, int) and not isinstance(k, bool) for k in steps)
    ):
        raise ConfigError(f"unroll_steps mutates only as a list of integers (the paper's K values), got {steps!r}")


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def apply_optimiser_settings(g_optimizer, d_optimizer, config) -> None:
    """The config's learning rates and betas in the optimisers, after a state (with the donor's) is loaded."""
    for optimizer, lr in ((g_optimizer, config.g_lr), (d_optimizer, config.d_lr)):
        for group in optimizer.param_groups:
            group["lr"] = lr
            group["betas"] = config.adam_betas
