"""The image model (Section 3.4, Appendix D): a DCGAN-style GAN on CIFAR-10 (or MNIST where CIFAR is absent),
judged by inference via optimisation (Table 3) and pairwise sample distances (Figures 5 and 8)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import artifacts
from ..config import check_choice
from ..data.cifar10 import load_cifar10
from ..draws import Sampler, draw_indices
from ..errors import ConfigError, DatasetError
from ..metrics.inference import invert_generator, pairwise_distances
from ..models.dcgan import DcganDiscriminator, DcganGenerator, scaled_widths
from ..sampling import evaluation_mode
from ..trainer import GANParts
from . import Experiment, ExperimentRun, Profile, smoke_profile
from ._mnist import MnistGANConfig, mnist_for


@dataclass(frozen=True)
class ImageConfig(MnistGANConfig):
    dataset: str = "cifar10"
    """'cifar10' (needs cifar_dir) or 'mnist' (28x28 digits padded to 32x32, one channel)."""
    cifar_dir: str = ""
    """Folder holding cifar-10-batches-py/ (or its contents)."""
    width: float = 1.0
    """[R] channel multiplier X: G linear to 4x4x64X, transposed convs 32X, 16X, 8X; D convs 8X, 16X, 32X."""
    iterations: int = 20_000
    """[R] not stated in the paper."""
    report_every: int = 2_000
    snapshot_every: int = 10_000
    inference_images: int = 1_280
    """[P] training images reconstructed by inference via optimisation (the same ones for every trial)."""
    inference_starts: int = 3
    """[P] random starts of L-BFGS per image; the best is kept."""
    lbfgs_iterations: int = 100
    """[R] L-BFGS iterations per start."""
    distance_pairs: int = 5_000
    """[R] random pairs of samples (and of data images) for the pairwise-distance histograms."""
    inference_seed: int = 0
    """Chooses the fixed set of training images, independently of the trial's seed."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("dataset", self.dataset, ("cifar10", "mnist"))
        self.refuse_changed(
            ("eval_batch_size",),
            "the image model is evaluated in eval mode (batch norm's running statistics), unbatched",
        )
        if self.cifar_dir and self.dataset != "cifar10":
            # Read nowhere else: accepting it would train on MNIST while the user believes CIFAR-10.
            raise ConfigError(f"cifar_dir is only read with dataset cifar10; this config trains on {self.dataset}")
        if not self.width > 0:
            raise ConfigError(f"width must be positive, got {self.width!r}")
        for name in ("inference_images", "inference_starts", "lbfgs_iterations", "distance_pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")


def load_images(cfg: ImageConfig, assets: artifacts.Assets = artifacts.LOCAL) -> torch.Tensor:
    """uint8 [n, C, 32, 32] training images of the configured dataset."""
    if cfg.dataset == "cifar10":
        if not cfg.cifar_dir:
            raise DatasetError(
                "dataset cifar10 needs --cifar-dir (CIFAR-10 cannot be downloaded here); or use --dataset mnist"
            )
        return torch.as_tensor(load_cifar10(cfg.cifar_dir, "train")[0])
    digits = torch.as_tensor(mnist_for(cfg, assets).train_images)
    return F.pad(digits, (2, 2, 2, 2)).unsqueeze(1)


def images_for(cfg: ImageConfig, assets: artifacts.Assets) -> torch.Tensor:
    """The sweep's published training images when `assets` has them; the local files otherwise."""
    published = assets.load("images", lambda data: torch.as_tensor(artifacts.npz_arrays(data)["images"]))
    return load_images(cfg) if published is None else published


def prepare(cfg: ImageConfig) -> dict[str, artifacts.Blob]:
    """Run once in the driver: the training images (CIFAR-10 from --cifar-dir, or MNIST) every trial reads."""
    return {"images": artifacts.npz_blob({"images": load_images(cfg).numpy()}, dataset=cfg.dataset)}


