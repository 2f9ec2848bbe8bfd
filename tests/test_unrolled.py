"""Numerical tests of the unrolled surrogate loss, in float64.

The reference f_K below is written from the paper's formulas alone (Metz et al. 2017, Section 2),
with none of the project's loss functions or its inner optimizer: theta_D^K comes from K real
``torch.optim`` steps on copies of the discriminator and its optimizer, and f is spelled out with
log and sigmoid. Central finite differences of it give the generator's true gradient of f_K.
"""

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


def paper_f(disc, real, fake):
    """f(theta_G, theta_D) = E_x[log D(x)] + E_z[log(1 - D(G(z)))], both terms."""
    return torch.log(torch.sigmoid(disc(real))).mean() + torch.log(1 - torch.sigmoid(disc(fake))).mean()


def paper_non_saturating(disc, real, fake):
    """-E_z[log D(G(z))]."""
    return -torch.log(torch.sigmoid(disc(fake))).mean()


def paper_unrolled_discriminator(gen, disc, opt, z, real, k):
    """theta_D^K: K steps of the real optimizer (on copies) ascending f, G's samples held fixed."""
    disc_k = copy.deepcopy(disc)
    opt_k = type(opt)(disc_k.parameters())
    opt_k.load_state_dict(copy.deepcopy(opt.state_dict()))
    fake = gen(z).detach()
    for _ in range(k):
        opt_k.zero_grad()
        (-paper_f(disc_k, real, fake)).backward()
        opt_k.step()
    return disc_k


def paper_f_k(gen, disc, opt, z, real, k, objective=paper_f):
    """The surrogate f_K(theta_G, theta_D) = objective(theta_G, theta_D^K(theta_G, theta_D)), as a value."""
    with torch.enable_grad():
        disc_k = paper_unrolled_discriminator(gen, disc, opt, z, real, k)
    with torch.no_grad():
        return objective(disc_k, real, gen(z))


def fake_term_only(discriminator, real, fake):
    """The reduced minimax loss this project once used: E_z[log(1 - D(G(z)))] alone, the real term dropped."""
    return -torch.nn.functional.softplus(discriminator(fake)).mean()


def surrogate(gen, disc, opt, z, real, k, second_order=True, g_loss=generator_loss_minimax, **kw):
    return unrolled_generator_loss(
        disc,
        opt,
        gen(z),
        real,
        unroll_steps=k,
        d_loss=discriminator_loss,
        g_loss=g_loss,
        second_order=second_order,
        **kw,
    )


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
        standard = grad_wrt(gen, g_loss(disc, real, gen(z)))
        torch.testing.assert_close(ours, standard, rtol=1e-13, atol=1e-15)


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_minimax_gradient_matches_finite_differences_of_the_papers_f_k(optimizer, k):
    gen, disc, opt, z, real = make_pair(optimizer)
    numeric = finite_difference_grad(gen, lambda: paper_f_k(gen, disc, opt, z, real, k))
    # The surrogate's value is f_K itself, not just something with the same gradient.
    torch.testing.assert_close(
        surrogate(gen, disc, opt, z, real, k).detach(), paper_f_k(gen, disc, opt, z, real, k), rtol=1e-12, atol=1e-14
    )
    analytic = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k))
    assert relative_error(analytic, numeric) < 1e-6
    # The second-order term must matter here, or the check above proves little.
    first_only = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k, second_order=False))
    assert relative_error(first_only, numeric) > 1e-3


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("k", [1, 3])
def test_non_saturating_gradient_matches_finite_differences(optimizer, k):
    gen, disc, opt, z, real = make_pair(optimizer)
    numeric = finite_difference_grad(gen, lambda: paper_f_k(gen, disc, opt, z, real, k, paper_non_saturating))
    analytic = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k, g_loss=generator_loss_non_saturating))
    assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_real_data_term_changes_the_gradient_once_unrolled(optimizer, k):
    # E_x[log D(x; theta_D^K)] depends on theta_G through theta_D^K: dropping it is a different,
    # wrong gradient (relative error 5e-2 at K=1 when the project did so).
    gen, disc, opt, z, real = make_pair(optimizer)
    numeric = finite_difference_grad(gen, lambda: paper_f_k(gen, disc, opt, z, real, k))
    reduced = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k, g_loss=fake_term_only))
    assert relative_error(reduced, numeric) > 1e-3


