"""The image model's pieces: CIFAR-10 batches, inference via optimisation, pairwise distances."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from trainables.data.cifar10 import load_cifar10
from trainables.errors import ConfigError, DatasetError
from trainables.experiments import get
from trainables.metrics.inference import batched_lbfgs, invert_generator, pairwise_distances

rng = np.random.default_rng(0)


def write_cifar(root, per_batch=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        batches[name] = (data, labels)
    return folder, batches


def test_cifar_batches_load_in_channel_row_order(tmp_path):
    folder, batches = write_cifar(tmp_path)
    images, labels = load_cifar10(tmp_path, "train")
    assert images.shape == (20, 3, 32, 32) and images.dtype == np.uint8
    first = batches["data_batch_1"][0][0]
    assert np.array_equal(images[0, 0].ravel(), first[:1024])  # red plane first
    assert np.array_equal(images[0, 2, 31], first[3072 - 32 :])  # last row of blue
    assert labels.tolist()[:4] == batches["data_batch_1"][1]
    test_images, _ = load_cifar10(folder, "test")  # the batches folder itself works too
    assert len(test_images) == 4


def test_cifar_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="CIFAR-10 folder not found"):
        load_cifar10(tmp_path / "nope")
    folder, _ = write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing CIFAR-10 file: .*data_batch_3"):
        load_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetError, match="malformed CIFAR-10 batch .*data_batch_3"):
        load_cifar10(tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DatasetError, match=r"expected \[n, 3072\]"):
        load_cifar10(tmp_path)


def test_inference_recovers_the_latent_of_a_linear_generator():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(3 * 8 * 8, 16, generator=g, dtype=torch.float64) / 4
    bias = torch.randn(3 * 8 * 8, generator=g, dtype=torch.float64)

    def generator(z):
        return (z @ weight.T + bias).view(-1, 3, 8, 8)

    z_true = torch.randn(10, 16, generator=g, dtype=torch.float64)
    z, reconstruction, error = invert_generator(generator, generator(z_true), 16, starts=2, rng=g)
    assert ((z - z_true) ** 2).mean() < 1e-4
    assert error.max() < 1e-12 and torch.allclose(reconstruction, generator(z_true))


def test_inference_keeps_the_best_start_per_image_and_leaves_the_generator_alone():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 12), torch.nn.Tanh(), torch.nn.Linear(12, 12))
    targets = torch.randn(5, 12)
    _, _, one = invert_generator(net, targets, 4, starts=1, rng=torch.Generator().manual_seed(1), max_iterations=5)
    _, _, three = invert_generator(net, targets, 4, starts=3, rng=torch.Generator().manual_seed(1), max_iterations=5)
    assert torch.all(three <= one + 1e-7)  # the first start is shared, and more starts can only help
    assert all(p.grad is None for p in net.parameters())


def _two_scale_problem():
    """Two images whose objectives differ in curvature by 10^4: a shared step length cannot suit both."""
    g = torch.Generator().manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 12)).double()
    scale = torch.tensor([[1.0], [100.0]], dtype=torch.float64)

    def generator(z):  # row-wise: image 1 is image 0's network with its output scaled 100x
        return net(z) * scale[: len(z)] if len(z) == 2 else net(z)

    targets = (net(torch.randn(2, 4, generator=g, dtype=torch.float64)) * scale).detach()
    z0 = torch.randn(2, 4, generator=g, dtype=torch.float64)
    return net, generator, targets, z0, scale


def test_each_image_is_optimised_as_if_alone():
    net, generator, targets, z0, scale = _two_scale_problem()
    objective = lambda z: (generator(z) - targets).pow(2).sum(dim=1)  # noqa: E731
    batched = batched_lbfgs(objective, z0, max_iterations=8)
    for i in range(2):

        def alone_objective(z, i=i):
            return (net(z) * scale[i] - targets[i]).pow(2).sum(dim=1)

        alone = batched_lbfgs(alone_objective, z0[i : i + 1], max_iterations=8)
        torch.testing.assert_close(batched[i : i + 1], alone, rtol=1e-9, atol=1e-11)


def test_one_lbfgs_over_all_images_is_not_per_image_optimisation():
    # The former method: one torch.optim.LBFGS over the summed objective shares its line search and
    # curvature memory across images, so the small-scale image is not optimised as it would be alone.
    net, generator, targets, z0, scale = _two_scale_problem()
    objective = lambda z: (generator(z) - targets).pow(2).sum(dim=1)  # noqa: E731
    per_image = objective(batched_lbfgs(objective, z0, max_iterations=8)).detach()
    z = z0.clone().requires_grad_(True)
    joint = torch.optim.LBFGS([z], max_iter=8, line_search_fn="strong_wolfe")

    def closure():
        loss = objective(z).sum()
        (z.grad,) = torch.autograd.grad(loss, [z])
        return loss.detach()

    joint.step(closure)
    joint_losses = objective(z).detach()
    relative = (joint_losses - per_image).abs() / per_image.clamp_min(1e-12)
    assert relative[0] > 0.02, (joint_losses, per_image)


def test_pairwise_distances_of_known_points():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    d = pairwise_distances(points, 100, torch.Generator().manual_seed(0))
    assert torch.allclose(d, torch.full((100,), 5.0))  # never a point with itself


def test_cifar_without_a_folder_is_refused():
    from trainables.experiments.image import load_images

    with pytest.raises(DatasetError, match="cifar-dir"):
        load_images(get("image").config("quick", {"dataset": "cifar10"}))
    with pytest.raises(ConfigError, match="dataset must be one of"):
        get("image").config("quick", {"dataset": "svhn"})


def test_percent_best_rank_compares_settings_within_each_seed():
    from analysis.experiments.image import percent_best_rank

    # K=10's two seeds vary wildly: one beats K=0 on every image, the other loses on every image.
    errors = pd.DataFrame(
        [
            {"seed": seed, "unroll_steps": k, "sample_index": i, "error": error}
            for seed, k, error in [(0, 0, 1.0), (0, 10, 0.1), (1, 0, 1.0), (1, 10, 9.0)]
            for i in range(4)
        ]
    )
    ranks = percent_best_rank(errors).set_index("unroll_steps")
    assert ranks["percent_best_rank_mean"].tolist() == [50.0, 50.0]
    assert ranks["percent_best_rank_se"].tolist() == [50.0, 50.0]
    assert ranks["percent_best_rank_n"].tolist() == [2, 2]
    # The former definition, each image's best over every run of the sweep, gives K=10 everything.
    global_best = errors.loc[errors.groupby("sample_index")["error"].idxmin(), "unroll_steps"]
    assert global_best.tolist() == [10] * 4
