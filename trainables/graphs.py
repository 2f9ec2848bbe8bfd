"""A training iteration captured once as a CUDA graph and replayed (``GANConfig.cuda_graphs``, off by default).

Why: on a GPU the unrolled generator step is launch-bound. A K = 10 MoG iteration dispatches over a thousand
small kernels (the unroll, its double backward, the inner Adam), each costing more to launch than to run;
a CUDA graph launches the whole iteration at once (``torch.cuda.CUDAGraph``).

A graph replays the kernels it recorded, on the memory it recorded, with the numbers it recorded. So the
iteration it captures must (and ``tests/test_graphs.py`` checks each on the CPU, with a stand-in that replays
recorded operations the same way):

* read its batches from the same tensors every time: the trainer copies each iteration's batches into
  static buffers (``inputs``) before a replay;
* read nothing back to the host and take no Python number that changes from one iteration to the next:
  Adam runs with ``capturable=True`` (its step count a device tensor) and the unrolled inner Adam carries
  that tensor (``unrolled.InnerAdam``); divergence is watched on the device (``GANTrainer._watch``);
* keep its state in place: parameters, optimizer moments, batch-norm statistics and the divergence watch
  are updated in place, never rebound to new tensors;
* be warmed up before capture: a few iterations run eagerly on a side stream first (lazy initialisation of
  Adam's state and of cuBLAS and cuDNN handles must not happen inside the graph).

Capturable Adam rounds differently from the default one, so a run with graphs is reproducible by seed but
not equal, bit for bit, to the same run without them. Historical averaging is not supported (its ensemble
grows and shifts between iterations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from .errors import ConfigError

WARMUP_ITERATIONS = 3
"""Eager iterations before the capture: the warm-up torch's CUDA graph notes recommend (lazy initialisation
happens in the first one; the others settle the caching allocator)."""


class GraphBackend(Protocol):
    """How an iteration is warmed up, captured and replayed on one kind of device."""

    def warm_up(self, run: Callable[[], None]) -> None: ...

    def capture(self, run: Callable[[], None]) -> None:
        """Record `run`'s device work without executing it (state is as before, afterwards)."""

    def replay(self) -> None: ...


class CudaGraph:
    def __init__(self, device: torch.device):
        self.device = device
        self.graph: torch.cuda.CUDAGraph | None = None

    def warm_up(self, run: Callable[[], None]) -> None:
        # On a side stream, never the default one: autograd remembers the stream a leaf's gradient was last
        # accumulated on, and a capture made to wait on the default stream fails (PyTorch issue 180090).
        side, main = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            run()
        main.wait_stream(side)

    def capture(self, run: Callable[[], None]) -> None:
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            run()

    def replay(self) -> None:
        self.graph.replay()


def make_capturable(*optimizers: torch.optim.Optimizer) -> None:
    """Adam with its step count a device tensor (``capturable=True``): nothing to read back, nothing baked in.
    Also after loading a state saved without graphs: its step counts move to their parameters' devices."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["capturable"] = True
            for param in group["params"]:
                state = optimizer.state.get(param, {})
                if torch.is_tensor(state.get("step")) and state["step"].device != param.device:
                    state["step"] = state["step"].to(param.device)


def backend_for(device: torch.device) -> GraphBackend:
    if device.type != "cuda":
        raise ConfigError(f"cuda_graphs needs a CUDA device; this trial trains on {device.type}")
    return CudaGraph(device)


class GraphedIteration:
    """One training iteration, run eagerly ``WARMUP_ITERATIONS`` times, then captured and replayed.

    `run` does the iteration's device work, reading its batches from ``inputs`` (in the order the trainer's
    draws come); `__call__` copies the next iteration's batches there first.
    """

    def __init__(self, backend: GraphBackend, run: Callable[[], None], warmup: int = WARMUP_ITERATIONS):
        self.backend, self.run, self.warmup = backend, run, warmup
        self.inputs: list[Tensor] = []
        self.iterations = 0
        self.captured = False

    def __call__(self, batches: list[Tensor]) -> None:
        if not self.inputs:
            self.inputs = [batch.clone() for batch in batches]
        else:
            if [b.shape for b in batches] != [i.shape for i in self.inputs]:
                raise RuntimeError("a captured iteration's batches changed shape; every iteration must draw alike")
            for static, batch in zip(self.inputs, batches):
                static.copy_(batch)
        if self.iterations < self.warmup:
            self.backend.warm_up(self.run)
        else:
            if not self.captured:
                self.backend.capture(self.run)
                self.captured = True
            self.backend.replay()
        self.iterations += 1
