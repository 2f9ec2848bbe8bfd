"""The trial loop without Ray: determinism by seed, and resume-from-checkpoint equals an uninterrupted run."""

import copy
import math

import pytest
import torch

from trainables import experiments
from trainables.errors import ConfigError
from trainables.trial import Trial

MOG = experiments.get("mog")


def smoke(**values):
    return MOG.config("smoke", {"unroll_steps": 2, **values})


def run_all(trial):
    return [(r.step, r.metrics, {k: v.clone() for k, v in r.samples.items()}) for r in trial.reports()]


def same_reports(a, b):
    assert [x[0] for x in a] == [x[0] for x in b]
    for (_, ma, sa), (_, mb, sb) in zip(a, b):
        assert ma.keys() == mb.keys()
        for key in ma:
            assert ma[key] == mb[key] or (math.isnan(ma[key]) and math.isnan(mb[key])), key
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_same_numbers_and_different_seed_differs():
    first = run_all(Trial(MOG, smoke(seed=3)))
    same_reports(first, run_all(Trial(MOG, smoke(seed=3))))
    other = run_all(Trial(MOG, smoke(seed=4)))
    assert not torch.equal(first[-1][2]["model"], other[-1][2]["model"])


def test_reports_at_zero_every_report_every_and_at_the_end():
    cfg = smoke(iterations=50, report_every=20, snapshot_every=40)
    reports = run_all(Trial(MOG, cfg))
    assert [r[0] for r in reports] == [0, 20, 40, 50]
    assert [sorted(r[2]) for r in reports] == [["data", "model"], [], ["model"], ["model"]]
    assert set(reports[-1][1]) == set(MOG.metrics)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"unroll_steps": 0, "d_ensemble_size": 3, "d_ensemble_every": 7},  # historical averaging
        {"second_order": False, "average_over_unroll": True},
    ],
    ids=["unrolled", "discriminator ensemble", "stop-gradient averaged over K"],
)
def test_resume_from_a_checkpoint_replays_the_uninterrupted_run(variant):
    cfg = smoke(iterations=60, report_every=20, snapshot_every=20, **variant)
    uninterrupted = run_all(Trial(MOG, cfg))

    first = Trial(MOG, cfg)
    reports = first.reports()
    head = [next(reports) for _ in range(2)]  # steps 0 and 20
    state = copy.deepcopy(first.state_dict())
    next(reports)  # work done after the checkpoint is lost with the "crashed" process
    torch.manual_seed(12345)  # a new process starts with other global RNG state

    resumed = Trial(MOG, cfg)
    resumed.load_state_dict(state)
    tail = run_all(resumed)
    same_reports(uninterrupted, [(s, m, smp) for s, m, smp in [(r.step, r.metrics, r.samples) for r in head]] + tail)


def test_checkpoint_of_another_config_is_refused():
    state = Trial(MOG, smoke()).state_dict()
    with pytest.raises(ValueError, match="different configuration"):
        Trial(MOG, smoke(unroll_steps=0)).load_state_dict(state)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"unroll_steps": -1}, "unroll_steps"),
        ({"unroll_steps": 1.5}, "unroll_steps"),
        ({"iterations": 0}, "iterations"),
        ({"snapshot_every": 30, "report_every": 20}, "multiple"),
        ({"generator_loss": "hinge"}, "generator_loss"),
        ({"nonsense": 1}, "unknown MogConfig field"),
        ({"unroll_steps": 5, "d_ensemble_size": 4}, "replaces unrolling: use unroll_steps 0"),
        ({"d_ensemble_every": 0}, "d_ensemble_every must be a positive integer"),
        ({"average_over_unroll": True}, "set second_order=false too"),
        ({"average_over_unroll": True, "second_order": False, "unroll_steps": 0}, "it needs unroll_steps >= 1"),
    ],
)
def test_bad_config_values_are_rejected_with_a_clear_message(values, message):
    with pytest.raises(ConfigError, match=message):
        MOG.config("smoke", values)


def test_string_overrides_are_parsed_to_the_field_type():
    cfg = MOG.config("smoke", {"iterations": "12", "second_order": "false", "d_lr": "2e-4"})
    assert (cfg.iterations, cfg.second_order, cfg.d_lr) == (12, False, 2e-4)


