"""A trial's resumable state, one torch file per grid point under the sweep's ``trial_state/``."""

from __future__ import annotations

import io
import time
from typing import Any

import pyarrow.fs as pafs
import torch

from .errors import TrialStateError
from .layout import SweepLayout
from .storage import filesystem_and_path, read_file, write_atomically


class TrialStateFile:
    """A trial's resumable state: ``<sweep>/trial_state/<trial_id>.pt``, replaced atomically
    after the rows of each report are written, so it never runs ahead of the results.

    Why not Tune's checkpoints: Tune restores a trial from the checkpoint named in its
    experiment state, which reaches storage later than the checkpoints and is pruned
    (num_to_keep) meanwhile; a driver killed in between left a state naming a deleted
    checkpoint, and that trial could never resume ("Could not recover from checkpoint as
    it does not exist on storage anymore"). One file per grid point, found by name, has no
    such gap, and after the last step it holds the trial's final models.
    """

    def __init__(self, layout: SweepLayout, trial_id: str):
        self.layout = layout
        self.fs, root = filesystem_and_path(layout.trial_state)
        self.path = f"{root}/{trial_id}.pt"

    def load(self) -> dict[str, Any] | None:
        """The saved state with every tensor on the CPU, or None if there is none.

        Always the CPU: the state holds random-generator states, which must stay CPU ByteTensors
        (``Generator.set_state`` refuses any other), and optimizer step counters, which Adam keeps on
        the CPU. ``load_state_dict`` of the modules and optimizers moves the rest onto the trial's device.
        """
        data = read_file(self.fs, self.path)
        if data is None:
            return None
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception as error:  # truncated, overwritten, not a torch file: torch raises many kinds
            raise TrialStateError(
                f"trial state {self.path} cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:80]}); "
                f"re-run with --discard-corrupt-state to set it aside and train that trial again from step 0"
            ) from None
        if not isinstance(state, dict) or "trainer" not in state or "config" not in state:
            raise TrialStateError(f"trial state {self.path} is not a trial's state; move it away or re-run with "
                                  f"--discard-corrupt-state")  # fmt: skip
        return state

    def set_aside(self) -> str:
        """Move an unreadable state out of the way (kept, never deleted), so that its trial starts afresh."""
        _, corrupt = filesystem_and_path(self.layout.corrupt_state)
        target = f"{corrupt}/{self.path.rsplit('/', 1)[1]}.{time.strftime('%Y%m%dT%H%M%S')}"
        self.fs.create_dir(corrupt, recursive=True)
        self.fs.move(self.path, target)
        return target

    @staticmethod
    def all_in(layout: SweepLayout) -> list[TrialStateFile]:
        """Every trial state the sweep has saved (none set aside)."""
        fs, root = filesystem_and_path(layout.trial_state)
        if fs.get_file_info(root).type != pafs.FileType.Directory:
            return []
        found = fs.get_file_info(pafs.FileSelector(root))
        names = sorted(i.base_name for i in found if i.type == pafs.FileType.File and i.base_name.endswith(".pt"))
        return [TrialStateFile(layout, name[: -len(".pt")]) for name in names]

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomically(self.fs, self.path, lambda out: out.write(buffer.getvalue()))
