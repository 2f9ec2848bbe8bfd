"""The shared GAN trainer: plain discriminator updates, unrolled-surrogate generator updates.

Knows nothing about Ray, Parquet or any particular experiment: an experiment hands it
its networks, optimizers and samplers as :class:`GANParts`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from . import graphs
from .config import GANConfig
from .draws import Drawn, Sampler, as_sampler, nbytes, to_device
from .losses import GENERATOR_LOSSES, discriminator_loss
from .unrolled import (
    DiscriminatorLoss,
    FlatDiscriminator,
    GeneratorLoss,
    ensemble_generator_loss,
    unrolled_generator_loss,
)

DRAW_AHEAD_BYTES = 64 * 2**20
"""At most this much of a block's random draws is taken ahead and copied to the device at once (``train``)."""

_OUT_OF_ORDER = "an iteration drew other batches than GANTrainer.draw_order() says; make draw_order match the steps"

DIVERGENCE_CHECK_EVERY = 100
"""Iterations between the trial's reads of ``GANTrainer.nonfinite_at`` (one host sync each), besides each report:
a diverged trial trains on NaNs for at most this many iterations, and its row still names the exact iteration."""

TRAINER_METRICS = {
    "d_loss": "discriminator loss at the last iteration before the report",
    "g_loss": "generator surrogate loss f_K at the last iteration before the report",
}
"""What the trainer itself reports for every experiment (``GANTrainer.last_losses``)."""