def test_the_real_data_term_is_constant_without_unrolling():
    gen, disc, opt, z, real = make_pair()
    full = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 0))
    reduced = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 0, g_loss=fake_term_only))
    torch.testing.assert_close(full, reduced, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_stop_gradient_is_unaffected_by_the_real_data_term(optimizer):
    # With theta_D^K held constant the real term has no path to the generator.
    gen, disc, opt, z, real = make_pair(optimizer)
    full = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 3, second_order=False))
    reduced = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 3, second_order=False, g_loss=fake_term_only))
    torch.testing.assert_close(full, reduced, rtol=1e-12, atol=1e-15)


def test_fresh_unroll_batches_are_differentiated_through():
    gen, disc, opt, z, real = make_pair("adam")
    zs = [torch.randn(6, 3) for _ in range(3)]
    reals = [torch.randn(6, 2) for _ in range(3)]

    def fresh():
        return surrogate(gen, disc, opt, z, real, 3, unroll_batches=lambda k: (reals[k], gen(zs[k])))

    analytic = grad_wrt(gen, fresh())
    numeric = finite_difference_grad(gen, fresh)
    assert relative_error(analytic, numeric) < 1e-5
    fixed = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 3))
    assert (analytic - fixed).norm() > 1e-6


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_stop_gradient_is_the_gradient_at_fixed_unrolled_parameters(optimizer):
    k = 3
    gen, disc, opt, z, real = make_pair(optimizer)
    stop = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k, second_order=False))
    # Independent route: K real optimizer steps on copies, then the plain gradient at those fixed parameters.
    disc_k = paper_unrolled_discriminator(gen, disc, opt, z, real, k)
    reference = grad_wrt(gen, paper_f(disc_k, real, gen(z)))
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
    theirs = grad_wrt(gen, -discriminator_loss(fmodel(real), fmodel(fake)))
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


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_batch_norm_discriminator_gradient_matches_finite_differences(optimizer):
    # With batch norm the real and fake batches go through D separately, as D itself trains.
    gen, disc, opt, z, real = make_pair(optimizer, batchnorm=True)
    numeric = finite_difference_grad(gen, lambda: paper_f_k(gen, disc, opt, z, real, 2))
    analytic = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 2))
    assert relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("capturable", [False, True], ids=["host-step", "capturable"])
def test_inner_adam_reproduces_torch_adam_bit_for_bit_in_float32(capturable, request):
    from trainables.unrolled import FlatDiscriminator, inner_optimizer

    if capturable:
        request.getfixturevalue("capturable_adam_on_cpu")
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    disc = nn.Linear(64, 16)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999), capturable=capturable)
    x = torch.randn(32, 64)

    def loss_at(module_or_flat, flat_d=None):
        out = module_or_flat(x) if flat_d is None else flat_d(module_or_flat, x)
        return torch.nn.functional.softplus(out).mean()

    for _ in range(3):  # moments of a run under way
        opt.zero_grad()
        loss_at(disc).backward()
        opt.step()
    flat_d = FlatDiscriminator.of(disc)
    inner, theta = inner_optimizer(opt, flat_d), flat_d.current()
    for _ in range(5):
        theta = theta.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_at(theta, flat_d), theta)
        theta = inner.step(theta.detach(), grad)
        opt.zero_grad()
        loss_at(disc).backward()
        opt.step()
        assert torch.equal(theta, flat_d.current())
    # The capturable path carries Adam's step as a tensor and leaves the real one where it was.
    assert isinstance(inner.step_count, torch.Tensor) == capturable
    assert float(opt.state[disc.weight]["step"]) == 8


