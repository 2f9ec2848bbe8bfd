"""The hand-derived inner gradient (trainables/analytic_gradient.py) is autograd's, in float64, on every path the
unroll takes: second gradient or not, averaged unrolls, fresh unroll batches, Adam and SGD, both generator losses,
seeds packed; a trainer using it follows one using autograd to rounding and is deterministic by seed."""

import dataclasses

import pytest
import torch
from torch import nn

from tests.test_packed import build, lone_and_packed
from trainables import experiments
from trainables.analytic_gradient import LinearReluStack
from trainables.errors import ConfigError
from trainables.losses import discriminator_loss, generator_loss_minimax, generator_loss_non_saturating
from trainables.models.dcgan import DcganDiscriminator
from trainables.models.mlp import ScaledInput, mlp
from trainables.packed import Packed, SeedLosses
from trainables.trainer import GANTrainer
from trainables.unrolled import FlatDiscriminator, supports_analytic_gradient, unrolled_generator_loss

TOLERANCE = 1e-10


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def warmed(discriminator, optimizer, real, fake, steps=3):
    """A few real optimizer steps, so the inner optimizer starts from non-trivial moments."""
    for _ in range(steps):
        optimizer.zero_grad()
        discriminator_loss(discriminator(real), discriminator(fake.detach())).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def setup(optimizer="adam", sizes=(2, 16, 1), scale=4.0, seed=0):
    torch.manual_seed(seed)
    gen = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    net = mlp(list(sizes), init_gain=1.0)
    disc = ScaledInput(net, scale) if scale != 1.0 else net
    opt = (
        torch.optim.Adam(disc.parameters(), lr=0.05, betas=(0.5, 0.99))
        if optimizer == "adam"
        else torch.optim.SGD(disc.parameters(), lr=0.1, momentum=0.5)
    )
    z, real = torch.randn(12, 3), torch.randn(10, 2) * 2
    # biases away from zero: a zero-initialised bias would leave some formula untested
    with torch.no_grad():
        for p in disc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    warmed(disc, opt, real, gen(z))
    return gen, disc, opt, z, real


def surrogate_and_gradient(gen, disc, opt, z, real, analytic, **kwargs):
    gen.zero_grad(set_to_none=True)
    loss = unrolled_generator_loss(disc, opt, gen(z), real, d_loss=discriminator_loss, analytic_gradient=analytic,
                                   **kwargs)  # fmt: skip
    loss.backward()
    return loss.detach(), torch.cat([p.grad.reshape(-1) for p in gen.parameters()])


def assert_equal_paths(gen, disc, opt, z, real, **kwargs):
    assert supports_analytic_gradient(disc)
    loss_a, grad_a = surrogate_and_gradient(gen, disc, opt, z, real, analytic=False, **kwargs)
    loss_h, grad_h = surrogate_and_gradient(gen, disc, opt, z, real, analytic=True, **kwargs)
    assert grad_a.abs().max() > 1e-6  # a gradient that is there, so that equality means something
    torch.testing.assert_close(loss_h, loss_a, rtol=TOLERANCE, atol=0)
    torch.testing.assert_close(grad_h, grad_a, rtol=TOLERANCE, atol=TOLERANCE * grad_a.abs().max().item())


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("g_loss", [generator_loss_minimax, generator_loss_non_saturating], ids=["minimax", "ns"])
@pytest.mark.parametrize("unroll_steps", [1, 5])
def test_the_second_gradient_equals_autograds(optimizer, g_loss, unroll_steps):
    assert_equal_paths(*setup(optimizer), unroll_steps=unroll_steps, g_loss=g_loss)


@pytest.mark.parametrize("average", [False, True])
def test_the_stop_gradient_variants_equal_autograds(average):
    assert_equal_paths(
        *setup(), unroll_steps=4, g_loss=generator_loss_minimax, second_order=False, average_over_unroll=average
    )


