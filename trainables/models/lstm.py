"""The LSTM generator of the paper's Section 3.2 (Appendix C): one LSTM step per image column."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def lstm_cell_step(cell: nn.LSTMCell, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``cell(x, state)``, written out: ``torch.func.vmap`` (seed packing) has no batching rule for the fused
    ``aten::lstm_cell``. The same operations in the same order as ATen's CPU LSTM cell, so on a CPU the
    result is the same to the last bit (a test holds it to that)."""
    h, c = state
    gates = F.linear(h, cell.weight_hh, cell.bias_hh) + F.linear(x, cell.weight_ih, cell.bias_ih)
    in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, 1)
    c = forget_gate.sigmoid() * c + in_gate.sigmoid() * cell_gate.tanh()
    return out_gate.sigmoid() * c.tanh(), c


class LstmGenerator(nn.Module):
    """z -> FC + ReLU -> the LSTM's initial state; step j emits image column j through FC + tanh.

    As Appendix C describes it: the FC + ReLU output initialises the LSTM state directly (no
    further layer), and the LSTM then runs one step per column with nothing fed back, so the
    image is a function of the initial state alone. The state of an LSTM is a pair (h, c) and
    the appendix names one vector, so both start from it [R].
    """

    def __init__(self, noise_dim: int = 256, hidden: int = 256, rows: int = 28, columns: int = 28):
        super().__init__()
        self.hidden, self.rows, self.columns = hidden, rows, columns
        self.initial_state = nn.Sequential(nn.Linear(noise_dim, hidden), nn.ReLU())
        # No input: the LSTMCell still needs an input size, so it reads a one-wide zero column.
        self.cell = nn.LSTMCell(1, hidden)
        self.to_column = nn.Linear(hidden, rows)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.cell.weight_ih)
        nn.init.xavier_uniform_(self.cell.weight_hh)
        with torch.no_grad():
            self.cell.bias_ih.zero_()
            self.cell.bias_hh.zero_()
            self.cell.bias_ih[hidden : 2 * hidden] = 1.0  # forget gate (gate order i, f, g, o)

    def forward(self, z: Tensor) -> Tensor:
        h = self.initial_state(z)
        state = (h, h)
        nothing = z.new_zeros(len(z), 1)
        columns = []
        for _ in range(self.columns):
            state = lstm_cell_step(self.cell, nothing, state)
            columns.append(torch.tanh(self.to_column(state[0])))
        return torch.stack(columns, dim=2).unsqueeze(1)  # [n, 1, rows, columns]
