"""Several seeds trained as one: S copies of a model packed along a leading dimension.

Small models leave the hardware idle: a 2->128->1 discriminator on a batch of 512 costs more in
per-operation overhead than in arithmetic, on a CPU and far more on a GPU. Packing S seeds makes
every operation S times larger and the count of operations the same.

How it stays exact (up to float rounding): every parameter and buffer gets a leading seed dimension
and slice s *is* seed s's tensor (``torch.func.stack_module_state``). The forward pass is the lone
model's own forward, mapped over that dimension with ``torch.func.vmap``, so any architecture packs
(convolutions, batch norm with per-seed statistics and running buffers, LSTM cells) and each seed
sees only its own slice. The loss is the *sum over seeds* of each seed's own mean loss, so the
gradient on slice s is seed s's own gradient; Adam, the inner unrolled Adam included, is
elementwise, so it then takes each seed's own step. Each seed draws its minibatches and noise from
its own generator, in the order a lone run would. Gradients are plain ``torch.autograd`` through
the mapped forward, so the unrolled surrogate (``unrolled``) runs unchanged on packed modules,
double backward included.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .draws import as_sampler, stacked
from .losses import GENERATOR_LOSSES, discriminator_loss
from .trainer import GANParts, GANTrainer, adam_optimizers


def _attribute(name: str) -> str:
    # A module attribute cannot contain '.', and every lone tensor becomes one attribute of the packed module.
    return name.replace(".", "__")


class Packed(nn.Module):
    """S copies of one architecture; inputs and outputs carry the seed dimension first.

    Parameter (or buffer) ``name`` of seed s's own network is ``getattr(packed, _attribute(name))[s]``.
    """

    batch_dim = 1  # read by the unrolled surrogate, which joins real and fake batches along it

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        first = models[0]
        shapes = {k: v.shape for k, v in first.state_dict().items()}
        if any(type(m) is not type(first) or {k: v.shape for k, v in m.state_dict().items()} != shapes for m in models):
            raise TypeError("packed models must share one architecture")
        params, buffers = stack_module_state(models)
        # The architecture only: its tensors on the meta device, outside this module's parameters and
        # state (a list hides it from nn.Module), called with each seed's slices by `forward`.
        self._structure = [copy.deepcopy(first).to("meta")]
        self.parameter_names = tuple(params)
        self.buffer_names = tuple(buffers)
        names = (*self.parameter_names, *self.buffer_names)
        if len({_attribute(n) for n in names}) != len(names):
            raise TypeError("cannot pack a model whose tensor names differ only in '.' against '__'")
        for name, value in params.items():
            self.register_parameter(_attribute(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_attribute(name), value.detach().clone())

    @property
    def structure(self) -> nn.Module:
        """The lone architecture (tensors on the meta device): what layers each seed's network has."""
        return self._structure[0]

    def forward(self, x: Tensor) -> Tensor:
        structure = self.structure
        structure.train(self.training)

        def one_seed(params, buffers, x_seed):
            return functional_call(structure, (params, buffers), (x_seed,))

        params = {name: getattr(self, _attribute(name)) for name in self.parameter_names}
        buffers = {name: getattr(self, _attribute(name)) for name in self.buffer_names}
        return vmap(one_seed, randomness="error")(params, buffers, x)

    def seed_state(self, index: int) -> dict[str, Tensor]:
        """Seed `index`'s ``state_dict()``, parameters and buffers, under its own network's names (a copy)."""
        names = (*self.parameter_names, *self.buffer_names)
        return {name: getattr(self, _attribute(name)).detach()[index].clone() for name in names}

    def load_seed_states(self, states: list[dict[str, Tensor]]) -> None:
        """The inverse of ``seed_state``: every seed's ``state_dict()`` into the packed tensors."""
        with torch.no_grad():
            for name in (*self.parameter_names, *self.buffer_names):
                getattr(self, _attribute(name)).copy_(torch.stack([state[name] for state in states]))


def per_seed_mean(values: Tensor) -> Tensor:
    """E[.] over each seed's batch: [S, batch, ...] -> [S]."""
    return values.flatten(1).mean(1)


