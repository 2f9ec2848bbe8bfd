"""Errors every layer may raise or catch; each carries one line meant for the user.

No imports beyond the standard library, so the orchestrator and the analysis can use them
without pulling in torch.
"""

from __future__ import annotations

import argparse


class ConfigError(ValueError):
    """A configuration value is invalid."""


class DatasetError(ValueError):
    """A data file is missing or malformed; the message names it."""


class TrialStateError(ValueError):
    """A trial's saved state cannot be read; the message names the file and what to do."""


class OneLineParser(argparse.ArgumentParser):
    """Command lines (orchestrator, analysis, benches): bad arguments are one line naming the problem, exit 2,
    not the whole usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")
