"""The unrolled surrogate generator loss f_K of Metz et al. (2017), Section 2.

    f_K(theta_G, theta_D) = f(theta_G, theta_D^K(theta_G, theta_D))

theta_D^K is the discriminator after K optimizer steps on its own loss, taken
*inside the autograd graph*, starting from the real discriminator's parameters
and its optimizer's moments. Back-propagating f_K into the generator gives

    df_K/dtheta_G = df/dtheta_G (at theta_D^K)                      (first term)
                  + df/dtheta_D^K . dtheta_D^K/dtheta_G             (second term)

``second_order=False`` is the paper's "stop-gradient" variant: theta_D^K is
computed but treated as a constant, so only the first term survives. With
``average_over_unroll=True`` as well (Appendix B's third variant), the generator's
loss is averaged over theta_D^1 ... theta_D^K, each held constant.

This module is pure: it reads the discriminator and its optimizer and never
writes to them (no parameter, buffer, ``.grad`` or optimizer-state change).

Why a flat parameter vector: the inner optimizer then costs a handful of tensor
ops per unrolled step whatever the number of parameter tensors, and the one
guard Adam needs for a differentiable sqrt (below) is a single ``where``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

DiscriminatorLoss = Callable[[Tensor, Tensor], Tensor]
"""(logits on real, logits on fake) -> scalar loss the discriminator minimises."""
GeneratorLoss = Callable[[Callable[[Tensor], Tensor], Tensor, Tensor], Tensor]
"""(discriminator at theta_D^K, real, fake) -> scalar loss the generator minimises (see ``losses``)."""
UnrollBatches = Callable[[int], "tuple[Tensor, Tensor]"]
"""k -> (real, fake) minibatch for unrolled step k (fake must carry the generator's graph)."""


@dataclass(frozen=True)
class FlatDiscriminator:
    """The discriminator's parameters as one flat vector, and how to call the module with it."""

    module: nn.Module
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    numels: tuple[int, ...]
    buffers: dict[str, Tensor]
    joint: bool
    """Real and fake batches go through one forward pass: exact when no layer mixes samples
    (no batch norm), and then one call instead of two per unrolled step."""
    batch_dim: int = 0
    """The samples' dimension: 1 when several seeds' models are packed in front (``packed``)."""

    @classmethod
    def of(cls, module: nn.Module) -> FlatDiscriminator:
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        # Clones, because batch norm updates running statistics in place during the
        # unrolled forward passes and the real discriminator must stay untouched.
        buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
        return cls(
            module=module,
            names=tuple(n for n, _ in named),
            shapes=tuple(p.shape for _, p in named),
            numels=tuple(p.numel() for _, p in named),
            buffers=buffers,
            # A packed module (``packed``) names its layers in its lone architecture.
            joint=not any(
                isinstance(m, nn.modules.batchnorm._BatchNorm) for m in getattr(module, "structure", module).modules()
            ),
            batch_dim=getattr(module, "batch_dim", 0),
        )

    def flatten(self, tensors: list[Tensor]) -> Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def current(self) -> Tensor:
        params = dict(self.module.named_parameters())
        return self.flatten([params[n].detach() for n in self.names])

    def pair(self, real: Tensor, fake: Tensor) -> tuple[Tensor | tuple[Tensor, Tensor], int]:
        """A (real, fake) minibatch as the forward pass takes it (joined once, outside the unroll loop)."""
        n_real = real.shape[self.batch_dim]
        return (torch.cat([real, fake], self.batch_dim), n_real) if self.joint else ((real, fake), n_real)

    def pair_logits(self, flat: Tensor, pair: tuple[Tensor | tuple[Tensor, Tensor], int]) -> tuple[Tensor, Tensor]:
        inputs, n_real = pair
        if isinstance(inputs, tuple):  # batch norm: each batch normalised on its own, as D trains
            return self(flat, inputs[0]), self(flat, inputs[1])
        logits = self(flat, inputs)
        rest = logits.shape[self.batch_dim] - n_real
        return logits.narrow(self.batch_dim, 0, n_real), logits.narrow(self.batch_dim, n_real, rest)

    def __call__(self, flat: Tensor, x: Tensor) -> Tensor:
        views = [v.view(s) for v, s in zip(torch.split(flat, self.numels), self.shapes)]
        return functional_call(self.module, ({**dict(zip(self.names, views))}, self.buffers), (x,))


@dataclass
class InnerAdam:
    """Differentiable continuation of a ``torch.optim.Adam`` run (same update formula).

    ``step_count`` is a Python number when the real optimizer keeps its step on the host, and a device tensor
    when it runs with ``capturable=True`` (``trainables.graphs``): then no step of the unroll reads a number
    back from the device or bakes one into a captured graph, and the update follows capturable Adam's formula.
    """

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    step_count: float | Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor

    def step(self, flat: Tensor, grad: Tensor) -> Tensor:
        if self.weight_decay:
            grad = grad + self.weight_decay * flat
        # The same operations, in the same order, as torch.optim.Adam's single-tensor update, so
        # that an unrolled step computes the real optimizer's next parameters to the last bit.
        self.exp_avg = torch.lerp(self.exp_avg, grad, 1 - self.beta1)
        self.exp_avg_sq = torch.addcmul(self.exp_avg_sq * self.beta2, grad, grad, value=1 - self.beta2)
        # sqrt'(0) is infinite; where an element's second moment is exactly zero its
        # gradient is zero too, so inf * 0 would turn the generator's gradient into NaN.
        # Route those elements through sqrt(1) and zero them (the `higher` library masks
        # the same elements).
        positive = self.exp_avg_sq > 0
        root = torch.where(positive, torch.where(positive, self.exp_avg_sq, 1.0).sqrt(), 0.0)
        if isinstance(self.step_count, Tensor):
            # Out of place: the real optimizer's step tensor is read, never advanced.
            self.step_count = self.step_count + 1
            step_size_neg = (self.lr / (1 - self.beta1**self.step_count)).neg()
            bias_correction2_sqrt = (1 - self.beta2**self.step_count).sqrt()
            denom = root / (bias_correction2_sqrt * step_size_neg) + self.eps / step_size_neg
            return torch.addcdiv(flat, self.exp_avg, denom)
        self.step_count += 1
        bias_correction1 = 1 - self.beta1**self.step_count
        bias_correction2_sqrt = (1 - self.beta2**self.step_count) ** 0.5
        denom = root / bias_correction2_sqrt + self.eps
        return torch.addcdiv(flat, self.exp_avg, denom, value=-(self.lr / bias_correction1))


@dataclass
class InnerSGD:
    """Differentiable continuation of a ``torch.optim.SGD`` run (plain or heavy-ball momentum)."""

    lr: float
    momentum: float
    weight_decay: float
    momentum_buffer: Tensor | None

    def step(self, flat: Tensor, grad: Tensor) -> Tensor:
        if self.weight_decay:
            grad = grad + self.weight_decay * flat
        if self.momentum:
            self.momentum_buffer = grad if self.momentum_buffer is None else self.momentum_buffer * self.momentum + grad
            grad = self.momentum_buffer
        return flat - self.lr * grad


def _step_dtype() -> torch.dtype:
    # The dtype torch.optim.Adam gives a capturable step counter it creates.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def inner_optimizer(optimizer: torch.optim.Optimizer, flat_d: FlatDiscriminator) -> InnerAdam | InnerSGD:
    """Copy the hyperparameters and state of the real discriminator optimizer (detached)."""
    if len(optimizer.param_groups) != 1:
        raise ValueError("unrolling supports a discriminator optimizer with exactly one parameter group")
    group = optimizer.param_groups[0]
    params = dict(flat_d.module.named_parameters())
    states = [optimizer.state.get(params[n], {}) for n in flat_d.names]
    like = flat_d.current()

    def flat_state(key: str) -> Tensor | None:
        if not all(key in s for s in states):
            return None
        return flat_d.flatten([s[key].detach() for s in states]).to(like.dtype)

    if type(optimizer) is torch.optim.Adam:
        if group["amsgrad"] or group.get("maximize"):
            raise ValueError("unrolled Adam supports neither amsgrad nor maximize")
        if group["capturable"]:
            # One optimizer step advances every parameter's counter, so the first one speaks for all; comparing
            # them would read them back from the device.
            first = states[0]
            step_count: float | Tensor = first["step"] if "step" in first else like.new_zeros((), dtype=_step_dtype())
        else:
            steps = {float(s["step"]) for s in states if "step" in s}
            if len(steps) > 1:
                raise ValueError(f"discriminator parameters are at different Adam steps {sorted(steps)}")
            step_count = steps.pop() if steps else 0.0
        exp_avg, exp_avg_sq = flat_state("exp_avg"), flat_state("exp_avg_sq")
        beta1, beta2 = group["betas"]
        return InnerAdam(
            lr=float(group["lr"]),
            beta1=float(beta1),
            beta2=float(beta2),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            step_count=step_count,
            exp_avg=torch.zeros_like(like) if exp_avg is None else exp_avg,
            exp_avg_sq=torch.zeros_like(like) if exp_avg_sq is None else exp_avg_sq,
        )
    if type(optimizer) is torch.optim.SGD:
        if group["nesterov"] or group["dampening"] or group.get("maximize"):
            raise ValueError("unrolled SGD supports neither nesterov, dampening nor maximize")
        return InnerSGD(
            lr=float(group["lr"]),
            momentum=float(group["momentum"]),
            weight_decay=float(group["weight_decay"]),
            momentum_buffer=flat_state("momentum_buffer"),
        )
    raise TypeError(f"cannot unroll {type(optimizer).__name__}; use torch.optim.Adam or torch.optim.SGD")


def unrolled_generator_loss(
    discriminator: nn.Module,
    d_optimizer: torch.optim.Optimizer,
    fake: Tensor,
    real: Tensor,
    *,
    unroll_steps: int,
    d_loss: DiscriminatorLoss,
    g_loss: GeneratorLoss,
    second_order: bool = True,
    unroll_batches: UnrollBatches | None = None,
    average_over_unroll: bool = False,
) -> Tensor:
    """The surrogate generator loss f_K, differentiable with respect to the generator.

    Args:
        discriminator: the real discriminator; read, never modified.
        d_optimizer: its Adam or SGD optimizer; hyperparameters and moments are read, never modified.
        fake: generator samples G(z), attached to the generator's graph.
        real: a real minibatch.
        unroll_steps: K >= 0. K=0 is the standard GAN generator loss.
        d_loss: the discriminator's loss on (real logits, fake logits), unrolled.
        g_loss: the generator's loss, given the discriminator at theta_D^K and ``(real, fake)``; for the
            minimax loss this is the whole objective f, real term included.
        second_order: False = stop-gradient variant (theta_D^K treated as a constant).
        unroll_batches: None (the paper's choice) reuses ``(real, fake)`` for every unrolled step;
            otherwise called with k to give step k's ``(real, fake)``.
        average_over_unroll: with ``second_order=False`` only: the mean of the generator's loss at
            theta_D^1, ..., theta_D^K (each a constant) instead of at theta_D^K alone.
    """
    if unroll_steps < 0:
        raise ValueError(f"unroll_steps must be >= 0, got {unroll_steps}")
    if average_over_unroll and (second_order or unroll_steps == 0):
        raise ValueError("average_over_unroll needs second_order=False and unroll_steps >= 1")
    flat_d = FlatDiscriminator.of(discriminator)
    theta = flat_d.current()
    if unroll_steps:
        optimizer = inner_optimizer(d_optimizer, flat_d)
        theta = theta.requires_grad_(True)

        def batch(real_k: Tensor, fake_k: Tensor):
            return flat_d.pair(real_k, fake_k if second_order else fake_k.detach())

        fixed = batch(real, fake) if unroll_batches is None else None
        visited = []
        for k in range(unroll_steps):
            pair = fixed if fixed is not None else batch(*unroll_batches(k))
            loss = d_loss(*flat_d.pair_logits(theta, pair))
            (grad,) = torch.autograd.grad(loss, theta, create_graph=second_order)
            theta = optimizer.step(theta, grad)
            if not second_order:
                theta = theta.detach()
                visited.append(theta.detach())  # a constant for the averaged loss, whatever theta does next
                theta = theta.requires_grad_(True)
        if not second_order:
            theta = theta.detach()
        if average_over_unroll:
            losses = [g_loss(lambda x, t=t: flat_d(t, x), real, fake) for t in visited]
            return torch.stack(losses).mean()
    return g_loss(lambda x: flat_d(theta, x), real, fake)


def ensemble_generator_loss(
    discriminator: nn.Module, members: list[Tensor], fake: Tensor, real: Tensor, *, g_loss: GeneratorLoss
) -> Tensor:
    """The generator's loss against an ensemble of discriminators: the mean of ``g_loss`` at each member.

    The paper's historical averaging (Appendix B): instead of unrolling, the generator trains
    against the last N discriminators (flat parameter vectors of `discriminator`, e.g. snapshots
    taken every S iterations). Each member is a constant; only the generator is differentiated.
    """
    flat_d = FlatDiscriminator.of(discriminator)
    constants = [member.detach() for member in members]
    losses = [g_loss(lambda x, m=member: flat_d(m, x), real, fake) for member in constants]
    return torch.stack(losses).mean()
