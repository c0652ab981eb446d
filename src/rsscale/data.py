"""Datasets as tensors in [0, 1].

Embedded (offline, the default study):

* ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (values 0..16
  scaled to [0, 1]), a fixed stratified train/test split, optionally resampled
  to ``resolution`` pixels a side (bilinear with antialiasing) so the input
  dimension d can grow while the content stays the same.
* ``synthetic``: Gaussian classes in a ``intrinsic_dim``-dimensional subspace
  of R^dim (a random orthonormal embedding around the constant 1/2 image): the
  class geometry, and so the ideal l2 robustness, does not depend on ``dim``.

Optional, for users who have the files: ``mnist`` and ``cifar10`` (torchvision
formats under ``root``; ``download=True`` only when asked) and ``imagefolder``
(an ImageNet-style ``root/{train,val}/<class>/<image>`` tree).
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rsscale.io import atomic_path, read_weights_only

log = logging.getLogger("rsscale")

#: Share of the training split held out by default: no model's weights train on it; it monitors training every
#: epoch and fits what is fitted after training (SWEEN's ensemble weights).  :data:`HELD_OUT_SEED` fixes which
#: examples, the same for every model of a dataset whatever the model's seed.
HELD_OUT_FRACTION = 0.1
HELD_OUT_SEED = 0


@dataclass
class Dataset:
    """Train and test tensors: images ``[N, C, H, W]`` or vectors ``[N, d]`` in [0, 1]."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    meta: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def dim(self) -> int:
        return math.prod(self.input_shape)

    def held_out_split(self, fraction: float = HELD_OUT_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices ``(fit, held_out)`` into the training split: :func:`train_val_split` of its labels at
        :data:`HELD_OUT_SEED`, so every model of this dataset holds out the same examples."""
        return train_val_split(self.y_train, fraction, HELD_OUT_SEED)

    def held_out(self, fraction: float = HELD_OUT_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out training examples and their labels (:meth:`held_out_split`), which no model trains on."""
        _, held = self.held_out_split(fraction)
        return self.x_train[held], self.y_train[held]

    def validate(self, where: str = "") -> Dataset:
        """Return ``self``, or raise a ValueError (prefixed by ``where``) naming what makes it unusable.

        Inputs must be non-empty float32 tensors ``[N, *input_shape]`` of values
        in [0, 1] with one input shape for both splits (:meth:`load` converts
        float16 and float64 files); labels an integer tensor ``[N]`` of classes
        in ``[0, num_classes)``.
        """
        where = where or f"dataset {self.name!r}"
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"{where}: num_classes must be an integer >= 1, got {self.num_classes!r}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.ndim < 2:
                got = f"dtype {x.dtype}, shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"{where}: x_{split} must be a float32 tensor [N, *input_shape], got {got}")
            if not len(x):
                raise ValueError(f"{where}: the {split} split is empty (x_{split} has shape {tuple(x.shape)})")
            if (not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool
                    or tuple(y.shape) != (len(x),)):
                got = f"dtype {y.dtype}, shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
                raise ValueError(f"{where}: y_{split} must be an integer tensor of {len(x)} labels, got {got}")
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{where}: x_{split} contains NaN or infinite values")
            low, high = float(x.min()), float(x.max())
            if low < 0 or high > 1:
                hint = " (pixels in 0..255? divide them by 255)" if high > 1 else ""
                raise ValueError(f"{where}: x_{split} holds values from {low:g} to {high:g}; inputs must lie in "
                                 f"[0, 1]{hint}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"{where}: y_{split} holds labels outside [0, {self.num_classes}) "
                                 f"(from {int(y.min())} to {int(y.max())})")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"{where}: train inputs have shape {tuple(self.x_train.shape[1:])} but test inputs "
                             f"{tuple(self.x_test.shape[1:])}")
        return self

    def save(self, path: str | Path) -> None:
        """Validate, then write the dataset file atomically (no half-written file on failure)."""
        self.validate()
        with atomic_path(path) as tmp:
            torch.save(
                {
                    "name": self.name,
                    "x_train": self.x_train,
                    "y_train": self.y_train,
                    "x_test": self.x_test,
                    "y_test": self.y_test,
                    "num_classes": self.num_classes,
                    "meta": self.meta,
                },
                tmp,
            )

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        """Read a file written by :meth:`save` (weights-only loading) and validate it.

        float16 and float64 inputs are converted to float32 (exact for float16;
        float64 pixels in [0, 1] lose only digits far below any noise level),
        with a note on the ``rsscale`` logger.
        """
        payload = read_weights_only(path, "dataset file")
        names = {f.name for f in fields(cls)}
        if not isinstance(payload, dict) or not names - {"meta"} <= set(payload) or set(payload) - names:
            raise ValueError(f"{path} is not an rsscale dataset file (expected the keys {sorted(names)})")
        for key in ("x_train", "x_test"):
            x = payload[key]
            if isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16, torch.float64):
                log.warning("rsscale: note: %s: %s converted from %s to float32", path, key, x.dtype)
                payload[key] = x.float()
        return cls(**payload).validate(str(path))