def test_fresh_unroll_batches_equal_autograds():
    gen, disc, opt, z, real = setup()
    extra = [(torch.randn(10, 2), torch.randn(12, 3)) for _ in range(3)]

    def batches(k):
        return (real, gen(z)) if k == 0 else (extra[k - 1][0], gen(extra[k - 1][1]))

    # gen(z) inside `batches` at k = 0 is a second forward pass: the same samples, the same graph to G.
    assert_equal_paths(gen, disc, opt, z, real, unroll_steps=4, g_loss=generator_loss_minimax, unroll_batches=batches)


def test_the_analytic_path_takes_every_inner_gradient_by_hand(monkeypatch):
    calls = []
    original = LinearReluStack.loss_gradient
    monkeypatch.setattr(LinearReluStack, "loss_gradient", lambda *a, **k: calls.append(1) or original(*a, **k))
    surrogate_and_gradient(*setup(), analytic=True, unroll_steps=4, g_loss=generator_loss_minimax)
    assert len(calls) == 4
    surrogate_and_gradient(*setup(), analytic=False, unroll_steps=4, g_loss=generator_loss_minimax)
    assert len(calls) == 4


def test_a_deeper_stack_without_input_scale_equals_autograds():
    assert_equal_paths(*setup(sizes=(2, 12, 9, 7, 1), scale=1.0), unroll_steps=3, g_loss=generator_loss_minimax)


def test_the_inner_gradient_itself_is_autograds_and_so_is_its_derivative_in_the_samples():
    _, disc, _, _, real = setup(sizes=(2, 12, 9, 1))
    flat_d = FlatDiscriminator.of(disc)
    fake = torch.randn(12, 2, requires_grad=True)
    theta = flat_d.current().requires_grad_(True)
    pair = flat_d.pair(real, fake)
    by_hand = flat_d.loss_gradient(theta, pair, discriminator_loss, create_graph=True, analytic=True)
    by_autograd = flat_d.loss_gradient(theta, pair, discriminator_loss, create_graph=True)
    torch.testing.assert_close(by_hand, by_autograd, rtol=TOLERANCE, atol=1e-14)
    # A fixed random direction: d<v, grad>/d fake and d<v, grad>/d theta, the mixed and the pure second derivatives.
    v = torch.randn_like(by_hand)
    second_hand = torch.autograd.grad((v * by_hand).sum(), (fake, theta), retain_graph=True)
    second_auto = torch.autograd.grad((v * by_autograd).sum(), (fake, theta))
    for mine, theirs in zip(second_hand, second_auto):
        assert theirs.abs().max() > 1e-6
        torch.testing.assert_close(mine, theirs, rtol=TOLERANCE, atol=1e-14)


def test_packed_seeds_equal_autograds():
    seeds = [setup(seed=s) for s in range(3)]
    disc = Packed([s[1] for s in seeds])
    opt = torch.optim.Adam(disc.parameters(), lr=0.05, betas=(0.5, 0.99))
    real = torch.stack([s[4] for s in seeds])
    gen = Packed([s[0] for s in seeds])
    z = torch.stack([s[3] for s in seeds])
    losses = SeedLosses("minimax")
    warmed(disc, opt, real, gen(z))
    assert supports_analytic_gradient(disc)
    results = []
    for analytic in (False, True):
        gen.zero_grad(set_to_none=True)
        loss = unrolled_generator_loss(disc, opt, gen(z), real, unroll_steps=3, d_loss=losses.discriminator,
                                       g_loss=losses.generator, analytic_gradient=analytic)  # fmt: skip
        loss.backward()
        results.append(torch.cat([p.grad.reshape(-1) for p in gen.parameters()]))
    torch.testing.assert_close(results[1], results[0], rtol=TOLERANCE, atol=TOLERANCE * results[0].abs().max().item())


