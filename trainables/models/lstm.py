"""The LSTM generator of the paper's Section 3.2 (Appendix C): one LSTM step per image column."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class LstmGenerator(nn.Module):
    """z -> FC + ReLU -> initial LSTM state (h, c); step j reads column j-1 and emits column j with tanh."""

    def __init__(self, noise_dim: int = 256, hidden: int = 256, rows: int = 28, columns: int = 28):
        super().__init__()
        self.hidden, self.rows, self.columns = hidden, rows, columns
        self.initial_state = nn.Sequential(nn.Linear(noise_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * hidden))
        self.cell = nn.LSTMCell(rows, hidden)
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
            self.cell.bias_ih[hidden:2 * hidden] = 1.0  # forget gate (gate order i, f, g, o)

    def forward(self, z: Tensor) -> Tensor:
        h, c = self.initial_state(z).chunk(2, dim=1)
        column = z.new_zeros(len(z), self.rows)
        columns = []
        for _ in range(self.columns):
            h, c = self.cell(column, (h, c))
            column = torch.tanh(self.to_column(h))
            columns.append(column)
        return torch.stack(columns, dim=2).unsqueeze(1)  # [n, 1, rows, columns]
