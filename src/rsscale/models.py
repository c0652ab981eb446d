"""Architectures and checkpoints.

Every model takes inputs in [0, 1] and normalizes them in its first layer, so
noise, sigma and radii are all in pixel units.  Each model carries
``input_shape`` (one input, no batch dimension) and the ``arch`` name and
``config`` it was built from, which is all a checkpoint needs to rebuild it.

Checkpoints hold only tensors and plain values and are read with
``torch.load(weights_only=True)``: a file carrying any other pickled object is
refused.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import tempfile
from pathlib import Path

import torch
from torch import nn

CHECKPOINT_FORMAT = "rsscale-checkpoint-v1"


class Normalize(nn.Module):
    """``(x - mean) / std`` with fixed scalars, the model's first layer."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x):
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """A CNN whose depth grows with the resolution.

    A 3x3 convolution of ``width`` channels, then stride-2 3x3 convolutions
    doubling the channels until the feature map is at most 4x4 pixels, then a
    two-layer head.  8x8 inputs get one downsampling stage, 64x64 inputs four.
    """

    def __init__(self, image_size: int, in_channels: int = 1, num_classes: int = 10, width: int = 32,
                 hidden: int = 64, mean: float = 0.5, std: float = 0.25):
        super().__init__()
        self.input_shape = (in_channels, image_size, image_size)
        layers = [Normalize(mean, std), nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
        side, channels = image_size, width
        while side > 4:
            layers += [nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU()]
            side, channels = math.ceil(side / 2), 2 * channels
        layers += [nn.Flatten(), nn.Linear(channels * side * side, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class MLP(nn.Module):
    """A multi-layer perceptron on flattened inputs (``hidden=[]`` is a linear model).

    ``input_shape`` (default ``(dim,)``) lets it take images, e.g. ``[1, 32, 32]``
    with ``dim = 1024``: its cost grows only in the first layer as d grows.
    ``zero_init`` starts the output layer at zero: a linear model trained by
    gradient descent then stays in the span of its training inputs, whatever d.
    """

    def __init__(self, dim: int, num_classes: int = 2, hidden: list[int] | tuple[int, ...] = (64,),
                 mean: float = 0.5, std: float = 0.25, input_shape: list[int] | tuple[int, ...] | None = None,
                 zero_init: bool = False):
        super().__init__()
        self.input_shape = tuple(input_shape) if input_shape else (dim,)
        if math.prod(self.input_shape) != dim:
            raise ValueError(f"input_shape {self.input_shape} does not hold dim = {dim} values")
        layers: list[nn.Module] = [nn.Flatten(), Normalize(mean, std)]
        width = dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        if zero_init:
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ProjectedModel(nn.Module):
    """A base network that sees only the projection ``P(x) = U^T U (x - mu) + mu`` of its input.

    ``U`` ``[rank, dim]`` (orthonormal rows: P is then the orthogonal projection
    onto the affine subspace ``mu + span(U^T)``) and ``mu`` ``[dim]`` are buffers,
    saved with the weights; they start as the first ``rank`` coordinate axes and
    0, and :meth:`set_projection` loads the fitted ones
    (:func:`rsscale.methods.projected.fit_projection`).  Because
    ``P(x + e) = P(x) + U^T (U e)``, Gaussian smoothing of this model is projected
    randomized smoothing (Pfrommer, Anderson & Sojoudi, "Projected Randomized
    Smoothing for Certified Adversarial Robustness", TMLR 2023).  Inputs have the
    base's ``input_shape`` and are flattened only for the projection.
    """

    def __init__(self, base_arch: str, base_config: dict, rank: int, dim: int):
        super().__init__()
        self.base = build_model(base_arch, **base_config)
        self.input_shape = tuple(self.base.input_shape)
        if math.prod(self.input_shape) != dim:
            raise ValueError(f"dim = {dim} does not match the base's input shape {self.input_shape}")
        if not 1 <= rank <= dim:
            raise ValueError(f"rank must lie in [1, dim = {dim}], got {rank}")
        self.register_buffer("U", torch.eye(rank, dim))
        self.register_buffer("mu", torch.zeros(dim))

    def set_projection(self, U: torch.Tensor, mu: torch.Tensor) -> None:
        """Load the subspace basis ``U`` ``[rank, dim]`` and offset ``mu`` ``[dim]``."""
        if tuple(U.shape) != tuple(self.U.shape) or tuple(mu.shape) != tuple(self.mu.shape):
            raise ValueError(f"expected U of shape {tuple(self.U.shape)} and mu of shape {tuple(self.mu.shape)}, "
                             f"got {tuple(U.shape)} and {tuple(mu.shape)}")
        with torch.no_grad():
            self.U.copy_(U)
            self.mu.copy_(mu)

    def forward(self, x):
        centred = x.flatten(1) - self.mu
        return self.base(((centred @ self.U.T) @ self.U + self.mu).view(x.shape))


ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn": SmallCNN, "mlp": MLP, "projected": ProjectedModel}


def build_model(arch: str, **config) -> nn.Module:
    """Instantiate a registered architecture and remember how it was built."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    model = ARCHITECTURES[arch](**config)
    model.arch, model.config = arch, dict(config)
    return model


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(model: nn.Module, path: str | Path, **meta) -> str:
    """Write weights, architecture and ``meta`` (plain values) atomically; return the file's sha256.

    The sha256 is also written beside the file as ``<path>.sha256``.
    """
    if not hasattr(model, "arch"):
        raise ValueError("save_checkpoint needs a model made by rsscale.models.build_model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": model.arch,
        "config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    sha = file_sha256(path)
    Path(f"{path}.sha256").write_text(f"{sha}  {path.name}\n")
    return sha


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by :func:`save_checkpoint`; return ``(model, meta)``.

    ``meta`` gains ``sha256`` (of the file) and ``arch``/``config``.  Loading uses
    ``weights_only=True`` and raises ValueError for a file that carries
    pickled objects or is not an rsscale checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"refusing {path}: it carries pickled objects that weights_only loading does not allow ({err})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an rsscale checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    model = build_model(payload["arch"], **payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    meta = dict(payload["meta"], sha256=file_sha256(path), arch=payload["arch"], config=payload["config"])
    return model, meta
