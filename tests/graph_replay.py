"""A CPU stand-in for a CUDA graph, to test on a machine without a GPU what capturing an iteration needs.

``ReplayGraph`` is a ``trainables.graphs.GraphBackend``. Its capture records every aten operation of one
run (``TorchDispatchMode`` sees the forward, the backward and the optimizer's operations alike) and then
undoes what the run wrote, as a CUDA capture executes nothing. Its replay runs the recorded operations
again on the very tensors they were recorded with, copying each fresh result into the tensor the capture
produced, and takes every other argument (a Python number, a shape) as recorded: what a CUDA graph does
with memory addresses and kernel arguments. So a replay equals an eager iteration only if the iteration
reads its inputs from fixed tensors, keeps its state in place and takes no Python number that changes
between iterations; and reading a value back to the host while capturing fails here as it does on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

HOST_READS = {"aten._local_scalar_dense", "aten.is_nonzero", "aten.equal"}
"""Operations that hand a device value to Python: a host sync, refused inside a CUDA capture."""
FROM_PYTHON = {"aten.lift_fresh", "aten.lift_fresh_copy"}
"""torch.tensor(<Python values>) inside the iteration: on a GPU a copy from pageable host memory."""
UNANNOTATED_WRITES = {"aten.native_batch_norm": {"running_mean", "running_var"}}
"""Arguments an operation writes although its schema does not say so (batch norm's running statistics)."""


class GraphUnsafe(RuntimeError):
    """The captured iteration did something a CUDA capture refuses."""


def _tensors(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    return []


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[tuple] = []
        self.written: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "profiler":  # the optimizers' record_function markers: no device work
            return func(*args, **kwargs)
        name = str(func.overloadpacket)
        if name in HOST_READS:
            raise GraphUnsafe(f"{name} reads a device value back to the host inside a captured iteration")
        if name in FROM_PYTHON:
            raise GraphUnsafe(f"{name}: a tensor made from Python values inside a captured iteration")
        schema = func._schema
        given = [*args, *(kwargs.get(a.name) for a in schema.arguments[len(args) :])]
        for argument, value in zip(schema.arguments, given):
            written = argument.alias_info is not None and argument.alias_info.is_write
            if written or argument.name in UNANNOTATED_WRITES.get(name, ()):
                for tensor in _tensors(value):
                    # Kept (and so never freed, so its id is never reused) with its value before the first write.
                    self.written.setdefault(id(tensor), (tensor, tensor.detach().clone()))
        out = func(*args, **kwargs)
        # None is an optional output not asked for (convolution_backward's bias gradient, say).
        if not all(o is None or isinstance(o, torch.Tensor) for o in (out if isinstance(out, tuple | list) else [out])):
            raise GraphUnsafe(f"{name} returns a Python value inside a captured iteration")
        # An output that aliases an input (a view, an in-place result) follows that input by itself.
        fresh = [r.alias_info is None for r in schema.returns]
        self.ops.append((func, args, kwargs, out, fresh))
        return out


class ReplayGraph:
    def __init__(self):
        self.ops: list[tuple] = []
        self.replays = 0

    def warm_up(self, run: Callable[[], None]) -> None:
        run()

    def capture(self, run: Callable[[], None]) -> None:
        recorder = _Recorder()
        with recorder:
            run()
        with torch.no_grad():
            for tensor, before in recorder.written.values():
                tensor.copy_(before)
        self.ops = recorder.ops

    def replay(self) -> None:
        with torch.no_grad():
            for func, args, kwargs, out, fresh in self.ops:
                result = func(*args, **kwargs)
                if isinstance(out, torch.Tensor):
                    out, result = [out], [result]
                for recorded, new, is_fresh in zip(out, result, fresh * len(out) if len(fresh) == 1 else fresh):
                    if is_fresh and isinstance(recorded, torch.Tensor):
                        recorded.copy_(new)
        self.replays += 1