class ImageRun(ExperimentRun):
    def __init__(self, cfg: ImageConfig, device: torch.device, assets: artifacts.Assets = artifacts.LOCAL):
        self.cfg, self.device = cfg, device
        self.images = images_for(cfg, assets).to(device)
        channels, x = self.images.shape[1], cfg.width
        generator = DcganGenerator(
            cfg.noise_dim,
            max(1, round(64 * x)),
            scaled_widths((32, 16, 8), x),
            channels,
            32,
            cfg.g_first_norm,
            cfg.weight_init,
        )
        discriminator = DcganDiscriminator(
            channels,
            scaled_widths((8, 16, 32), x),
            batchnorm=cfg.d_batchnorm,
            weight_init=cfg.weight_init,
            batchnorm_first=cfg.d_batchnorm_first,
        )
        real = Sampler(draw_indices(len(self.images)), device, self._gather)
        self.parts = GANParts.build(cfg, generator, discriminator, real, device)

    def _gather(self, which: Tensor) -> Tensor:
        return self.images[which].float() / 127.5 - 1

    def _real(self, n: int, rng: torch.Generator) -> Tensor:
        return self.parts.sample_real(n, rng)

    @torch.no_grad()
    def _samples(self, n: int, rng: torch.Generator) -> Tensor:
        with evaluation_mode(self.parts.generator):
            return self.parts.generator(self.parts.sample_noise(n, rng)).cpu()

    def model_samples(self, rng: torch.Generator) -> Tensor:
        return self._samples(self.cfg.snapshot_samples, rng)

    def data_samples(self, rng: torch.Generator) -> Tensor:
        return self._real(self.cfg.snapshot_samples, rng).cpu()

    def _distances(self, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """Pairwise L2 distances among generated samples and among training images (Figure 8)."""
        pairs = self.cfg.distance_pairs
        n = min(2 * pairs, 2_000)
        model = pairwise_distances(self._samples(n, rng), pairs, rng)
        return model, pairwise_distances(self._real(n, rng).cpu(), pairs, rng)

    def evaluate(self, rng: torch.Generator) -> dict[str, float]:
        model, data = self._distances(rng)
        return {"distance_median": model.median().item(), "data_distance_median": data.median().item()}

    def final(self, rng: torch.Generator) -> tuple[dict[str, float], dict[str, Tensor]]:
        fixed = torch.Generator().manual_seed(self.cfg.inference_seed)
        which = torch.randperm(len(self.images), generator=fixed)[: self.cfg.inference_images].to(self.device)
        targets = self.images[which].float() / 127.5 - 1
        with evaluation_mode(self.parts.generator):
            _, reconstructions, errors = invert_generator(
                self.parts.generator,
                targets,
                self.cfg.noise_dim,
                self.cfg.inference_starts,
                rng,
                self.cfg.lbfgs_iterations,
            )
        targets, reconstructions, errors = targets.cpu(), reconstructions.cpu(), errors.cpu()
        model_distances, data_distances = self._distances(rng)
        return (
            {"inference_mse": errors.mean().item()},
            {
                "inference_error": errors[:, None].float(),
                "inference_target": targets.float(),
                "reconstruction": reconstructions.float(),
                "model_distance": model_distances[:, None],
                "data_distance": data_distances[:, None],
            },
        )


EXPERIMENT = Experiment(
    name="image",
    paper_section="3.4",
    config_type=ImageConfig,
    build=ImageRun,
    prepare=prepare,
    gpu_fraction=0.5,
    metrics={
        "inference_mse": "mean over the fixed training images of the per-pixel MSE of the best L-BFGS "
        "reconstruction min_z ||G(z) - x||^2 (last step only; Table 3)",
        "distance_median": "median L2 distance between random pairs of generated samples (Figure 8)",
        "data_distance_median": "the same for pairs of training images",
    },
    profiles={
        "smoke": smoke_profile(
            4,
            2,
            dataset="mnist",
            batch_size=16,
            snapshot_samples=8,
            width=0.25,
            inference_images=6,
            inference_starts=2,
            lbfgs_iterations=5,
            distance_pairs=50,
        ),
        "quick": Profile(
            "this 2-core machine, on MNIST: 2,000 iterations, 128 images inverted",
            dict(
                dataset="mnist",
                iterations=2_000,
                report_every=500,
                snapshot_every=1_000,
                inference_images=128,
                lbfgs_iterations=50,
                distance_pairs=2_000,
            ),
            seeds=(0, 1),
            unroll_steps=(0, 5),
        ),
        "paper": Profile(
            "Table 3: 5 seeds x unroll {0, 1, 5, 10} on CIFAR-10, for a GPU cluster",
            dict(),
            seeds=(0, 1, 2, 3, 4),
            unroll_steps=(0, 1, 5, 10),
        ),
    },
)
