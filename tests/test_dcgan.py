"""The DCGAN-style networks' options (the batch-norm investigation's fields) and the trainer's shared noise."""

import pytest
import torch
from torch import nn

from trainables import experiments
from trainables.models.dcgan import DcganDiscriminator, DcganGenerator, dcgan_init
from trainables.trial import Trial


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("first_norm", ["channel", "feature"])
def test_generator_reaches_the_image_size_and_the_discriminator_takes_it(size, first_norm):
    torch.manual_seed(0)
    generator = DcganGenerator(16, 8, (8, 4, 2), 3, image_size=size, first_norm=first_norm)
    images = generator(torch.randn(5, 16))
    assert images.shape == (5, 3, size, size) and images.abs().max() <= 1
    norm = generator.first_norm
    assert isinstance(norm, nn.BatchNorm2d if first_norm == "channel" else nn.BatchNorm1d)
    assert norm.num_features == (8 if first_norm == "channel" else 8 * 16)
    assert DcganDiscriminator(3, (2, 4, 8), image_size=size)(images).shape == (5,)


def test_per_channel_norm_normalises_over_the_batch_and_the_4x4_positions():
    torch.manual_seed(0)
    generator = DcganGenerator(16, 8, (8, 4, 2), 3, first_norm="channel")
    seen = {}
    generator.first_norm.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    generator(torch.randn(64, 16))
    out = seen["out"]  # [64, 8, 4, 4]: zero mean, unit variance per channel over N x 4 x 4
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(8), atol=1e-3)


def test_dcgan_init_draws_weights_at_0_02_with_zero_biases():
    torch.manual_seed(0)
    generator = DcganGenerator(256, 64, (32, 16, 8), 3, weight_init="dcgan")
    discriminator = DcganDiscriminator(3, (16, 32, 64), weight_init="dcgan")
    for module in (generator, discriminator):
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):  # truncated at 2 std, so its std is about 0.88 x 0.02
                assert layer.weight.abs().max() <= 0.04 and 0.015 < layer.weight.std() < 0.02
            if isinstance(layer, nn.ConvTranspose2d | nn.Linear) and layer.weight.numel() > 1000:
                assert 0.018 < layer.weight.std() < 0.022
            if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                assert torch.count_nonzero(layer.bias) == 0
    with pytest.raises(ValueError, match="weight_init"):
        DcganGenerator(4, 2, (2,), 1, image_size=8, weight_init="xavier")
    untouched = nn.Linear(3, 3)
    before = untouched.weight.clone()
    dcgan_init(nn.Sequential(nn.BatchNorm1d(3)))  # no conv or linear layer: nothing to do
    assert torch.equal(untouched.weight, before)


def test_the_first_batch_norm_of_the_discriminator_can_be_left_out():
    with_first = DcganDiscriminator(3, (2, 4, 8))
    without = DcganDiscriminator(3, (2, 4, 8), batchnorm_first=False)
    count = lambda d: sum(isinstance(m, nn.BatchNorm2d) for m in d.modules())  # noqa: E731
    assert (count(with_first), count(without)) == (3, 2)
    assert not isinstance(without.body[1], nn.BatchNorm2d) and isinstance(without.body[3], nn.BatchNorm2d)


def test_shared_noise_feeds_the_generator_update_the_discriminator_updates_noise():
    mog = experiments.get("mog")
    seen = []
    for shared in (True, False):
        trial = Trial(mog, mog.config("smoke", {"shared_noise": shared, "unroll_steps": 0}))
        generator = trial.trainer.parts.generator
        calls = []
        handle = generator.register_forward_hook(lambda m, inputs, out, calls=calls: calls.append(inputs[0].clone()))
        trial.trainer.train_iteration()
        handle.remove()
        seen.append(calls)
    shared_calls, fresh_calls = seen
    assert len(shared_calls) == len(fresh_calls) == 2  # one forward in D's update, one in G's
    assert torch.equal(shared_calls[0], shared_calls[1]) and not torch.equal(fresh_calls[0], fresh_calls[1])
    assert torch.equal(shared_calls[0], fresh_calls[0])  # the discriminator's draw is the same either way