def adam_optimizers(
    config: GANConfig, generator: nn.Module, discriminator: nn.Module
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """The two networks' Adam optimizers with the config's learning rates and betas: the one place every trial
    (lone or packed seeds) builds them."""
    return (
        torch.optim.Adam(generator.parameters(), lr=config.g_lr, betas=config.adam_betas),
        torch.optim.Adam(discriminator.parameters(), lr=config.d_lr, betas=config.adam_betas),
    )


@dataclass
class GANParts:
    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    sample_real: Sampler | Callable[[int, torch.Generator], Tensor]
    """Real minibatches; a plain ``(n, rng) -> batch`` function works too, drawn one batch at a time."""
    sample_noise: Sampler | Callable[[int, torch.Generator], Tensor]
    generator_loss: GeneratorLoss
    discriminator_loss: DiscriminatorLoss = discriminator_loss

    @classmethod
    def build(
        cls,
        config: GANConfig,
        generator: nn.Module,
        discriminator: nn.Module,
        sample_real: Sampler,
        device: torch.device,
    ) -> GANParts:
        """Both networks on `device` with Adam, z ~ N(0, I_noise_dim), and the configured generator loss."""
        generator, discriminator = generator.to(device), discriminator.to(device)

        def draw_noise(n: int, rng: torch.Generator) -> Tensor:
            return torch.randn(n, config.noise_dim, generator=rng)

        return cls(
            generator,
            discriminator,
            *adam_optimizers(config, generator, discriminator),
            sample_real,
            Sampler(draw_noise, device),
            GENERATOR_LOSSES[config.generator_loss],
        )


class GANTrainer:
    """Alternating updates: one discriminator step on its plain loss, then the generator on f_K."""

    def __init__(self, parts: GANParts, config: GANConfig, graph_backend: graphs.GraphBackend | None = None):
        self.parts = parts
        self.config = config
        # One CPU stream for every minibatch and noise draw, saved in checkpoints so a
        # resumed run replays exactly the draws an uninterrupted one would have made.
        self.rng = torch.Generator().manual_seed(config.seed)
        self.iteration = 0
        self.num_models = 1  # models trained side by side: seeds packed (``packed``) have one each
        # The last iteration's losses stay on the device: reading them (``last_losses``) is a host sync,
        # which on a GPU stalls the queue of launched kernels, so it happens once per report.
        self.losses: dict[str, Tensor] = {}
        # Divergence watch (``_watch``): None until the first watched iteration after a start or a load.
        self._watch_start: int | None = None
        self._finite_so_far = self._finite_count = torch.empty(0)
        self._nonfinite_losses: dict[str, Tensor] = {}
        # Historical averaging: flat parameter snapshots of past discriminators, newest last.
        self.uses_ensemble = config.d_ensemble_size > 1 or config.d_ensemble_every > 1
        self.ensemble: list[Tensor] = []
        # The discriminator update's noise batch, for a generator update that shares it (config.shared_noise).
        self._shared_noise: Tensor | None = None
        self._real, self._noise = as_sampler(parts.sample_real), as_sampler(parts.sample_noise)
        # Draws taken ahead (``train``), in the order the iterations take them: (sampler, draw on the device).
        self._drawn: deque[tuple[Sampler, Drawn]] = deque()
        self._draws_per_iteration = 0
        # CUDA graphs (config.cuda_graphs): an iteration's batches come from the graph's static inputs.
        self._feed: deque[tuple[Sampler, Tensor]] | None = None
        self._graphed: graphs.GraphedIteration | None = None
        if config.cuda_graphs:
            backend = graph_backend or graphs.backend_for(next(parts.discriminator.parameters()).device)
            graphs.make_capturable(parts.g_optimizer, parts.d_optimizer)
            self._graphed = graphs.GraphedIteration(backend, self._run_fed)

    def draw_order(self) -> list[Sampler]:
        """The samplers one iteration draws from, in order (each batch_size samples from ``rng``)."""
        cfg, real, noise = self.config, self._real, self._noise
        order = [real, noise]  # the discriminator's update
        for step in range(cfg.generator_steps):
            order += [real] if cfg.shared_noise and step == 0 else [real, noise]
            if cfg.fresh_unroll_batches and not self.uses_ensemble:
                order += [real, noise] * max(cfg.unroll_steps - 1, 0)  # unrolled steps 1 .. K-1
        return order

    def draw_ahead(self, iterations: int) -> int:
        """Take the random draws of up to `iterations` iterations (fewer past ``DRAW_AHEAD_BYTES``) and move
        them to the device in one transfer per dtype; returns how many iterations were drawn."""
        if self._drawn:
            raise RuntimeError("draws are already taken ahead; train those iterations first")
        order, drawn, size, done = self.draw_order(), [], 0, 0
        while done < iterations and (done == 0 or size < DRAW_AHEAD_BYTES):
            for sampler in order:
                drawn.append(sampler.draw(self.config.batch_size, self.rng))
                size += nbytes(drawn[-1])
            done += 1
        devices = {s.device for s in order}
        if len(devices) == 1:
            drawn = to_device(drawn, devices.pop())
        else:
            drawn = [to_device([d], s.device)[0] for s, d in zip(order * done, drawn)]
        self._drawn.extend(zip(order * done, drawn))
        self._draws_per_iteration = len(order)
        return done

    def _batch(self, sampler: Sampler) -> Tensor:
        if self._feed is not None:
            expected, batch = self._feed.popleft() if self._feed else (None, None)
            if expected is not sampler:
                raise RuntimeError(_OUT_OF_ORDER)
            return batch
        expected, drawn = self._drawn.popleft() if self._drawn else (None, None)
        if expected is not sampler:
            raise RuntimeError(_OUT_OF_ORDER)
        return sampler.materialise(drawn)

    def train(self, iterations: int) -> None:
        """`iterations` iterations, their random draws taken ahead in blocks: the same numbers as
        ``train_iteration`` called that many times, with a host-to-device transfer per block, not per batch."""
        end = self.iteration + iterations
        while self.iteration < end:
            for _ in range(self.draw_ahead(end - self.iteration)):
                self.train_iteration()

    def discriminator_step(self) -> Tensor:
        p = self.parts
        real = self._batch(self._real)
        noise = self._batch(self._noise)
        self._shared_noise = noise if self.config.shared_noise else None
        with torch.no_grad():
            fake = p.generator(noise)
        loss = p.discriminator_loss(p.discriminator(real), p.discriminator(fake))
        p.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        p.d_optimizer.step()
        return loss.detach()

    def generator_step(self) -> Tensor:
        p, cfg = self.parts, self.config
        real = self._batch(self._real)
        noise, self._shared_noise = self._shared_noise, None
        fake = p.generator(self._batch(self._noise) if noise is None else noise)

        if self.uses_ensemble:
            loss = ensemble_generator_loss(p.discriminator, self.ensemble, fake, real, g_loss=p.generator_loss)
            return self._generator_update(loss)

        def fresh_batch(k: int) -> tuple[Tensor, Tensor]:
            if k == 0:
                return real, fake
            return self._batch(self._real), p.generator(self._batch(self._noise))

        loss = unrolled_generator_loss(
            p.discriminator,
            p.d_optimizer,
            fake,
            real,
            unroll_steps=cfg.unroll_steps,
            d_loss=p.discriminator_loss,
            g_loss=p.generator_loss,
            second_order=cfg.second_order,
            unroll_batches=fresh_batch if cfg.fresh_unroll_batches else None,
            average_over_unroll=cfg.average_over_unroll,
        )
        return self._generator_update(loss)

    def _generator_update(self, loss: Tensor) -> Tensor:
        p = self.parts
        p.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        p.g_optimizer.step()
        return loss.detach()

    def train_iteration(self) -> None:
        if not self._drawn:
            self.draw_ahead(1)
        if self._graphed is not None:
            self._graphed([self._batch(sampler) for sampler in self.draw_order()])
        else:
            pending = len(self._drawn)
            self._run_iteration()
            if pending - len(self._drawn) != self._draws_per_iteration:
                raise RuntimeError(_OUT_OF_ORDER)
        self.iteration += 1

    def _run_iteration(self) -> None:
        """One iteration's device work; with CUDA graphs, what is captured (``graphs``)."""
        d_loss = self.discriminator_step()
        if self.uses_ensemble and self.iteration % self.config.d_ensemble_every == 0:
            self.ensemble = [*self.ensemble, FlatDiscriminator.of(self.parts.discriminator).current()]
            self.ensemble = self.ensemble[-self.config.d_ensemble_size :]
        for _ in range(self.config.generator_steps):
            g_loss = self.generator_step()
        self.losses = self._iteration_losses(d_loss, g_loss)
        self._watch(self.losses)

    def _run_fed(self) -> None:
        """``_run_iteration`` on the batches in the graph's static inputs."""
        self._feed = deque(zip(self.draw_order(), self._graphed.inputs, strict=True))
        try:
            self._run_iteration()
            if self._feed:
                raise RuntimeError(_OUT_OF_ORDER)
        finally:
            self._feed = None

    def _iteration_losses(self, d_loss: Tensor, g_loss: Tensor) -> dict[str, Tensor]:
        return {"d_loss": d_loss, "g_loss": g_loss}

    def _watch(self, losses: dict[str, Tensor]) -> None:
        """Keep, on the device and in a few elementwise ops, the first iteration whose losses were not finite
        and those losses: the count of finite iterations since the watch began, while all have been."""
        d_loss, g_loss = losses["d_loss"], losses["g_loss"]
        # A sum of two losses is non-finite exactly when one is (finite losses this large do not occur).
        finite = torch.isfinite(d_loss + g_loss)
        if self._watch_start is None:
            self._watch_start = self.iteration  # the iterations done before this one
            self._finite_so_far = torch.ones_like(finite)
            self._finite_count = torch.zeros(finite.shape, dtype=torch.long, device=finite.device)
            self._nonfinite_losses = {k: torch.zeros_like(v) for k, v in losses.items()}
        # In place, every one: a captured iteration (``graphs``) updates the tensors it was captured with.
        first = self._finite_so_far & ~finite
        for k, v in losses.items():
            self._nonfinite_losses[k].copy_(torch.where(first, v, self._nonfinite_losses[k]))
        self._finite_so_far &= finite
        self._finite_count += self._finite_so_far

    def nonfinite_at(self) -> list[int | None]:
        """Per model (one, or one per packed seed): the first iteration whose losses were not finite, or None.
        A host sync; the trial calls it every ``DIVERGENCE_CHECK_EVERY`` iterations and at each report."""
        if self._watch_start is None:
            return [None] * self.num_models
        finite, count = self._finite_so_far.reshape(-1).tolist(), self._finite_count.reshape(-1).tolist()
        return [None if ok else self._watch_start + n + 1 for ok, n in zip(finite, count)]

    def nonfinite_losses(self, index: int = 0) -> dict[str, float]:
        """The losses of model `index` at its ``nonfinite_at`` iteration."""
        return {k: float(v.reshape(-1)[index]) for k, v in self._nonfinite_losses.items()}

    @property
    def last_losses(self) -> dict[str, float]:
        """The last iteration's losses as numbers (a host sync)."""
        return {k: float(v) for k, v in self.losses.items()}

    def parameters_finite(self) -> bool:
        p = self.parts
        tensors = [*p.generator.parameters(), *p.discriminator.parameters()]
        return all(bool(torch.isfinite(t).all()) for t in tensors)

    def state_dict(self) -> dict[str, Any]:
        if self._drawn:
            raise RuntimeError("cannot save a trainer with draws taken ahead: rng has moved past its iteration")
        p = self.parts
        return {
            "generator": p.generator.state_dict(),
            "discriminator": p.discriminator.state_dict(),
            "g_optimizer": p.g_optimizer.state_dict(),
            "d_optimizer": p.d_optimizer.state_dict(),
            "iteration": self.iteration,
            "d_ensemble": [t.clone() for t in self.ensemble],
            "rng": self.rng.get_state(),
            "last_losses": dict(self.last_losses),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        p = self.parts
        p.generator.load_state_dict(state["generator"])
        p.discriminator.load_state_dict(state["discriminator"])
        p.g_optimizer.load_state_dict(state["g_optimizer"])
        p.d_optimizer.load_state_dict(state["d_optimizer"])
        self.iteration = int(state["iteration"])
        # Saved states load on the CPU (TrialStateFile.load); the ensemble lives beside D's parameters.
        device = next(p.discriminator.parameters()).device
        self.ensemble = [t.to(device, copy=True) for t in state.get("d_ensemble", [])]
        self.rng.set_state(state["rng"])
        self._drawn.clear()
        self._loaded(state["last_losses"])

    def _loaded(self, losses: dict[str, float]) -> None:
        """What every load (lone or packed) ends with: the saved losses, a new divergence watch, a new graph."""
        # float64 holds a saved loss exactly, whatever the models' dtype; a saved state is never mid-divergence.
        device = next(self.parts.discriminator.parameters()).device
        self.losses = {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in losses.items()}
        self._watch_start = None
        # The optimizers' state tensors are new: a graph captured before would go on updating the old ones.
        if self._graphed is not None:
            graphs.make_capturable(self.parts.g_optimizer, self.parts.d_optimizer)
            self._graphed = graphs.GraphedIteration(self._graphed.backend, self._run_fed)
