"""The LSTM generator: one column per step, tanh range, forget-gate bias, and the label-collapse metrics."""

import math

import torch

from trainables.experiments.rnn_mnist import label_metrics
from trainables.models.lstm import LstmGenerator


def test_shape_range_and_the_papers_state_initialisation():
    torch.manual_seed(0)
    g = LstmGenerator(noise_dim=8, hidden=16)
    z = torch.randn(5, 8)
    x = g(z)
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1
    # Appendix C: the FC + ReLU output is the LSTM's initial state itself, and no column is fed back.
    h0 = torch.relu(g.initial_state[0](z))
    first = g.cell(torch.zeros(5, 1), (h0, h0))
    assert torch.allclose(x[:, 0, :, 0], torch.tanh(g.to_column(first[0])))
    second = g.cell(torch.zeros(5, 1), first)
    assert torch.allclose(x[:, 0, :, 1], torch.tanh(g.to_column(second[0])))


def test_no_layer_between_the_noise_projection_and_the_state():
    g = LstmGenerator(noise_dim=8, hidden=16)
    linears = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 16), (16, 28)]


def test_forget_gate_bias_is_one():
    g = LstmGenerator(noise_dim=4, hidden=6)
    assert torch.equal(g.cell.bias_ih[6:12], torch.ones(6)) and g.cell.bias_ih[:6].abs().sum() == 0


def test_label_metrics_closed_forms():
    uniform = label_metrics(torch.arange(10).repeat(5))
    assert math.isclose(uniform["label_entropy"], math.log(10)) and abs(uniform["label_kl_uniform"]) < 1e-12
    assert uniform["top_label_pct"] == 10.0
    collapsed = label_metrics(torch.full((40,), 3))
    assert abs(collapsed["label_entropy"]) < 1e-12 and collapsed["label_3_pct"] == 100.0