@pytest.mark.parametrize("second_order", [True, False])
def test_a_capturable_adam_gives_the_papers_f_k_and_its_gradient(second_order, capturable_adam_on_cpu):
    # Capturable Adam (step count a tensor, as CUDA graphs need) rounds differently from the default, but it is
    # the same optimizer: f_K, its gradient and the stop-gradient variant agree with the default path to 1e-12.
    gen, disc, opt, z, real = make_pair()
    graphed = torch.optim.Adam(disc.parameters(), lr=0.05, betas=(0.5, 0.999), capturable=True)
    graphed.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert isinstance(graphed.state[disc[0].weight]["step"], torch.Tensor) and graphed.defaults["capturable"]
    default = surrogate(gen, disc, opt, z, real, 3, second_order=second_order)
    capturable = surrogate(gen, disc, graphed, z, real, 3, second_order=second_order)
    torch.testing.assert_close(capturable, default, rtol=1e-12, atol=0)
    gradient = grad_wrt(gen, capturable)
    torch.testing.assert_close(gradient, grad_wrt(gen, default), rtol=1e-10, atol=1e-14)
    if second_order:
        numeric = finite_difference_grad(gen, lambda: paper_f_k(gen, disc, opt, z, real, 3))
        assert relative_error(gradient, numeric) < 1e-6


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_stop_gradient_averaged_over_the_unroll_is_the_mean_gradient_at_each_unrolled_discriminator(optimizer):
    # Appendix B's third variant: (1/K) sum_k grad_G f(theta_G, theta_D^k), each theta_D^k held fixed.
    k = 3
    gen, disc, opt, z, real = make_pair(optimizer)
    averaged = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k, second_order=False, average_over_unroll=True))
    reference = torch.stack([
        grad_wrt(gen, paper_f(paper_unrolled_discriminator(gen, disc, opt, z, real, j), real, gen(z)))
        for j in range(1, k + 1)
    ]).mean(dim=0)  # fmt: skip
    torch.testing.assert_close(averaged, reference, rtol=1e-10, atol=1e-13)
    last_only = grad_wrt(gen, surrogate(gen, disc, opt, z, real, k, second_order=False))
    assert relative_error(averaged, last_only) > 1e-3  # it is a different variant, not a relabelling


def test_averaging_over_the_unroll_needs_the_stop_gradient_variant():
    gen, disc, opt, z, real = make_pair()
    with pytest.raises(ValueError, match="average_over_unroll needs second_order=False"):
        surrogate(gen, disc, opt, z, real, 3, second_order=True, average_over_unroll=True)


def test_ensemble_loss_gradient_matches_finite_differences_of_the_mean_over_discriminators():
    # Historical averaging (Appendix B): the mean of f over past discriminators, each a constant.
    from trainables.unrolled import FlatDiscriminator, ensemble_generator_loss

    gen, disc, opt, z, real = make_pair("adam", warm_steps=0)
    flat_d, members, copies = FlatDiscriminator.of(disc), [], []
    for _ in range(3):  # three past discriminators, one optimizer step apart
        opt.zero_grad()
        discriminator_loss(disc(real), disc(gen(z).detach())).backward()
        opt.step()
        members.append(flat_d.current().clone())
        copies.append(copy.deepcopy(disc))

    def paper_mean():
        with torch.no_grad():
            return torch.stack([paper_f(d, real, gen(z)) for d in copies]).mean()

    numeric = finite_difference_grad(gen, paper_mean)
    analytic = grad_wrt(gen, ensemble_generator_loss(disc, members, gen(z), real, g_loss=generator_loss_minimax))
    assert relative_error(analytic, numeric) < 1e-6
    latest_only = grad_wrt(
        gen, ensemble_generator_loss(disc, members[-1:], gen(z), real, g_loss=generator_loss_minimax)
    )
    assert relative_error(latest_only, numeric) > 1e-3


@pytest.mark.parametrize("batchnorm_first", [False, True])
def test_the_stacked_mnist_discriminator_with_2d_batch_norm_gradient_matches_finite_differences(batchnorm_first):
    """The conv discriminator the MNIST experiments train (BatchNorm2d, leaky ReLU), at 8x8, with the
    non-saturating loss they use: unrolled K = 5 there collapses to grey samples, so its gradient is checked
    through the very layers it differentiates."""
    from trainables.models.dcgan import DcganDiscriminator

    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(3, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
    disc = DcganDiscriminator(3, (2, 4), image_size=8, weight_init="dcgan", batchnorm_first=batchnorm_first)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.999))
    z, real = torch.randn(6, 3), torch.rand(6, 3, 8, 8) * 2 - 1
    for _ in range(3):
        opt.zero_grad()
        discriminator_loss(disc(real), disc(gen(z).detach())).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    numeric = finite_difference_grad(gen, lambda: paper_f_k(gen, disc, opt, z, real, 3, paper_non_saturating))
    analytic = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 3, g_loss=generator_loss_non_saturating))
    assert relative_error(analytic, numeric) < 1e-6
    # The second term is really there: the stop-gradient variant's gradient is another one.
    first_only = grad_wrt(gen, surrogate(gen, disc, opt, z, real, 3, False, g_loss=generator_loss_non_saturating))
    assert relative_error(first_only, numeric) > 1e-3
