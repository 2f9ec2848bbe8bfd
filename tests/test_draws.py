"""Draws taken ahead in blocks give the numbers of drawing each batch where it is used (trainables/draws.py)."""

import dataclasses

import pytest
import torch

from trainables import experiments
from trainables import trainer as trainer_module
from trainables.draws import Sampler, stacked, to_device
from trainables.packed import SeedGenerators
from trainables.trainer import GANTrainer
from trainables.trial import seed_everything


class DrawAtUse(GANTrainer):
    """The reference: every batch drawn from the stream at the moment a step uses it, one at a time."""

    def draw_ahead(self, iterations):
        self._draws_per_iteration = 0  # nothing is taken ahead, so an iteration takes nothing from the queue
        return iterations

    def _batch(self, sampler):
        return sampler(self.config.batch_size, self.rng)


def trainer(name: str, values: dict, kind=GANTrainer):
    experiment = experiments.get(name)
    config = experiment.config("smoke", values)
    seed_everything(config.seed)
    return kind(experiment.build(config, torch.device("cpu")).parts, config)


def fingerprint(t: GANTrainer) -> list[torch.Tensor]:
    p = t.parts
    return [*p.generator.state_dict().values(), *p.discriminator.state_dict().values(), t.rng.get_state()]


def assert_identical(a: GANTrainer, b: GANTrainer) -> None:
    for x, y in zip(fingerprint(a), fingerprint(b), strict=True):
        assert torch.equal(x, y)
    assert a.last_losses == b.last_losses


VARIANTS = [
    dict(unroll_steps=0),
    dict(unroll_steps=3),
    dict(unroll_steps=3, fresh_unroll_batches=True),
    dict(unroll_steps=2, shared_noise=True, generator_steps=3),
    dict(unroll_steps=2, fresh_unroll_batches=True, second_order=False, average_over_unroll=True),
    dict(unroll_steps=0, d_ensemble_size=3, d_ensemble_every=2, generator_steps=2),
]


@pytest.mark.parametrize("values", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_a_block_of_draws_taken_ahead_equals_drawing_each_batch_where_it_is_used(values):
    ahead, at_use = trainer("mog", values), trainer("mog", values, DrawAtUse)
    ahead.train(9)
    for _ in range(9):
        at_use.train_iteration()
    assert_identical(ahead, at_use)


@pytest.mark.parametrize("name", ["stacked_mnist", "color_mnist", "rnn_mnist", "image"])
def test_image_experiments_draw_indices_ahead_and_gather_on_the_device_to_the_same_batches(name):
    values = dict(unroll_steps=2, fresh_unroll_batches=True)
    ahead, at_use = trainer(name, values), trainer(name, values, DrawAtUse)
    ahead.train(4)
    for _ in range(4):
        at_use.train_iteration()
    assert_identical(ahead, at_use)


def test_the_block_is_cut_at_the_byte_budget_and_the_numbers_do_not_change(monkeypatch):
    values = dict(unroll_steps=2)
    assert trainer("mog", values).draw_ahead(6) == 6
    whole = trainer("mog", values)
    whole.train(6)
    monkeypatch.setattr(trainer_module, "DRAW_AHEAD_BYTES", 1)
    assert trainer("mog", values).draw_ahead(6) == 1  # one iteration at least, whatever the budget
    cut = trainer("mog", values)
    cut.train(6)  # six blocks of one iteration
    assert_identical(whole, cut)


def test_a_step_that_draws_out_of_the_declared_order_is_an_error(monkeypatch):
    t = trainer("mog", dict(unroll_steps=2, fresh_unroll_batches=True))
    short = t.draw_order()[:-2]  # as if draw_order forgot the last unrolled step's fresh batch
    monkeypatch.setattr(t, "draw_order", lambda: short)
    with pytest.raises(RuntimeError, match="draw_order"):
        t.train(2)


def test_a_trainer_with_draws_pending_cannot_be_saved():
    t = trainer("mog", dict(unroll_steps=0))
    t.draw_ahead(3)
    with pytest.raises(RuntimeError, match="ahead"):
        t.state_dict()
    t.train_iteration(), t.train_iteration(), t.train_iteration()
    assert t.state_dict()["iteration"] == 3


def test_to_device_cuts_one_flat_transfer_per_dtype_back_into_the_draws():
    g = torch.Generator().manual_seed(0)
    draws = [
        torch.randn(4, 3, generator=g),
        (torch.randint(10, (4, 3), generator=g), torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64)),
        ((torch.randn(2, generator=g), torch.randint(5, (2,), generator=g, dtype=torch.int32)),),
    ]
    moved = to_device(draws, torch.device("cpu"), always_flat=True)
    flat_in = torch.utils._pytree.tree_flatten(draws)
    flat_out = torch.utils._pytree.tree_flatten(moved)
    assert flat_in[1] == flat_out[1]
    for a, b in zip(flat_in[0], flat_out[0], strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        assert b.data_ptr() != a.data_ptr()  # a copy, cut from one buffer per dtype
    assert to_device(draws, torch.device("cpu")) is draws  # on the CPU, nothing to move


def test_packed_seeds_each_draw_from_their_own_stream_in_a_lone_runs_order():
    def draw(n, rng):
        return torch.randn(n, 2, generator=rng)

    lone = Sampler(draw, torch.device("cpu"), lambda d: d * 2)
    both = stacked([lone, dataclasses.replace(lone)])
    rngs = SeedGenerators([3, 4])
    first, second = both(5, rngs), both(5, rngs)
    for seed, index in ((3, 0), (4, 1)):
        alone = torch.Generator().manual_seed(seed)
        assert torch.equal(first[index], lone(5, alone)) and torch.equal(second[index], lone(5, alone))
