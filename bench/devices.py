"""The device a bench runs on, checked before any work: one line when torch cannot use it."""

from __future__ import annotations

import argparse
import platform

import torch


def checked_device(parser: argparse.ArgumentParser, name: str) -> torch.device:
    """``name`` as a torch device, or the parser's one-line error (exit 2) if torch here cannot run on it."""
    try:
        device = torch.device(name)
    except RuntimeError:
        parser.error(f"--device {name}: not a device name (cpu, cuda, cuda:1, ...)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            parser.error(f"--device {name}: torch {torch.__version__} ({build}) sees no CUDA device here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            parser.error(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        parser.error(f"--device {name}: the benches run on cpu or cuda")
    return device


def describe(device: torch.device) -> str:
    """The hardware behind a device, for a table's headline."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def synchronizer(device: torch.device):
    """A function that waits for the device's queued work (CUDA runs asynchronously), a no-op on the CPU."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