class SeedLosses:
    """The GAN losses of packed seeds: the sum over seeds of each seed's mean, so that every seed's
    parameters get exactly their own gradient. Each call's per-seed values are kept for reports."""

    def __init__(self, generator_loss: str):
        self._generator_loss = GENERATOR_LOSSES[generator_loss]
        self.d_values: list[Tensor] = []
        self.g_values: list[Tensor] = []

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        per_seed = discriminator_loss(real_logits, fake_logits, per_seed_mean)
        self.d_values.append(per_seed.detach())
        return per_seed.sum()

    def generator(self, discriminator, real: Tensor, fake: Tensor) -> Tensor:
        per_seed = self._generator_loss(discriminator, real, fake, per_seed_mean)
        self.g_values.append(per_seed.detach())
        return per_seed.sum()


class SeedGenerators:
    """One CPU random stream per seed, drawn in the order a lone run of that seed draws."""

    def __init__(self, seeds: list[int]):
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def get_state(self) -> list[Tensor]:
        return [g.get_state() for g in self.generators]

    def set_state(self, states: list[Tensor]) -> None:
        for generator, state in zip(self.generators, states):
            generator.set_state(state)


def pack_parts(parts: list[GANParts], config, device: torch.device) -> tuple[GANParts, SeedLosses]:
    """One GANParts training every seed's parts at once (each built, initialised, by its own seed)."""
    losses = SeedLosses(config.generator_loss)
    generator = Packed([p.generator for p in parts]).to(device)
    discriminator = Packed([p.discriminator for p in parts]).to(device)
    packed = GANParts(
        generator,
        discriminator,
        *adam_optimizers(config, generator, discriminator),
        stacked([as_sampler(p.sample_real) for p in parts]),
        stacked([as_sampler(p.sample_noise) for p in parts]),
        losses.generator,
        losses.discriminator,
    )
    return packed, losses


class PackedTrainer(GANTrainer):
    """``GANTrainer`` on packed parts: the same updates, with ``last_losses`` as one value per seed."""

    def __init__(self, parts: GANParts, losses: SeedLosses, config, seeds: list[int], graph_backend=None):
        super().__init__(parts, config, graph_backend)
        self.seed_loss_values = losses
        self.rng = SeedGenerators(list(seeds))
        self.num_models = len(seeds)

    def discriminator_step(self) -> Tensor:
        self.seed_loss_values.d_values.clear()
        total = super().discriminator_step()
        self._d = self.seed_loss_values.d_values[0]
        return total

    def generator_step(self) -> Tensor:
        self.seed_loss_values.g_values.clear()
        total = super().generator_step()
        # The averaged stop-gradient variant and the ensemble take the mean of several evaluations.
        self._g = torch.stack(self.seed_loss_values.g_values).mean(0)
        return total

    def _iteration_losses(self, d_loss: Tensor, g_loss: Tensor) -> dict[str, Tensor]:
        return {"d_loss": self._d, "g_loss": self._g}  # one value per seed, so each seed diverges on its own

    @property
    def seed_losses(self) -> list[dict[str, float]]:
        """Per seed, the last iteration's losses as numbers (one host sync)."""
        if not self.losses:
            return [{} for _ in range(self.num_models)]
        values = {k: v.tolist() for k, v in self.losses.items()}
        return [{k: v[i] for k, v in values.items()} for i in range(self.num_models)]

    def params_finite_per_seed(self) -> list[bool]:
        """Per seed: every parameter finite (one seed's NaN never reaches another's slice)."""
        p = self.parts
        tensors = [*p.generator.parameters(), *p.discriminator.parameters()]
        return torch.stack([torch.isfinite(t.flatten(1)).all(1) for t in tensors]).all(0).tolist()

    def seeds_finite(self) -> list[bool]:
        """Per seed: losses (at every iteration so far) and parameters finite."""
        return [ok and step is None for ok, step in zip(self.params_finite_per_seed(), self.nonfinite_at())]


