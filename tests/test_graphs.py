"""CUDA graphs of a training iteration (trainables/graphs.py), checked on the CPU.

No GPU here: ``graph_replay.ReplayGraph`` stands in for ``torch.cuda.CUDAGraph``. It records the aten
operations of the captured iteration and replays them on the tensors and with the numbers it recorded, so
a replayed iteration equals an eager one only if the iteration is safe to capture (fixed inputs, state in
place, no Python number that changes, no read back to the host). The reference is the same trainer run
eagerly with the same optimizers (``capturable=True``, as graphs need). On a GPU, ``bench.gpu_check``
compares real graphs with eager iterations and times them.
"""

import copy
import dataclasses
import math

import pytest
import torch
from graph_replay import GraphUnsafe, ReplayGraph

from trainables import experiments, graphs, unrolled
from trainables.errors import ConfigError
from trainables.packed import PackedTrainer, pack_parts
from trainables.trainer import GANTrainer
from trainables.trial import Trial, seed_everything

pytestmark = pytest.mark.usefixtures("capturable_adam_on_cpu")

MOG = experiments.get("mog")
SMALL = dict(batch_size=32, hidden=16, noise_dim=8)


def mog(**values):
    return MOG.config("smoke", {**SMALL, **values})


def parts_of(experiment, config):
    seed_everything(config.seed)
    return experiment.build(config, torch.device("cpu")).parts


def eager_capturable(experiment, config) -> GANTrainer:
    """The reference: eager iterations with the optimizers a graphed trainer uses."""
    trainer = GANTrainer(parts_of(experiment, config), config)
    graphs.make_capturable(trainer.parts.g_optimizer, trainer.parts.d_optimizer)
    return trainer


def graphed(experiment, config, backend=None) -> GANTrainer:
    config = dataclasses.replace(config, cuda_graphs=True)
    return GANTrainer(parts_of(experiment, config), config, graph_backend=backend or ReplayGraph())


def state_tensors(trainer: GANTrainer, watch: bool = True) -> dict[str, torch.Tensor]:
    """Every tensor an iteration changes: parameters, buffers, optimizer state, losses, divergence watch."""
    p, out = trainer.parts, {}
    for network in ("generator", "discriminator"):
        out.update({f"{network}.{k}": v for k, v in getattr(p, network).state_dict().items()})
    for name in ("g_optimizer", "d_optimizer"):
        for i, state in enumerate(getattr(p, name).state.values()):
            out.update({f"{name}.{i}.{k}": v for k, v in state.items()})
    out.update({f"loss.{k}": v for k, v in trainer.losses.items()})
    if watch:  # counted from the watch's start: a load starts it again
        out["finite_count"] = trainer._finite_count
    return out


def assert_same_state(a: GANTrainer, b: GANTrainer, watch: bool = True) -> None:
    mine, theirs = state_tensors(a, watch), state_tensors(b, watch)
    assert mine.keys() == theirs.keys()
    for name, value in mine.items():
        assert torch.equal(value, theirs[name]), name


@pytest.mark.parametrize(
    "values",
    [
        dict(unroll_steps=0),
        dict(unroll_steps=3),
        dict(unroll_steps=3, second_order=False, average_over_unroll=True),
        dict(unroll_steps=2, fresh_unroll_batches=True, generator_steps=2, shared_noise=True),
    ],
    ids=["K=0", "K=3", "stop-gradient averaged", "fresh batches, 2 G steps, shared noise"],
)
def test_replayed_iterations_equal_eager_ones_bit_for_bit(values):
    config = mog(**values)
    backend = ReplayGraph()
    reference, trainer = eager_capturable(MOG, config), graphed(MOG, config, backend)
    for _ in range(12):
        reference.train_iteration()
        trainer.train_iteration()
    assert backend.replays == 12 - graphs.WARMUP_ITERATIONS and backend.ops
    assert_same_state(trainer, reference)
    assert trainer.last_losses == reference.last_losses
    assert trainer.nonfinite_at() == [None]


def test_the_train_loop_with_draws_taken_ahead_replays_the_same_iterations():
    config = mog(unroll_steps=2)
    reference, trainer = eager_capturable(MOG, config), graphed(MOG, config)
    reference.train(20)
    trainer.train(20)
    assert_same_state(trainer, reference)


@pytest.mark.parametrize("name", [n for n in experiments.names() if n != "mog"])
def test_every_experiment_replays_as_it_runs_eagerly(name):
    # Convolutions, batch norm (its running statistics updated in place), the LSTM generator; a new
    # experiment is checked here as soon as it is registered.
    experiment = experiments.get(name)
    config = experiment.config("smoke", {"unroll_steps": 2, "batch_size": 8})
    reference, trainer = eager_capturable(experiment, config), graphed(experiment, config)
    for _ in range(graphs.WARMUP_ITERATIONS + 2):
        reference.train_iteration()
        trainer.train_iteration()
    assert_same_state(trainer, reference)


def test_packed_seeds_replay_as_they_run_eagerly():
    def packed(cuda_graphs: bool) -> PackedTrainer:
        cfg = mog(unroll_steps=2, cuda_graphs=cuda_graphs)
        parts, losses = pack_parts([parts_of(MOG, dataclasses.replace(cfg, seed=s)) for s in (0, 1)], cfg, "cpu")
        if cuda_graphs:
            return PackedTrainer(parts, losses, cfg, [0, 1], graph_backend=ReplayGraph())
        graphs.make_capturable(parts.g_optimizer, parts.d_optimizer)
        return PackedTrainer(parts, losses, cfg, [0, 1])

    reference, trainer = packed(False), packed(True)
    reference.train(10)
    trainer.train(10)
    assert_same_state(trainer, reference)
    assert trainer.seed_losses == reference.seed_losses


