"""One point of a sweep's grid: its seed (or seeds packed into one trial), its unroll steps and its axes.

Built once, when a sweep's spec is resolved (``orchestrator.spec``), or by the Ray adapter from a Tune script's
own config; Tune carries it (``to_tune``), the trial runs it (``trainables.protocol``), the rows record its
identity and axis list (``trainables.results``). The reserved keys ``seed``, ``seeds`` and ``unroll_steps``
are spelled here and nowhere else. Standard library only: the orchestrator and the analysis (which runs
without torch) read it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

SEED = "seed"
SEEDS = "seeds"
"""A list of seeds in place of ``seed``: those seeds trained packed into one model by one trial."""
UNROLL_STEPS = "unroll_steps"
RESERVED = (SEED, SEEDS, UNROLL_STEPS)
"""Keys with options of their own (``--seeds``, ``--unroll-steps``): never an ``--axis``, a variant or a ``--set``."""
TUNE_KEY = "grid_point"
"""The Tune config key under which the orchestrator's trials carry their point (``to_tune``)."""


def is_int(value: Any) -> bool:
    """The one integer rule: an int, and not a bool (``True`` is an int to Python, never a seed or a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class GridPoint:
    """One Tune trial: a seed, or several packed into one model (``packed``), at one unroll setting and axes.

    ``axes`` are the trial's axis columns, (name, value) in column order: the experiment's own axes
    (e.g. D size) first, then the other fields its sweep varies, sorted. ``config`` holds the rest of the
    trial's resolved config fields (the profile's values and ``--set`` overrides); empty for a point decoded
    from a Tune script's config, whose trial resolves them itself.
    """

    seeds: tuple[int, ...]
    unroll_steps: int
    axes: tuple[tuple[str, Any], ...] = ()
    packed: bool = False
    config: tuple[tuple[str, Any], ...] = ()

    @property
    def seed(self) -> int:
        return self.seeds[0]

    @property
    def axis_values(self) -> dict[str, Any]:
        return dict(self.axes)

    @property
    def axis_names(self) -> list[str]:
        return [name for name, _ in self.axes]

    @property
    def trial_id(self) -> str:
        """The trial's id within its sweep, e.g. ``seed=0,unroll_steps=10,d_size=0.25``; packed seeds get
        ``seeds=0+1+2,...`` (each seed keeps its own id in its rows: ``seed_points``)."""
        head = (SEEDS, "+".join(map(str, self.seeds))) if self.packed else (SEED, self.seed)
        return ",".join(f"{k}={v}" for k, v in [head, (UNROLL_STEPS, self.unroll_steps), *sorted(self.axes)])

    def seed_points(self) -> list[GridPoint]:
        """One unpacked point per seed: the trials whose rows, states and ids a packed trial keeps apart."""
        return [replace(self, seeds=(seed,), packed=False) for seed in self.seeds]

    def fields(self, seed: int | None = None) -> dict[str, Any]:
        """The config fields of one seed's trial (the first seed's by default)."""
        return {
            **dict(self.config),
            **dict(self.axes),
            UNROLL_STEPS: self.unroll_steps,
            SEED: self.seed if seed is None else seed,
        }

    def cost_order(self) -> tuple:
        """Sorts the most expensive points first: cost grows with the unroll steps (a K = 10 iteration costs
        about 5x a K = 0 one) and, on a size axis, with the size; the seed changes nothing. Started in this
        order, the last trials to finish are short ones (the longest-processing-time rule of scheduling)."""
        sizes = tuple(-v for _, v in sorted(self.axes) if isinstance(v, int | float) and not isinstance(v, bool))
        return (-self.unroll_steps, *sizes, self.seed)

    def to_tune(self) -> dict[str, Any]:
        """JSON-safe, for a Tune config (``from_tune`` reads it back)."""
        return {
            SEEDS if self.packed else SEED: list(self.seeds) if self.packed else self.seed,
            UNROLL_STEPS: self.unroll_steps,
            "axes": [list(pair) for pair in self.axes],
            "config": dict(self.config),
        }

    @classmethod
    def from_tune(
        cls, config: dict[str, Any], axis_columns: Iterable[str] = (), defaults: dict | None = None
    ) -> GridPoint:
        """The point of a trial from its Tune config: the orchestrator's encoding (``to_tune``), or a Tune script's
        own config fields (``seed`` or ``seeds``, ``unroll_steps``, any others, each of which becomes an axis).
        `axis_columns` are the experiment's own axes, always columns; `defaults` (the trial's resolved config)
        gives their values, and K's and the seed's, where the config leaves them out."""
        encoded = config.get(TUNE_KEY)
        if encoded is not None:
            packed = SEEDS in encoded
            return cls(
                seeds=tuple(encoded[SEEDS]) if packed else (encoded[SEED],),
                unroll_steps=encoded[UNROLL_STEPS],
                axes=tuple((name, value) for name, value in encoded["axes"]),
                packed=packed,
                config=tuple(encoded["config"].items()),
            )
        defaults = defaults or {}
        packed = SEEDS in config
        seeds = tuple(config[SEEDS]) if packed else (config.get(SEED, defaults.get(SEED, 0)),)
        own = list(axis_columns)
        varied = sorted(k for k in config if k not in (*RESERVED, *own))
        values = {**defaults, **config}
        return cls(
            seeds=seeds,
            unroll_steps=values.get(UNROLL_STEPS, 0),
            axes=tuple((name, values[name]) for name in [*own, *varied] if name in values),
            packed=packed,
        )


def pack(points: list[GridPoint], size: int) -> list[GridPoint]:
    """The packing split: consecutive seeds of one (K, axes) setting, ``size`` at a time, into one trial each.
    Size 1 leaves every point its own trial."""
    if size == 1:
        return list(points)
    groups: dict[tuple, list[GridPoint]] = {}
    for point in points:
        groups.setdefault((point.unroll_steps, point.axes, point.config), []).append(point)
    packed = []
    for group in groups.values():
        for i in range(0, len(group), size):
            chunk = group[i : i + size]
            packed.append(replace(chunk[0], seeds=tuple(p.seed for p in chunk), packed=True))
    return packed