def resample(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` images to ``resolution`` a side, values kept in [0, 1]."""
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp_(0.0, 1.0)


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    return train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=labels)


def train_val_split(y: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(fit, held_out)`` of a seeded split of a training set with labels ``y``, stratified by class.

    Each class gives ``round(fraction * count)`` of its examples to the held-out part (at least one when the class
    has two or more, never all of them), chosen by a permutation from ``torch.Generator().manual_seed(seed)``;
    both index tensors are sorted.  ``fraction = 0`` holds nothing out.  The held-out part serves what must not
    see the test set and should not be fitted on: monitoring training, fitting ensemble weights.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the held-out fraction must lie in [0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    held = []
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        take = min(len(members) - 1, max(1 if fraction and len(members) > 1 else 0, round(fraction * len(members))))
        held.append(members[torch.randperm(len(members), generator=generator)[:take]])
    held_out = torch.cat(held).sort().values if held else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[held_out] = False
    return torch.nonzero(keep).flatten(), held_out


def load_digits(resolution: int = 8, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's handwritten digits, split deterministically, at ``resolution`` pixels a side."""
    from sklearn.datasets import load_digits as sklearn_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    bunch = sklearn_digits()
    images = torch.tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(bunch.target, dtype=torch.long)
    train, test = _stratified_split(bunch.target, test_fraction, seed)
    images = resample(images, resolution)
    return Dataset(
        name="digits",
        x_train=images[train].contiguous(),
        y_train=labels[train],
        x_test=images[test].contiguous(),
        y_test=labels[test],
        num_classes=10,
        meta={"resolution": resolution, "test_fraction": test_fraction, "seed": seed},
    )


def make_synthetic(dim: int, num_classes: int = 2, intrinsic_dim: int = 2, separation: float = 4.0,
                   spread: float = 0.5, num_train: int = 1000, num_test: int = 200, seed: int = 0) -> Dataset:
    """Gaussian classes on a low-dimensional subspace of R^dim.

    Latent ``z = m_y + spread * N(0, I_k)`` with class means ``m_y`` drawn once
    (centred, scaled so the mean pairwise distance is ``separation``); the
    input is ``x = clip(1/2 + U z, 0, 1)`` with ``U`` a random ``dim x k``
    orthonormal matrix (orthonormalised random signs, so no coordinate carries
    much more of ``z`` than the others).  The latents for a seed do not depend
    on ``dim``.  Distances between inputs are those between latents up to the
    clipping, which is active only at small ``dim`` (at most about a tenth of
    the coordinates at ``dim=50`` with the defaults, none from a few hundred
    on), so the Bayes-optimal l2 margin does not grow with ``dim``.
    """
    if dim < intrinsic_dim or intrinsic_dim < 1:
        raise ValueError(f"need 1 <= intrinsic_dim <= dim, got intrinsic_dim={intrinsic_dim}, dim={dim}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if num_train < 1 or num_test < 1:
        raise ValueError(f"need num_train, num_test >= 1, got num_train={num_train}, num_test={num_test}")
    if separation <= 0 or spread < 0:
        raise ValueError(f"need separation > 0 and spread >= 0, got separation={separation}, spread={spread}")
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(num_classes, intrinsic_dim, generator=gen)
    means -= means.mean(0)
    means *= separation / torch.pdist(means).mean()

    def draw(count):
        labels = torch.arange(count) % num_classes
        labels = labels[torch.randperm(count, generator=gen)]
        return means[labels] + spread * torch.randn(count, intrinsic_dim, generator=gen), labels

    (z_train, y_train), (z_test, y_test) = draw(num_train), draw(num_test)
    signs = torch.randint(0, 2, (dim, intrinsic_dim), generator=gen).float().mul_(2).sub_(1)
    basis, _ = torch.linalg.qr(signs)
    x_train, x_test = [(0.5 + z @ basis.T).clamp_(0.0, 1.0) for z in (z_train, z_test)]
    return Dataset(
        name="synthetic",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        meta={"dim": dim, "intrinsic_dim": intrinsic_dim, "separation": separation, "spread": spread, "seed": seed},
    )


def _require_folder(root: str | Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what}: no folder {root}; point root at the data, or pass download=True")
    return root


def load_mnist(root: str | Path, download: bool = False, resolution: int = 28) -> Dataset:
    """MNIST from torchvision's layout (``root/MNIST/raw/*-ubyte``)."""
    from torchvision.datasets import MNIST

    if not download:
        _require_folder(Path(root) / "MNIST", "MNIST")
    parts = [MNIST(str(root), train=train, download=download) for train in (True, False)]
    images = [resample(p.data.float().div(255).unsqueeze(1), resolution) for p in parts]
    return Dataset("mnist", images[0], parts[0].targets.long(), images[1], parts[1].targets.long(), 10,
                   {"resolution": resolution})


def _read_cifar_binary(folder: Path, names: list[str]):
    """CIFAR-10 binary batches: records of one label byte and 3,072 pixel bytes (CHW)."""
    records = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10: missing {path}")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size % 3073:
            raise ValueError(f"CIFAR-10: {path} is not a whole number of 3,073-byte records")
        records.append(raw.reshape(-1, 3073))
    data = np.concatenate(records)
    images = torch.from_numpy(data[:, 1:].reshape(-1, 3, 32, 32).copy()).float().div(255)
    return images, torch.from_numpy(data[:, 0].astype(np.int64))


def load_cifar10(root: str | Path, download: bool = False) -> Dataset:
    """CIFAR-10 from ``root/cifar-10-batches-bin`` (binary version) or torchvision's Python version."""
    binary = Path(root) / "cifar-10-batches-bin"
    if binary.is_dir():
        train = _read_cifar_binary(binary, [f"data_batch_{i}.bin" for i in range(1, 6)])
        test = _read_cifar_binary(binary, ["test_batch.bin"])
    else:
        from torchvision.datasets import CIFAR10

        if not download:
            _require_folder(Path(root) / CIFAR10.base_folder, "CIFAR-10")
        parts = [CIFAR10(str(root), train=t, download=download) for t in (True, False)]
        train, test = [
            (torch.from_numpy(p.data).permute(0, 3, 1, 2).float().div(255), torch.tensor(p.targets)) for p in parts
        ]
    return Dataset("cifar10", train[0], train[1], test[0], test[1], 10, {})


def load_image_folder(root: str | Path, resolution: int = 64) -> Dataset:
    """An ImageNet-style tree ``root/train/<class>/*`` and ``root/val/<class>/*``, resized and center-cropped."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    root = _require_folder(root, "image folder")
    transform = transforms.Compose(
        [transforms.Resize(resolution), transforms.CenterCrop(resolution), transforms.ToTensor()]
    )
    splits = []
    for split in ("train", "val"):
        folder = ImageFolder(str(_require_folder(root / split, "image folder")), transform=transform)
        images = torch.stack([folder[i][0] for i in range(len(folder))])
        splits.append((images, torch.tensor(folder.targets), folder.classes))
    (x_train, y_train, classes), (x_test, y_test, val_classes) = splits
    if val_classes != classes:
        raise ValueError(f"image folder: train and val classes differ ({sorted(set(classes) ^ set(val_classes))})")
    return Dataset("imagefolder", x_train, y_train, x_test, y_test, len(classes),
                   {"resolution": resolution, "classes": classes})


LOADERS = {
    "digits": load_digits,
    "synthetic": make_synthetic,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "imagefolder": load_image_folder,
}


def load_dataset(name: str, **params) -> Dataset:
    """Load a dataset by name with its parameters (see :data:`LOADERS`)."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(LOADERS)}")
    try:
        inspect.signature(LOADERS[name]).bind(**params)
    except TypeError as err:
        raise TypeError(f"bad parameters for dataset {name!r}: {err}") from err
    return LOADERS[name](**params)