def test_a_loaded_state_is_captured_afresh_and_continues_the_run():
    config = mog(unroll_steps=2)
    straight = graphed(MOG, config)
    straight.train(14)
    first = graphed(MOG, config)
    first.train(7)
    resumed = graphed(MOG, config, backend := ReplayGraph())
    resumed.load_state_dict(first.state_dict())
    resumed.train(7)
    # Warmed up and captured again after the load: the old graph would update the replaced optimizer state.
    assert backend.replays == 7 - graphs.WARMUP_ITERATIONS
    assert_same_state(resumed, straight, watch=False)
    assert resumed.nonfinite_at() == straight.nonfinite_at() == [None]


def test_a_state_saved_without_graphs_resumes_with_them():
    config = mog(unroll_steps=2)
    saved = GANTrainer(parts_of(MOG, config), config)
    saved.train(5)
    reference, trainer = eager_capturable(MOG, config), graphed(MOG, config)
    for t in (reference, trainer):
        t.load_state_dict(copy.deepcopy(saved.state_dict()))  # Adam's load shares tensors it need not cast
    graphs.make_capturable(reference.parts.g_optimizer, reference.parts.d_optimizer)
    assert all(g["capturable"] for g in trainer.parts.d_optimizer.param_groups)
    reference.train(6)
    trainer.train(6)
    assert_same_state(trainer, reference)


def test_divergence_is_named_at_its_exact_iteration_from_a_replayed_iteration():
    # NaN for two iterations (9 and 10), then every tensor put back in place and finite again: the first
    # non-finite iteration stays 9, which holds only if the watch keeps its state in the captured tensors.
    config = mog(unroll_steps=1)
    trainers = [eager_capturable(MOG, config), graphed(MOG, config)]
    for trainer in trainers:
        trainer.train(8)
        saved = {k: v.clone() for k, v in state_tensors(trainer, watch=False).items() if not k.startswith("loss.")}
        with torch.no_grad():
            next(trainer.parts.discriminator.parameters()).fill_(float("nan"))
        trainer.train(2)
        live = state_tensors(trainer, watch=False)
        with torch.no_grad():
            for name, value in saved.items():
                live[name].copy_(value)
        trainer.train(3)
        assert trainer.nonfinite_at() == [9]
        assert all(math.isnan(v) for v in trainer.nonfinite_losses().values())
        assert math.isfinite(trainer.last_losses["d_loss"])
    assert_same_state(*trainers)


def test_the_stand_in_refuses_host_reads_as_a_gpu_capture_does(monkeypatch):
    config = mog(unroll_steps=3)
    # The inner Adam as it was before graphs: its step count read back as a Python number.
    inner_optimizer = unrolled.inner_optimizer

    def step_read_back(optimizer, flat_d):
        inner = inner_optimizer(optimizer, flat_d)
        inner.step_count = float(inner.step_count)
        return inner

    with monkeypatch.context() as patch, pytest.raises(GraphUnsafe, match="_local_scalar_dense"):
        patch.setattr(unrolled, "inner_optimizer", step_read_back)
        graphed(MOG, config).train(graphs.WARMUP_ITERATIONS + 1)
    # A loss read back inside the iteration.
    trainer = graphed(MOG, config)
    discriminator_step = trainer.discriminator_step

    def reads_its_loss_back():
        loss = discriminator_step()
        loss.item()
        return loss

    monkeypatch.setattr(trainer, "discriminator_step", reads_its_loss_back)
    with pytest.raises(GraphUnsafe, match="_local_scalar_dense"):
        trainer.train(graphs.WARMUP_ITERATIONS + 1)


def test_a_python_number_is_frozen_at_capture_as_on_a_gpu():
    # Why Adam's step must be a tensor, and why a learning-rate schedule cannot change a captured run: the
    # replays keep the number the capture saw. (The stand-in would pass anything if it re-ran Python.)
    config = mog(unroll_steps=1)
    reference, trainer = eager_capturable(MOG, config), graphed(MOG, config)
    for step in range(8):
        if step == 5:  # after the capture
            for t in (reference, trainer):
                t.parts.g_optimizer.param_groups[0]["lr"] *= 10
        reference.train_iteration()
        trainer.train_iteration()
    assert not torch.equal(next(trainer.parts.generator.parameters()), next(reference.parts.generator.parameters()))


def test_cuda_graphs_are_refused_where_they_cannot_run():
    with pytest.raises(ConfigError, match="needs a CUDA device; this trial trains on cpu"):
        GANTrainer(parts_of(MOG, mog()), mog(cuda_graphs=True))
    with pytest.raises(ConfigError, match="historical averaging"):
        mog(cuda_graphs=True, d_ensemble_size=3)
    assert '"cuda_graphs": false' in mog().to_json()


def test_a_trial_with_cuda_graphs_reports_as_one_without_them_would_with_capturable_adam(monkeypatch):
    monkeypatch.setattr(graphs, "backend_for", lambda device: ReplayGraph())
    config = mog(unroll_steps=2, iterations=20, report_every=10, snapshot_every=10)
    graphed_reports = list(Trial(MOG, dataclasses.replace(config, cuda_graphs=True)).reports())
    reference = Trial(MOG, config)
    graphs.make_capturable(reference.trainer.parts.g_optimizer, reference.trainer.parts.d_optimizer)
    eager_reports = list(reference.reports())
    # repr: NaN (the first report's losses) equals itself there.
    assert [(r.step, repr(r.metrics)) for r in graphed_reports] == [(r.step, repr(r.metrics)) for r in eager_reports]
    assert len(graphed_reports) == 3
