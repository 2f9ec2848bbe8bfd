"""Seeds packed into one model train exactly as each seed alone (trainables/packed.py)."""

import dataclasses

import pytest
import torch
from torch import nn

from trainables import experiments
from trainables.packed import Packed, PackedTrainer, pack_parts, seed_module_state
from trainables.trainer import GANTrainer
from trainables.trial import seed_everything

SEEDS = [0, 1, 2]
SMALL = dict(batch_size=64, hidden=32, noise_dim=16)


def build(config, seed: int, dtype: torch.dtype):
    seed_everything(seed)
    parts = experiments.get("mog").build(dataclasses.replace(config, seed=seed), torch.device("cpu")).parts
    parts.generator.to(dtype)
    parts.discriminator.to(dtype)
    real, noise = parts.sample_real, parts.sample_noise
    parts.sample_real = lambda n, rng: real(n, rng).to(dtype)
    parts.sample_noise = lambda n, rng: noise(n, rng).to(dtype)
    return parts


def lone_and_packed(values: dict, dtype: torch.dtype):
    config = experiments.get("mog").config("quick", {**SMALL, **values})
    lone = [GANTrainer(build(config, s, dtype), dataclasses.replace(config, seed=s)) for s in SEEDS]
    packed_parts, losses = pack_parts([build(config, s, dtype) for s in SEEDS], config, torch.device("cpu"))
    return lone, PackedTrainer(packed_parts, losses, config, SEEDS)


def seed_view(packed: nn.Module, index: int) -> dict[str, torch.Tensor]:
    """Seed `index`'s parameters under the lone model's names."""
    return seed_module_state(packed, index)


def assert_same(lone: GANTrainer, packed: PackedTrainer, index: int, rtol: float) -> None:
    for network in ("generator", "discriminator"):
        mine = dict(getattr(lone.parts, network).named_parameters())
        theirs = seed_view(getattr(packed.parts, network), index)
        assert mine.keys() == theirs.keys()
        for name, value in mine.items():
            torch.testing.assert_close(theirs[name], value.detach(), rtol=rtol, atol=rtol * value.abs().max().item())
    for key, value in lone.last_losses.items():
        assert packed.seed_losses[index][key] == pytest.approx(value, rel=rtol, abs=rtol)


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
    lone, packed = lone_and_packed(values, torch.float64)
    for _ in range(60):
        for trainer in lone:
            trainer.train_iteration()
        packed.train_iteration()
    for index, trainer in enumerate(lone):
        assert_same(trainer, packed, index, rtol=1e-9)


def test_packed_seeds_stay_within_float32_rounding_for_hundreds_of_iterations():
    lone, packed = lone_and_packed(dict(unroll_steps=3), torch.float32)
    for step in range(300):
        for trainer in lone:
            trainer.train_iteration()
        packed.train_iteration()
        for index, trainer in enumerate(lone):
            for key, value in trainer.last_losses.items():
                assert packed.seed_losses[index][key] == pytest.approx(value, rel=1e-3), (step, index, key)


def test_one_seeds_nan_stays_in_its_own_slice():
    lone, packed = lone_and_packed(dict(unroll_steps=2), torch.float64)
    with torch.no_grad():
        packed.parts.discriminator.net.net[0].weight[1].fill_(float("nan"))
    for _ in range(3):
        for trainer in lone:
            trainer.train_iteration()
        packed.train_iteration()
    assert packed.seeds_finite() == [True, False, True]
    assert_same(lone[0], packed, 0, rtol=1e-9)
    assert_same(lone[2], packed, 2, rtol=1e-9)


def test_unsupported_layers_and_mixed_architectures_are_refused():
    with pytest.raises(TypeError, match="does not support Conv2d"):
        Packed([nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)])
    with pytest.raises(TypeError, match="one architecture"):
        Packed([nn.Linear(2, 3), nn.ReLU()])


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
        trial.trainer.parts.discriminator.net.net[0].weight[1].fill_(float("nan"))
    batches = [[(i, r.step, r.status) for i, r in batch] for batch in trial.reports()]
    assert batches[0] == [(0, 0, "running"), (1, 0, "running"), (2, 0, "running")]
    assert batches[1] == [(1, 1, "diverged")]  # losses turned NaN in the first iteration
    assert batches[2] == [(0, 10, "running"), (2, 10, "running")]
    assert batches[-1] == [(0, 40, "finished"), (2, 40, "finished")]
    assert trial.diverged_at == [None, 1, None]
    assert trial.state_dict(1)["diverged_at"] == 1
