"""Several seeds trained as one: S copies of a model packed along a leading dimension.

Small models leave the hardware idle: a 2->128->1 discriminator on a batch of 512 costs more in
per-operation overhead than in arithmetic, on a CPU and far more on a GPU. Packing S seeds makes
every operation S times larger and the count of operations the same.

How it stays exact (up to float rounding): every parameter gets a leading seed dimension and
slice s *is* seed s's parameter (a Linear's weight stays [out, in] per seed). Each layer acts on
its own seed's slice only (batched matmul), and the loss is the *sum over seeds* of each seed's
own mean loss, so the gradient on slice s is seed s's own gradient. Adam, the inner unrolled
Adam included, is elementwise, so it then takes each seed's own step. Each seed draws its
minibatches and noise from its own generator, in the order a lone run would. Plain
``torch.autograd`` throughout, so the unrolled surrogate (``unrolled``) runs unchanged on packed
modules; ``torch.func.vmap`` would need the whole unroll rewritten in ``torch.func`` transforms.

Supported layers: ``nn.Linear``, stateless activations, and ``ScaledInput``, i.e. the 2-D
experiment's models. Convolutions and batch norm are not packed yet.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from .losses import GENERATOR_LOSSES, discriminator_loss
from .models.mlp import ScaledInput
from .trainer import GANParts, GANTrainer

STATELESS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity)


# How a packed parameter holds each seed's own ``nn.Linear`` parameter, by parameter name. Weights
# are stored [S, in, out], i.e. each seed's weight transposed: with [S, out, in] the forward
# multiplies by a transposed view, and the double backward of the unroll then runs its elementwise
# ops (ReLU's backward, adds) on transposed layouts, 10x slower on a CPU. Biases are [S, 1, out].
SEED_SLICE = {"weight": lambda packed, i: packed[i].t(), "bias": lambda packed, i: packed[i, 0]}
STACK = {
    "weight": lambda tensors: torch.stack([t.t() for t in tensors]).contiguous(),
    "bias": lambda tensors: torch.stack(list(tensors)).unsqueeze(1),
}


class PackedLinear(nn.Module):
    """S linear layers at once: x [S, batch, in] -> [S, batch, out], seed s with its own weight and bias."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(STACK["weight"]([layer.weight.detach() for layer in layers]))
        self.bias = nn.Parameter(STACK["bias"]([layer.bias.detach() for layer in layers]))

    def forward(self, x: Tensor) -> Tensor:
        if self.weight.shape[2] == 1:
            # A logit layer: batched matrix-vector products and their double backward ran 1.4x
            # slower on this CPU (K = 10, S = 8) than the same dot products done elementwise.
            return (x * self.weight.transpose(1, 2)).sum(-1, keepdim=True) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)


class Packed(nn.Module):
    """S copies of one architecture; inputs and outputs carry the seed dimension first."""

    batch_dim = 1  # read by the unrolled surrogate, which joins real and fake batches along it

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        self.net = _pack(models)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _pack(models: list[nn.Module]) -> nn.Module:
    first = models[0]
    if any(type(m) is not type(first) for m in models):
        raise TypeError("packed models must share one architecture")
    if isinstance(first, nn.Linear):
        return PackedLinear(models)
    if isinstance(first, STATELESS):
        return copy.deepcopy(first)
    if isinstance(first, nn.Sequential):
        return nn.Sequential(*[_pack([m[i] for m in models]) for i in range(len(first))])
    if isinstance(first, ScaledInput):
        return ScaledInput(_pack([m.net for m in models]), first.scale)
    raise TypeError(f"seed packing does not support {type(first).__name__} layers yet (MLP models only)")


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
    betas = config.adam_betas()

    def stacked(samplers):
        def sample(n: int, rngs: SeedGenerators) -> Tensor:
            return torch.stack([sampler(n, rng) for sampler, rng in zip(samplers, rngs.generators)])

        return sample

    packed = GANParts(
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters(), lr=config.g_lr, betas=betas),
        torch.optim.Adam(discriminator.parameters(), lr=config.d_lr, betas=betas),
        stacked([p.sample_real for p in parts]),
        stacked([p.sample_noise for p in parts]),
        losses.generator,
        losses.discriminator,
    )
    return packed, losses


class PackedTrainer(GANTrainer):
    """``GANTrainer`` on packed parts: the same updates, with ``last_losses`` as one value per seed."""

    def __init__(self, parts: GANParts, losses: SeedLosses, config, seeds: list[int]):
        super().__init__(parts, config)
        self.losses = losses
        self.rng = SeedGenerators(list(seeds))
        self.seed_losses: list[dict[str, float]] = [{} for _ in seeds]

    def discriminator_step(self) -> float:
        self.losses.d_values.clear()
        total = super().discriminator_step()
        self._d = self.losses.d_values[0]
        return total

    def generator_step(self) -> float:
        self.losses.g_values.clear()
        total = super().generator_step()
        # The averaged stop-gradient variant and the ensemble take the mean of several evaluations.
        self._g = torch.stack(self.losses.g_values).mean(0)
        return total

    def train_iteration(self) -> None:
        super().train_iteration()
        self.seed_losses = [{"d_loss": float(d), "g_loss": float(g)} for d, g in zip(self._d, self._g)]

    def losses_finite_per_seed(self) -> list[bool]:
        return [all(math.isfinite(v) for v in losses.values()) for losses in self.seed_losses]

    def seeds_finite(self) -> list[bool]:
        """Per seed: losses and parameters finite (one seed's NaN never reaches another's slice)."""
        p = self.parts
        tensors = [*p.generator.parameters(), *p.discriminator.parameters()]
        finite = torch.stack([torch.isfinite(t.flatten(1)).all(1) for t in tensors]).all(0)
        return [bool(ok) and losses_ok for ok, losses_ok in zip(finite, self.losses_finite_per_seed())]


