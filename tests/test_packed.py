"""Seeds packed into one model train exactly as each seed alone (trainables/packed.py)."""

import dataclasses

import pytest
import torch
from torch import nn

from trainables import experiments
from trainables.packed import Packed, PackedTrainer, pack_parts
from trainables.trainer import GANTrainer
from trainables.trial import seed_everything

SEEDS = [0, 1, 2]
SMALL = dict(batch_size=64, hidden=32, noise_dim=16)


def build(experiment, config, seed: int, dtype: torch.dtype):
    seed_everything(seed)
    parts = experiment.build(dataclasses.replace(config, seed=seed), torch.device("cpu")).parts
    parts.generator.to(dtype)
    parts.discriminator.to(dtype)
    real, noise = parts.sample_real, parts.sample_noise
    parts.sample_real = lambda n, rng: real(n, rng).to(dtype)
    parts.sample_noise = lambda n, rng: noise(n, rng).to(dtype)
    return parts


def lone_and_packed(config, dtype: torch.dtype, name: str = "mog", seeds=SEEDS):
    experiment = experiments.get(name)
    lone = [GANTrainer(build(experiment, config, s, dtype), dataclasses.replace(config, seed=s)) for s in seeds]
    packed_parts, losses = pack_parts([build(experiment, config, s, dtype) for s in seeds], config, torch.device("cpu"))
    return lone, PackedTrainer(packed_parts, losses, config, seeds)


def mog_config(values: dict):
    return experiments.get("mog").config("quick", {**SMALL, **values})


def assert_same(lone: GANTrainer, packed: PackedTrainer, index: int, rtol: float, atol: float = 0.0) -> None:
    """Seed `index` of the packed trainer has the lone trainer's parameters, buffers and losses.

    `atol` is for tensors that are float noise around zero: a bias followed by batch norm has an exact
    gradient of zero, so Adam walks it on rounding alone (to about 5e-9 in 200 iterations, differently in
    each run; batch norm's running mean after it inherits that), which no relative bound fits."""
    for network in ("generator", "discriminator"):
        mine = getattr(lone.parts, network).state_dict()
        theirs = getattr(packed.parts, network).seed_state(index)
        assert mine.keys() == theirs.keys()
        for name, value in mine.items():
            scale = value.abs().max().item() if value.is_floating_point() else 0
            torch.testing.assert_close(theirs[name], value, rtol=rtol, atol=max(atol, rtol * scale), msg=name)
    for key, value in lone.last_losses.items():
        assert packed.seed_losses[index][key] == pytest.approx(value, rel=rtol, abs=rtol)


def train_both(lone, packed, iterations: int) -> None:
    for _ in range(iterations):
        for trainer in lone:
            trainer.train_iteration()
        packed.train_iteration()


@pytest.mark.parametrize(
    "values",
    [
        dict(unroll_steps=3),
        dict(unroll_steps=3, second_order=False, average_over_unroll=True),
        dict(unroll_steps=0, d_ensemble_size=3, d_ensemble_every=2),
        dict(unroll_steps=2, generator_steps=2, generator_loss="non_saturating"),
    ],
    ids=["unrolled", "stop-gradient averaged over K", "discriminator ensemble", "two G steps, non-saturating"],
)
def test_packed_seeds_follow_each_seed_alone_in_float64(values):
    lone, packed = lone_and_packed(mog_config(values), torch.float64)
    train_both(lone, packed, 60)
    for index, trainer in enumerate(lone):
        assert_same(trainer, packed, index, rtol=1e-9)


# The conv and LSTM experiments: batch norm (per-seed statistics and running buffers), convolutions,
# transposed convolutions and the LSTM cell, all under vmap, through K = 2 unrolled steps. 30 iterations in the
# default suite (every path, Adam's state and the buffers past their first updates); 200, where drift would
# show, in the slow one (together about 7 minutes on 2 cores).
PACKED_EXPERIMENTS = ("color_mnist", "image", "rnn_mnist", "stacked_mnist")


@pytest.mark.parametrize(
    "name, iterations",
    [(name, 30) for name in PACKED_EXPERIMENTS]
    + [pytest.param(name, 200, marks=pytest.mark.slow) for name in PACKED_EXPERIMENTS],
)
def test_every_experiments_models_pack_and_follow_each_seed_alone_in_float64(name, iterations):
    config = experiments.get(name).config("smoke", {"unroll_steps": 2, "iterations": iterations})
    lone, packed = lone_and_packed(config, torch.float64, name, seeds=[0, 1])
    train_both(lone, packed, iterations)
    for index, trainer in enumerate(lone):
        assert_same(trainer, packed, index, rtol=1e-7, atol=5e-8)


def test_packed_seeds_stay_within_float32_rounding_for_hundreds_of_iterations():
    lone, packed = lone_and_packed(mog_config(dict(unroll_steps=3)), torch.float32)
    for step in range(300):
        for trainer in lone:
            trainer.train_iteration()
        packed.train_iteration()
        for index, trainer in enumerate(lone):
            for key, value in trainer.last_losses.items():
                assert packed.seed_losses[index][key] == pytest.approx(value, rel=1e-3), (step, index, key)