def test_other_architectures_are_not_taken_for_a_stack():
    bn = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    tanh = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    leaky = nn.Sequential(nn.Linear(2, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1))
    no_bias = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1, bias=False))
    for module in (bn, tanh, leaky, no_bias, DcganDiscriminator(1, (2, 4), image_size=28)):
        names = tuple(n for n, _ in module.named_parameters())
        assert LinearReluStack.of(module, names) is None, module
        assert not supports_analytic_gradient(module)
    gen, _, _, z, real = setup()
    opt = torch.optim.Adam(tanh.parameters())
    with pytest.raises(ValueError, match="Linear/ReLU"):
        unrolled_generator_loss(tanh, opt, gen(z), real, unroll_steps=1, d_loss=discriminator_loss,
                                g_loss=generator_loss_minimax, analytic_gradient=True)  # fmt: skip


def mog(values):
    return experiments.get("mog").config("smoke", {"unroll_steps": 3, **values})


def trained_generator(config, iterations=8):
    parts = build(experiments.get("mog"), config, config.seed, torch.float64)
    trainer = GANTrainer(parts, config)
    trainer.train(iterations)
    return trainer, torch.cat([p.detach().reshape(-1) for p in parts.generator.parameters()])


@pytest.mark.parametrize(
    "values", [{}, {"second_order": False, "average_over_unroll": True}, {"fresh_unroll_batches": True}],
    ids=["second gradient", "stop-gradient averaged", "fresh batches"],
)  # fmt: skip
def test_a_mog_trainer_follows_the_autograd_one_and_auto_picks_the_analytic_path(values):
    auto, by_auto = trained_generator(mog(values))
    reference, by_autograd = trained_generator(mog({**values, "inner_gradient": "autograd"}))
    assert auto.analytic_gradient and not reference.analytic_gradient
    assert not torch.equal(by_auto, trained_generator(mog({"unroll_steps": 0}))[1])  # the unroll acted
    torch.testing.assert_close(by_auto, by_autograd, rtol=TOLERANCE, atol=TOLERANCE * by_autograd.abs().max().item())
    assert torch.equal(by_auto, trained_generator(mog(values))[1])  # deterministic by seed


def test_packed_mog_seeds_follow_each_seed_alone_on_the_analytic_path():
    config = experiments.get("mog").config("quick", dict(batch_size=64, hidden=32, noise_dim=16, unroll_steps=3))
    lone, packed = lone_and_packed(config, torch.float64)
    assert packed.analytic_gradient and all(t.analytic_gradient for t in lone)
    for _ in range(5):
        for trainer in lone:
            trainer.train_iteration()
        packed.train_iteration()
    for index, trainer in enumerate(lone):
        mine = trainer.parts.generator.state_dict()
        theirs = packed.parts.generator.seed_state(index)
        for name, value in mine.items():
            torch.testing.assert_close(theirs[name], value, rtol=TOLERANCE, atol=TOLERANCE * value.abs().max().item())


def test_analytic_on_a_discriminator_it_cannot_take_is_refused_and_auto_falls_back_once(recwarn):
    torch.set_default_dtype(torch.float32)  # the MNIST experiments' data are float32; the fixture restores it
    experiment = experiments.get("stacked_mnist")
    config = experiment.config("smoke", {"unroll_steps": 1, "inner_gradient": "analytic"})
    parts = experiment.build(config, torch.device("cpu")).parts
    with pytest.raises(ConfigError, match="inner_gradient=analytic needs a Linear/ReLU discriminator"):
        GANTrainer(parts, config)
    from trainables import trainer as trainer_module

    trainer_module._FELL_BACK.discard("DcganDiscriminator")
    for _ in range(2):
        assert not GANTrainer(parts, dataclasses.replace(config, inner_gradient="auto")).analytic_gradient
    said = [w for w in recwarn if "inner_gradient=auto" in str(w.message)]
    assert len(said) == 1 and "DcganDiscriminator" in str(said[0].message)
