"""Numerical tests of the unrolled surrogate loss, in float64."""
import copy

import higher
import pytest
import torch
from torch import nn

from trainables.losses import discriminator_loss, generator_loss_minimax, generator_loss_non_saturating
from trainables.unrolled import unrolled_generator_loss



@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def make_pair(optimizer="adam", seed=0, eps=1e-8, warm_steps=3, batchnorm=False):
    """A tiny smooth (tanh) generator/discriminator pair, D optimizer warmed up so its moments are non-trivial."""
    torch.manual_seed(seed)
    gen = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    layers = [nn.Linear(2, 5)] + ([nn.BatchNorm1d(5)] if batchnorm else []) + [nn.Tanh(), nn.Linear(5, 1)]
    disc = nn.Sequential(*layers)
    if optimizer == "adam":
        opt = torch.optim.Adam(disc.parameters(), lr=0.05, betas=(0.5, 0.999), eps=eps)
    else:
        opt = torch.optim.SGD(disc.parameters(), lr=0.1)
    z = torch.randn(6, 3)
    real = torch.randn(6, 2) + 1.0
    for _ in range(warm_steps):
        opt.zero_grad()
        discriminator_loss(disc(real), disc(gen(z).detach())).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return gen, disc, opt, z, real


def surrogate(gen, disc, opt, z, real, k, second_order=True, g_loss=generator_loss_minimax, **kw):
    return unrolled_generator_loss(disc, opt, gen(z), real, unroll_steps=k, d_loss=discriminator_loss,
                                   g_loss=g_loss, second_order=second_order, **kw)


def grad_wrt(gen, loss):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(gen.parameters()))])


def finite_difference_grad(gen, fn, h=1e-6):
    params = list(gen.parameters())
    out = []
    for p in params:
        flat = p.data.view(-1)  # .data: the perturbation itself must not enter any graph
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + h
            up = fn().item()
            flat[i] = old - h
            down = fn().item()
            flat[i] = old
            out.append((up - down) / (2 * h))
    return torch.tensor(out)


def test_zero_steps_is_the_standard_gan_generator_gradient():
    gen, disc, opt, z, real = make_pair()
    for g_loss in (generator_loss_minimax, generator_loss_non_saturating):
        ours = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 0, g_loss=g_loss))
        standard = grad_wrt(gen, g_loss(disc(gen(z))))
        torch.testing.assert_close(ours, standard, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_gradient_matches_central_finite_differences(optimizer, k):
    gen, disc, opt, z, real = make_pair(optimizer)
    analytic = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k))
    numeric = finite_difference_grad(gen, lambda: surrogate(gen, disc, opt, z, real, k))
    rel = (analytic - numeric).norm() / numeric.norm()
    assert rel < 1e-5, rel
    # The second-order term must matter here, or the check above proves little.
    first_only = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k, second_order=False))
    assert (first_only - numeric).norm() / numeric.norm() > 1e-3


def test_fresh_unroll_batches_are_differentiated_through():
    gen, disc, opt, z, real = make_pair("adam")
    zs = [torch.randn(6, 3) for _ in range(3)]
    reals = [torch.randn(6, 2) for _ in range(3)]

    def fresh():
        return surrogate(gen, disc, opt, z, real, 3, unroll_batches=lambda k: (reals[k], gen(zs[k])))

    analytic = grad_wrt(gen, fresh())
    numeric = finite_difference_grad(gen, fresh)
    assert (analytic - numeric).norm() / numeric.norm() < 1e-5
    fixed = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 3))
    assert (analytic - fixed).norm() > 1e-6


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_stop_gradient_is_the_gradient_at_fixed_unrolled_parameters(optimizer):
    k = 3
    gen, disc, opt, z, real = make_pair(optimizer)
    stop = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k, second_order=False))
    # Independent route: K real optimizer steps on copies, then the plain gradient at those fixed parameters.
    disc_k = copy.deepcopy(disc)
    opt_k = type(opt)(disc_k.parameters())
    opt_k.load_state_dict(copy.deepcopy(opt.state_dict()))
    fake = gen(z).detach()
    for _ in range(k):
        opt_k.zero_grad()
        discriminator_loss(disc_k(real), disc_k(fake)).backward()
        opt_k.step()
    reference = grad_wrt(gen, generator_loss_minimax(disc_k(gen(z))))
    torch.testing.assert_close(stop, reference, rtol=1e-10, atol=1e-13)
    full = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k))
    assert (full - stop).norm() / full.norm() > 1e-3


def snapshot(disc, opt):
    tensors = [t.detach().clone() for t in list(disc.parameters()) + list(disc.buffers())]
    grads = [None if p.grad is None else p.grad.clone() for p in disc.parameters()]
    state = copy.deepcopy(opt.state_dict())
    return tensors, grads, state


def assert_same(a, b):
    (ta, ga, sa), (tb, gb, sb) = a, b
    assert all(torch.equal(x, y) for x, y in zip(ta, tb))
    assert [g is None for g in ga] == [g is None for g in gb]
    assert sa["param_groups"] == sb["param_groups"]
    for key, st in sa["state"].items():
        for name, value in st.items():
            assert torch.equal(value, sb["state"][key][name]), name


@pytest.mark.parametrize("batchnorm", [False, True])
def test_real_discriminator_and_its_adam_state_are_untouched(batchnorm):
    gen, disc, opt, z, real = make_pair("adam", batchnorm=batchnorm)
    before = snapshot(disc, opt)
    loss = surrogate(gen, disc, opt, z, real, 3)
    loss.backward()
    assert_same(before, snapshot(disc, opt))
    assert all(p.grad is None for p in disc.parameters())


def test_matches_the_higher_library():
    # higher adds eps before dividing by sqrt(bias_correction2), torch.optim.Adam after; with a tiny
    # eps the two formulas coincide to float64 precision, so the comparison is about the graph.
    k = 3
    gen, disc, opt, z, real = make_pair("adam", eps=1e-14)
    ours = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k))

    fake = gen(z)
    fmodel = higher.patch.monkeypatch(disc, copy_initial_weights=True, track_higher_grads=True)
    diffopt = higher.optim.get_diff_optim(opt, disc.parameters(), fmodel=fmodel, track_higher_grads=True)
    for _ in range(k):
        diffopt.step(discriminator_loss(fmodel(real), fmodel(fake)))
    theirs = grad_wrt(gen, generator_loss_minimax(fmodel(fake)))
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


def test_zero_second_moment_gives_a_finite_gradient():
    # A discriminator unit that never receives gradient has Adam second moment exactly 0,
    # where a naive differentiable sqrt turns the generator gradient into NaN.
    gen, disc, opt, z, real = make_pair("adam")
    disc.register_parameter("unused", nn.Parameter(torch.zeros(3)))
    opt = torch.optim.Adam(disc.parameters(), lr=0.05, betas=(0.5, 0.999))
    opt.zero_grad()
    discriminator_loss(disc(real), disc(gen(z).detach())).backward()
    opt.step()
    grad = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 2))
    assert torch.isfinite(grad).all()
    numeric = finite_difference_grad(gen, lambda: surrogate(gen, disc, opt, z, real, 2))
    assert (grad - numeric).norm() / numeric.norm() < 1e-5


def test_negative_unroll_steps_rejected():
    gen, disc, opt, z, real = make_pair()
    with pytest.raises(ValueError, match="unroll_steps"):
        surrogate(gen, disc, opt, z, real, -1)