def _lone_parameters(module: Packed) -> list[tuple[str, Any, Any]]:
    """Per parameter, in ``parameters()`` order: its name in a seed's own network, and how to take
    that seed's tensor out of the packed one and put the seeds' tensors back (``SEED_SLICE``, ``STACK``)."""
    out = []
    for name, _ in module.named_parameters():
        kind = name.rsplit(".", 1)[-1]
        out.append((name.removeprefix("net."), SEED_SLICE[kind], STACK[kind]))
    return out


def seed_module_state(module: Packed, index: int) -> dict[str, Tensor]:
    """Seed `index`'s parameters under its own network's names and shapes (a copy)."""
    return {
        name: take(p.detach(), index).clone()
        for (name, take, _), p in zip(_lone_parameters(module), module.parameters())
    }


def _seed_optimizer_state(optimizer: torch.optim.Optimizer, module: Packed, index: int) -> dict:
    state = optimizer.state_dict()
    takes = [take for _, take, _ in _lone_parameters(module)]
    per_param = {
        # Adam's step counter too is a tensor it increments in place: a copy, never the live one.
        i: {k: (takes[i](v, index) if v.dim() > 0 else v).clone() if torch.is_tensor(v) else v for k, v in s.items()}
        for i, s in state["state"].items()
    }
    return {"state": per_param, "param_groups": state["param_groups"]}


def _seed_flat(flat: Tensor, module: Packed, index: int) -> Tensor:
    """A flat packed parameter vector (a historical-averaging snapshot) -> that seed's flat vector."""
    params = list(module.parameters())
    pieces = torch.split(flat, [p.numel() for p in params])
    return torch.cat(
        [
            take(piece.view(p.shape), index).reshape(-1)
            for (_, take, _), piece, p in zip(_lone_parameters(module), pieces, params)
        ]
    )


def _packed_flat(flats: list[Tensor], module: Packed) -> Tensor:
    """The inverse of ``_seed_flat``: every seed's flat vector -> the packed one."""
    params = list(module.parameters())
    per_seed = [torch.split(f, [p.numel() // len(flats) for p in params]) for f in flats]
    pieces = []
    for j, ((_, take, stack), p) in enumerate(zip(_lone_parameters(module), params)):
        lone_shape = take(p.detach(), 0).shape
        pieces.append(stack([seed[j].view(lone_shape) for seed in per_seed]).reshape(-1))
    return torch.cat(pieces)


def seed_trainer_state(trainer: PackedTrainer, index: int) -> dict[str, Any]:
    """Seed `index`'s ``GANTrainer.state_dict()``, as a run of that seed alone would save it."""
    p = trainer.parts
    return {
        "generator": seed_module_state(p.generator, index),
        "discriminator": seed_module_state(p.discriminator, index),
        "g_optimizer": _seed_optimizer_state(p.g_optimizer, p.generator, index),
        "d_optimizer": _seed_optimizer_state(p.d_optimizer, p.discriminator, index),
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
    with torch.no_grad():
        for network in ("generator", "discriminator"):
            module = getattr(p, network)
            for param, (name, _, stack) in zip(module.parameters(), _lone_parameters(module)):
                param.copy_(stack([s[network][name] for s in states]))
    for optimizer, module, key in (
        (p.g_optimizer, p.generator, "g_optimizer"),
        (p.d_optimizer, p.discriminator, "d_optimizer"),
    ):
        stackers = [stack for _, _, stack in _lone_parameters(module)]
        merged = {}
        for i in states[0][key]["state"]:
            merged[i] = {
                k: stackers[i]([s[key]["state"][i][k] for s in states])
                if torch.is_tensor(v) and v.dim() > 0
                else (v.clone() if torch.is_tensor(v) else v)
                for k, v in states[0][key]["state"][i].items()
            }
        optimizer.load_state_dict({"state": merged, "param_groups": states[0][key]["param_groups"]})
    trainer.iteration = int(states[0]["iteration"])
    device = next(p.discriminator.parameters()).device
    trainer.ensemble = [
        _packed_flat([s["d_ensemble"][j] for s in states], p.discriminator).to(device)
        for j in range(len(states[0]["d_ensemble"]))
    ]
    trainer.rng.set_state([s["rng"] for s in states])
    trainer.seed_losses = [dict(s["last_losses"]) for s in states]
    trainer.last_losses = {}


def load_seed_into(trainer: PackedTrainer, index: int, generator: nn.Module, discriminator: nn.Module) -> None:
    """Copy seed `index`'s current parameters into its own lone networks (to evaluate it as usual)."""
    with torch.no_grad():
        for lone, packed in ((generator, trainer.parts.generator), (discriminator, trainer.parts.discriminator)):
            lone.load_state_dict(seed_module_state(packed, index))
