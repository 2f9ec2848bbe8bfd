"""The discriminator's loss gradient written out by hand for Linear/ReLU discriminators (the 2-D experiment's).

Why: the unroll (``unrolled``) differentiates every inner gradient once more, for the second gradient term. With
autograd, each inner gradient is a backward pass recorded with ``create_graph=True`` and the generator's backward
pass then runs through that recorded backward pass (double backward). For a stack of linear layers and ReLUs the
inner gradient is short to write as ordinary forward operations,

    dL/dW_l = g_l^T a_(l-1),   dL/db_l = sum over the batch of g_l,   g_(l-1) = (g_l W_l) * [pre_(l-1) > 0],

so the generator's backward pass differentiates plain matmuls and ReLU masks once: fewer and cheaper operations
(measured in ``bench.unroll_cost``). Only dL/dlogits comes from autograd, on the loss alone, so any discriminator
loss works. It is the same function as autograd's (ReLU's second derivative is zero where it exists, and autograd's
double backward treats it so), equal to it in float64 to rounding (``tests/test_analytic_gradient.py``).

Seeds packed along a leading dimension (``packed``) use the same formulas: every product is a batched matmul over
that dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .models.mlp import ScaledInput

_RELU_GRAD = torch.ops.aten.threshold_backward
"""grad * [x > 0]: autograd's own ReLU backward, one op (a bool mask and a multiply are two, and slower)."""


@dataclass(frozen=True)
class LinearReluStack:
    """Where each layer's weight and bias sit among the discriminator's flat parameters, and its input scale."""

    layers: tuple[tuple[int, int], ...]
    """(weight index, bias index) per linear layer, input first, into the flat parameter order."""
    input_scale: float

    @classmethod
    def of(cls, module: nn.Module, names: tuple[str, ...]) -> LinearReluStack | None:
        """The stack `module` is (read from a packed module's lone architecture), or None if it is not one:
        Linear layers with biases and a ReLU between each two, optionally inside ``ScaledInput``."""
        structure = getattr(module, "structure", module)
        scale, prefix = 1.0, ""
        if isinstance(structure, ScaledInput):
            scale, prefix, structure = float(structure.scale), "net.", structure.net
        if not isinstance(structure, nn.Sequential) or len(structure) % 2 == 0:
            return None
        # A packed module names its tensors with '__' where the lone one has '.' (``packed._attribute``).
        packed = hasattr(module, "structure")
        index = {name: i for i, name in enumerate(names)}
        layers = []
        for position, layer in enumerate(structure):
            if position % 2 == 1:
                if type(layer) is not nn.ReLU:
                    return None
                continue
            if type(layer) is not nn.Linear or layer.bias is None:
                return None
            keys = [f"{prefix}{position}.{kind}" for kind in ("weight", "bias")]
            keys = [key.replace(".", "__") for key in keys] if packed else keys
            if any(key not in index for key in keys):
                return None
            layers.append((index[keys[0]], index[keys[1]]))
        if 2 * len(layers) != len(names):  # a trainable tensor the formulas would leave out
            return None
        return cls(layers=tuple(layers), input_scale=scale)

    def loss_gradient(
        self,
        tensors: list[Tensor],
        x: Tensor,
        loss_of_logits: Callable[[Tensor], Tensor],
        create_graph: bool,
    ) -> list[Tensor]:
        """dL/d(every flat tensor), in the flat order, for the loss `loss_of_logits` of this stack's logits on `x`
        ([batch, in], or [seeds, batch, in] packed). With `create_graph` the result is differentiable in the
        tensors and in `x`, as autograd's ``create_graph=True`` gradient is."""
        activations, pre_activations = [x / self.input_scale if self.input_scale != 1.0 else x], []
        for i, (w, b) in enumerate(self.layers):
            pre = torch.matmul(activations[-1], tensors[w].transpose(-1, -2)) + tensors[b].unsqueeze(-2)
            if i < len(self.layers) - 1:
                pre_activations.append(pre)
                activations.append(pre.relu())
            else:
                logits = pre
        (grad,) = torch.autograd.grad(loss_of_logits(logits), logits, create_graph=create_graph)
        grads: list[Tensor] = [grad] * len(tensors)  # every slot is overwritten below
        with torch.set_grad_enabled(create_graph):
            for i in reversed(range(len(self.layers))):
                w, b = self.layers[i]
                grads[w] = torch.matmul(grad.transpose(-1, -2), activations[i])
                grads[b] = grad.sum(-2)
                if i:
                    grad = _RELU_GRAD(torch.matmul(grad, tensors[w]), pre_activations[i - 1], 0)
        return grads