def _seed_optimizer_state(optimizer: torch.optim.Optimizer, index: int) -> dict:
    state = optimizer.state_dict()
    per_param = {
        # Adam's step counter too is a tensor it increments in place: a copy, never the live one.
        i: {k: (v[index] if v.dim() > 0 else v).clone() if torch.is_tensor(v) else v for k, v in s.items()}
        for i, s in state["state"].items()
    }
    return {"state": per_param, "param_groups": state["param_groups"]}


def _load_seed_optimizer_states(optimizer: torch.optim.Optimizer, states: list[dict]) -> None:
    merged = {
        i: {
            k: torch.stack([s["state"][i][k] for s in states])
            if torch.is_tensor(v) and v.dim() > 0
            else (v.clone() if torch.is_tensor(v) else v)
            for k, v in first.items()
        }
        for i, first in states[0]["state"].items()
    }
    optimizer.load_state_dict({"state": merged, "param_groups": states[0]["param_groups"]})


def _seed_flat(flat: Tensor, module: Packed, index: int) -> Tensor:
    """A flat packed parameter vector (a historical-averaging snapshot) -> that seed's flat vector."""
    params = list(module.parameters())
    pieces = torch.split(flat, [p.numel() for p in params])
    return torch.cat([piece.view(p.shape)[index].reshape(-1) for piece, p in zip(pieces, params)])


def _packed_flat(flats: list[Tensor], module: Packed) -> Tensor:
    """The inverse of ``_seed_flat``: every seed's flat vector -> the packed one."""
    params = list(module.parameters())
    per_seed = [torch.split(f, [p.numel() // len(flats) for p in params]) for f in flats]
    return torch.cat([torch.stack([seed[j] for seed in per_seed]).reshape(-1) for j in range(len(params))])


def seed_trainer_state(trainer: PackedTrainer, index: int) -> dict[str, Any]:
    """Seed `index`'s ``GANTrainer.state_dict()``, as a run of that seed alone would save it."""
    p = trainer.parts
    return {
        "generator": p.generator.seed_state(index),
        "discriminator": p.discriminator.seed_state(index),
        "g_optimizer": _seed_optimizer_state(p.g_optimizer, index),
        "d_optimizer": _seed_optimizer_state(p.d_optimizer, index),
        "iteration": trainer.iteration,
        "d_ensemble": [_seed_flat(t, p.discriminator, index) for t in trainer.ensemble],
        "rng": trainer.rng.generators[index].get_state(),
        "last_losses": dict(trainer.seed_losses[index]),
    }


def load_seed_trainer_states(trainer: PackedTrainer, states: list[dict[str, Any]]) -> None:
    """The inverse: every seed's saved ``GANTrainer`` state into the packed trainer (all at one iteration)."""
    if len({s["iteration"] for s in states}) != 1:
        raise ValueError("packed seeds must resume from one iteration")
    p = trainer.parts
    p.generator.load_seed_states([s["generator"] for s in states])
    p.discriminator.load_seed_states([s["discriminator"] for s in states])
    _load_seed_optimizer_states(p.g_optimizer, [s["g_optimizer"] for s in states])
    _load_seed_optimizer_states(p.d_optimizer, [s["d_optimizer"] for s in states])
    trainer.iteration = int(states[0]["iteration"])
    device = next(p.discriminator.parameters()).device
    trainer.ensemble = [
        _packed_flat([s["d_ensemble"][j] for s in states], p.discriminator).to(device)
        for j in range(len(states[0]["d_ensemble"]))
    ]
    trainer.rng.set_state([s["rng"] for s in states])
    keys = states[0]["last_losses"].keys()
    trainer._loaded({k: [s["last_losses"][k] for s in states] for k in keys})


def load_seed_into(trainer: PackedTrainer, index: int, generator: nn.Module, discriminator: nn.Module) -> None:
    """Copy seed `index`'s current parameters and buffers into its own lone networks (to evaluate it as usual)."""
    generator.load_state_dict(trainer.parts.generator.seed_state(index))
    discriminator.load_state_dict(trainer.parts.discriminator.seed_state(index))
