"""A compact progress line for the driver (Ray's own table is too wide for a sweep of many trials)."""

from __future__ import annotations

import time

from ray import tune

from trainables.ray_adapter import trial_id_of


class SweepProgress(tune.Callback):
    """Prints 'done/running/errored of N' with the latest trial's step and metrics, at most every `every_s`."""

    def __init__(self, total: int, headline: tuple[str, ...] = (), every_s: float = 10.0):
        self.total, self.headline, self.every_s = total, headline, every_s
        self.start = time.monotonic()
        self.last_print = -float("inf")

    def setup(self, **info):
        # Time from when Tune starts the trials, not from when the sweep was prepared.
        self.start = time.monotonic()
        self.last_print = -float("inf")

    def _line(self, trials, note: str, finished=None, errored=None) -> None:
        counts = {"TERMINATED": 0, "RUNNING": 0, "ERROR": 0}
        for trial in trials:
            status = "TERMINATED" if trial is finished else "ERROR" if trial is errored else trial.status
            if status in counts:
                counts[status] += 1
        elapsed = time.monotonic() - self.start
        print(
            f"[{elapsed:6.0f}s] {counts['TERMINATED']}/{self.total} done, {counts['RUNNING']} running, "
            f"{counts['ERROR']} errored | {note}",
            flush=True,
        )
        self.last_print = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        metrics = " ".join(f"{k}={result[k]:.3g}" for k in self.headline if k in result)
        note = f"{trial_id_of(trial.config)}: step {result.get('step')}/{result.get('iterations')} {metrics}"
        if time.monotonic() - self.last_print >= self.every_s:
            self._line(trials, note)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trials, f"finished {trial_id_of(trial.config)}", finished=trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trials, f"ERROR in {trial_id_of(trial.config)}", errored=trial)