def test_one_seeds_nan_stays_in_its_own_slice():
    lone, packed = lone_and_packed(mog_config(dict(unroll_steps=2)), torch.float64)
    with torch.no_grad():
        packed.parts.discriminator.net__0__weight[1].fill_(float("nan"))
    train_both(lone, packed, 3)
    assert packed.seeds_finite() == [True, False, True]
    assert_same(lone[0], packed, 0, rtol=1e-9)
    assert_same(lone[2], packed, 2, rtol=1e-9)


def test_mixed_architectures_are_refused():
    with pytest.raises(TypeError, match="one architecture"):
        Packed([nn.Linear(2, 3), nn.ReLU()])
    with pytest.raises(TypeError, match="one architecture"):
        Packed([nn.Linear(2, 3), nn.Linear(2, 4)])


def test_a_packed_module_is_the_lone_modules_side_by_side():
    torch.manual_seed(0)
    lone = [nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU()).double() for _ in range(3)]
    packed = Packed(lone)
    x = torch.randn(3, 5, 2, 6, 6, dtype=torch.float64)
    out = packed(x)
    for s, module in enumerate(lone):
        torch.testing.assert_close(out[s], module(x[s]))  # training mode: each seed's own batch statistics
        state = packed.seed_state(s)
        assert state.keys() == module.state_dict().keys()
        for name, value in module.state_dict().items():  # the running statistics moved as each seed's own
            torch.testing.assert_close(state[name], value)
    packed.eval()
    for module in lone:
        module.eval()
    torch.testing.assert_close(packed(x)[1], lone[1](x[1]))
    assert list(packed.parameters())[0].shape == (3, 3, 2, 3, 3)


def trial_configs(values: dict):
    experiment = experiments.get("mog")
    base = {**SMALL, "iterations": 40, "report_every": 10, "snapshot_every": 20, "eval_samples": 256, **values}
    return experiment, [experiment.config("quick", {**base, "seed": s}) for s in SEEDS]


def test_a_packed_trial_reports_each_seed_as_its_own_trial():
    from trainables.trial import PackedTrial, Trial

    experiment, configs = trial_configs(dict(unroll_steps=2))
    packed = [dict(r) for r in PackedTrial(experiment, configs).reports()]  # each: {seed index: report}
    for index, config in enumerate(configs):
        alone = list(Trial(experiment, config).reports())
        assert [r.step for r in alone] == [step[index].step for step in packed] == [0, 10, 20, 30, 40]
        for mine, theirs in zip(alone, (step[index] for step in packed)):
            assert mine.status == theirs.status and mine.samples.keys() == theirs.samples.keys()
            for key, value in mine.metrics.items():
                assert theirs.metrics[key] == pytest.approx(value, rel=1e-3, abs=1e-3, nan_ok=True), (key, mine.step)


def test_a_packed_seed_resumes_packed_or_alone_from_its_saved_state():
    from trainables.trial import PackedTrial, Trial

    experiment, configs = trial_configs(dict(unroll_steps=2, d_ensemble_size=1))
    first = PackedTrial(experiment, configs)
    reports = first.reports()
    for _ in range(3):  # steps 0, 10, 20
        next(reports)
    states = [first.state_dict(i) for i in range(len(configs))]
    rest = [dict(r) for r in reports]

    resumed = PackedTrial(experiment, configs)
    assert resumed.load_state_dicts(states)
    again = [dict(r) for r in resumed.reports()]
    assert [sorted(r) for r in again] == [sorted(r) for r in rest]
    for mine, theirs in zip(rest, again):
        for index in mine:
            assert mine[index].metrics == pytest.approx(theirs[index].metrics, nan_ok=True)

    alone = Trial(experiment, configs[1])
    alone.load_state_dict(states[1])
    for mine, theirs in zip((r[1] for r in rest), alone.reports()):
        assert mine.step == theirs.step
        assert theirs.metrics["g_loss"] == pytest.approx(mine.metrics["g_loss"], rel=1e-4)

    incomplete = PackedTrial(experiment, configs)
    assert not incomplete.load_state_dicts([states[0], None, states[2]])
    assert incomplete.trainer.iteration == 0


def test_a_diverging_seed_ends_alone_and_the_others_report_on_schedule():
    from trainables.trial import PackedTrial

    experiment, configs = trial_configs(dict(unroll_steps=2))
    trial = PackedTrial(experiment, configs)
    with torch.no_grad():
        trial.trainer.parts.discriminator.net__0__weight[1].fill_(float("nan"))
    batches = [[(i, r.step, r.status) for i, r in batch] for batch in trial.reports()]
    assert batches[0] == [(0, 0, "running"), (1, 0, "running"), (2, 0, "running")]
    assert batches[1] == [(1, 1, "diverged")]  # losses turned NaN in the first iteration
    assert batches[2] == [(0, 10, "running"), (2, 10, "running")]
    assert batches[-1] == [(0, 40, "finished"), (2, 40, "finished")]
    assert trial.diverged_at == [None, 1, None]
    assert trial.state_dict(1)["diverged_at"] == 1