def test_fresh_unroll_batches_change_the_trajectory_but_stay_deterministic():
    fixed = run_all(Trial(MOG, smoke(seed=5)))
    fresh = run_all(Trial(MOG, smoke(seed=5, fresh_unroll_batches=True)))
    same_reports(fresh, run_all(Trial(MOG, smoke(seed=5, fresh_unroll_batches=True))))
    assert not torch.equal(fixed[-1][2]["model"], fresh[-1][2]["model"])


def test_stop_gradient_and_several_generator_steps_run():
    for values in ({"second_order": False}, {"generator_steps": 3}):
        reports = run_all(Trial(MOG, smoke(**values)))
        assert reports[-1][0] == 40 and math.isfinite(reports[-1][1]["g_loss"])


def _tensors(tree):
    if torch.is_tensor(tree):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _tensors(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from _tensors(value)


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_a_saved_state_resumes_a_trial_on_another_device(tmp_path):
    """The GPU-resume path without a GPU: 'meta' stands in for 'cuda'. The state file loads on the CPU
    (a random-generator state moved to a device is refused by Generator.set_state), and resuming moves
    what lives beside the networks (the discriminator ensemble) onto the trial's device."""
    from trainables.layout import SweepLayout
    from trainables.trial_state import TrialStateFile

    cfg = smoke(unroll_steps=0, d_ensemble_size=3, d_ensemble_every=2, iterations=20, report_every=10)
    trial = Trial(MOG, cfg)
    reports = trial.reports()
    next(reports), next(reports)
    state_file = TrialStateFile(SweepLayout(str(tmp_path)), "seed=0,unroll_steps=0")
    state_file.save(trial.state_dict())

    state = state_file.load()
    assert {t.device.type for t in _tensors(state)} == {"cpu"}
    resumed = Trial(MOG, cfg, device="meta")
    resumed.load_state_dict(state)
    trainer = resumed.trainer
    assert trainer.iteration == 10 and len(trainer.ensemble) == 3
    assert {t.device.type for t in trainer.ensemble} == {"meta"}
    assert next(trainer.parts.discriminator.parameters()).device.type == "meta"
    assert torch.equal(trainer.rng.get_state(), trial.trainer.rng.get_state())
    # Adam keeps its step counters on the CPU (no device sync per step), its moments beside the parameters.
    adam = trainer.parts.d_optimizer.state_dict()["state"][0]
    assert adam["step"].device.type == "cpu" and adam["exp_avg"].device.type == "meta"


def test_determinism_switches_are_set_both_ways_on_every_trial():
    """A reused Ray worker keeps process-wide switches: each trial sets them from its own config."""
    Trial(MOG, smoke(deterministic=False))
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
    assert not torch.are_deterministic_algorithms_enabled()
    cfg = smoke()
    assert cfg.deterministic and '"deterministic": true' in cfg.to_json()  # recorded in config_json
    Trial(MOG, cfg)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.are_deterministic_algorithms_enabled()


def test_a_metric_the_experiment_does_not_declare_is_an_error_not_a_dropped_column():
    import dataclasses

    declared = dict(MOG.metrics)
    declared.pop("reverse_kl")
    narrower = dataclasses.replace(MOG, metrics=declared)
    with pytest.raises(
        ValueError, match=r"mog reports metrics it does not declare in Experiment.metrics: \['reverse_kl'\]"
    ):
        next(Trial(narrower, smoke()).reports())


def test_divergence_is_read_back_every_hundred_iterations_but_names_its_exact_iteration():
    trial = Trial(MOG, smoke(unroll_steps=0, iterations=300, report_every=300, snapshot_every=300))
    trainer = trial.trainer
    train, reads = trainer.train_iteration, []

    def train_and_break_d_at_150():
        if trainer.iteration == 150:  # iteration 151 is the first with a non-finite loss
            with torch.no_grad():
                next(trainer.parts.discriminator.parameters()).fill_(float("nan"))
        train()

    def counted_read():
        reads.append(trainer.iteration)
        return type(trainer).nonfinite_at(trainer)

    trainer.train_iteration, trainer.nonfinite_at = train_and_break_d_at_150, counted_read
    reports = list(trial.reports())
    assert [(r.step, r.status) for r in reports] == [(0, "running"), (151, "diverged")]
    assert math.isnan(reports[-1].metrics["d_loss"]) and math.isnan(reports[-1].metrics["modes"])
    assert reads == [100, 200] and trial.diverged_at == 151  # one host read per 100 iterations, none per iteration
    assert trial.state_dict()["diverged_at"] == 151
