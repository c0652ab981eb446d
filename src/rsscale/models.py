"""Architectures and checkpoints.

Every model takes inputs in [0, 1] and normalizes them in its first layer, so
noise, sigma and radii are all in pixel units.  Each model carries
``input_shape`` (one input, no batch dimension) and the ``arch`` name and
``config`` it was built from, which is all a checkpoint needs to rebuild it.

Checkpoints hold only tensors and plain values and are read with
``torch.load(weights_only=True)``: a file carrying any other pickled object is
refused.  A checkpoint must match the ``<path>.sha256`` file written beside it;
one without that file is loaded only when the caller trusts it (``trust=True``,
``--trust-checkpoint``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from rsscale.io import atomic_path, file_sha256, read_weights_only, write_text_atomic

CHECKPOINT_FORMAT = "rsscale-checkpoint-v1"


class Normalize(nn.Module):
    """``(x - mean) / std`` with fixed scalars, the model's first layer."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        if not math.isfinite(mean) or not math.isfinite(std) or std <= 0:
            raise ValueError(f"normalization needs a finite mean and a finite std > 0, got mean {mean}, std {std}")
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x):
        return (x - self.mean) / self.std


def check_sizes(**sizes) -> None:
    """Refuse a layer size (width, classes, ...) that is not an integer >= 1, naming it."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class SmallCNN(nn.Module):
    """A CNN whose depth grows with the resolution.

    A 3x3 convolution of ``width`` channels, then stride-2 3x3 convolutions
    doubling the channels until the feature map is at most 4x4 pixels, then a
    two-layer head.  8x8 inputs get one downsampling stage, 64x64 inputs four.
    """

    def __init__(self, image_size: int, in_channels: int = 1, num_classes: int = 10, width: int = 32,
                 hidden: int = 64, mean: float = 0.5, std: float = 0.25):
        super().__init__()
        check_sizes(image_size=image_size, in_channels=in_channels, num_classes=num_classes, width=width,
                    hidden=hidden)
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
        check_sizes(dim=dim, num_classes=num_classes, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
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


class BasicBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))`` with 3x3 convolutions (He et al. 2016, Fig. 2 left).

    The shortcut is the identity, or a strided 1x1 convolution and batch norm where the shape changes.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """The CIFAR ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016, Sec. 4.2).

    ``depth = 6n + 2`` layers: a 3x3 convolution to 16 channels, three stages of ``n`` :class:`BasicBlock` s of
    16, 32 and 64 channels (the second and third start with stride 2), global average pooling and a linear layer.
    Depth 110 (n = 18, about 1.7M parameters) is the base classifier of Cohen et al. and the work that follows it
    on CIFAR-10; depth 20 has about 0.27M.  ``input_shape`` is ``C x H x W``; ``dim``, when given (the CLI fills
    it in for every non-``cnn`` architecture), must be its product.
    """

    def __init__(self, input_shape: list[int] | tuple[int, ...] = (3, 32, 32), depth: int = 110,
                 num_classes: int = 10, mean: float = 0.5, std: float = 0.25, dim: int | None = None):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth!r}")
        self.input_shape = tuple(input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"ResNet takes images C x H x W, got input_shape {self.input_shape}")
        channels, height, width = self.input_shape
        check_sizes(num_classes=num_classes, channels=channels, height=height, width=width)
        if dim is not None and math.prod(self.input_shape) != dim:
            raise ValueError(f"input_shape {self.input_shape} does not hold dim = {dim} values")
        blocks = (depth - 2) // 6
        layers: list[nn.Module] = [Normalize(mean, std), nn.Conv2d(self.input_shape[0], 16, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(16), nn.ReLU()]
        channels = 16
        for stage, width in enumerate((16, 32, 64)):
            for block in range(blocks):
                layers.append(BasicBlock(channels, width, stride=2 if stage and not block else 1))
                channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
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


class DnCNN(nn.Module):
    """DnCNN denoiser (Zhang et al., IEEE TIP 2017), the one of denoised smoothing: ``D(x) = x - net(x)``.

    ``net``: a 3x3 convolution and ReLU, ``depth - 2`` blocks of 3x3 convolution, batch norm and ReLU, and a 3x3
    convolution back to ``in_channels``; the net predicts the noise, which is subtracted (residual output).
    Salman et al. use ``depth = 17, width = 64``; the defaults here are sized for 8x8 digits.
    """

    def __init__(self, in_channels: int = 1, depth: int = 4, width: int = 16):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"DnCNN depth must be an integer >= 2, got {depth!r}")
        check_sizes(**{"DnCNN width": width})
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(nn.Conv2d(width, in_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return x - self.net(x)


class DenoisedClassifier(nn.Module):
    """``f(D(x))``: a :class:`DnCNN` in front of a classifier ``f`` (denoised smoothing, Salman et al., NeurIPS 2020).

    ``classifier_arch``/``classifier_config`` rebuild ``f`` (an image model, inputs ``C x H x W``);
    ``denoiser_config`` holds DnCNN's ``depth`` and ``width``.  One checkpoint holds both parts' weights, so the
    composition certifies like any base classifier.
    """

    def __init__(self, classifier_arch: str, classifier_config: dict, denoiser_config: dict | None = None):
        super().__init__()
        self.classifier = build_model(classifier_arch, **classifier_config)
        self.input_shape = tuple(self.classifier.input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"a denoiser needs an image classifier (inputs C x H x W), got input shape "
                             f"{self.input_shape}")
        self.denoiser = DnCNN(in_channels=self.input_shape[0], **(denoiser_config or {}))

    def forward(self, x):
        return self.classifier(self.denoiser(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn": SmallCNN, "mlp": MLP, "resnet": ResNet,
                                             "projected": ProjectedModel, "denoised": DenoisedClassifier}


def build_model(arch: str, **config) -> nn.Module:
    """Instantiate a registered architecture and remember how it was built."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    model = ARCHITECTURES[arch](**config)
    model.arch, model.config = arch, dict(config)
    return model


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
    sidecar = Path(f"{path}.sha256")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        sha = file_sha256(tmp)
        sidecar.unlink(missing_ok=True)  # a stale record must not outlive the file it describes
    write_text_atomic(sidecar, f"{sha}  {path.name}\n")
    return sha


def _check_sha256_file(path: Path, sha: str) -> bool:
    """Refuse a checkpoint whose ``<path>.sha256`` record names another digest; return whether there is a record."""
    sidecar = Path(f"{path}.sha256")
    if not sidecar.is_file():
        return False
    recorded = (sidecar.read_text().split() or [""])[0].lower()
    if recorded != sha:
        raise ValueError(f"{path} does not match its sha256 file {sidecar.name} (file {sha[:16]}..., recorded "
                         f"{recorded[:16] or 'nothing'}...): it changed after it was saved")
    return True


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    trust: bool = False) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by :func:`save_checkpoint`; return ``(model, meta)``.

    ``meta`` gains ``sha256`` (of the file) and ``arch``/``config``.  The file
    must match its ``<path>.sha256`` record (checked before it is read); a file
    without one is refused, once read as a checkpoint, unless ``trust=True``
    (the caller vouches for it).  Loading uses
    ``weights_only=True`` and raises ValueError for a file that carries
    pickled objects, is corrupted, or is not an rsscale checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    sha = file_sha256(path)
    recorded = _check_sha256_file(path, sha)
    payload = read_weights_only(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an rsscale checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if not (isinstance(payload.get("config"), dict) and isinstance(payload.get("meta"), dict)
            and isinstance(payload.get("state_dict"), dict)):
        raise ValueError(f"{path} is not an rsscale checkpoint (it lacks arch, config, state_dict or meta)")
    if not (recorded or trust):
        raise ValueError(f"{path} has no sha256 file {path.name}.sha256 beside it, so its integrity cannot be "
                         f"checked; pass --trust-checkpoint (trust=True) to load it anyway")
    try:
        model = build_model(payload.get("arch"), **payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: its weights do not rebuild architecture {payload.get('arch')!r} ({first})") from err
    model.eval()
    meta = dict(payload["meta"], sha256=sha, arch=payload["arch"], config=payload["config"])
    return model, meta


def fit_to_dataset(arch: str, params: dict, dataset) -> dict:
    """Fill in (in place) the architecture parameters that ``dataset`` (a :class:`rsscale.data.Dataset`)
    determines: input shape, classes, normalisation."""
    shape = dataset.input_shape
    if arch == "cnn":
        params.setdefault("image_size", shape[-1])
        params.setdefault("in_channels", shape[0])
    else:
        params.setdefault("dim", dataset.dim)
        params.setdefault("input_shape", list(shape))
    params.setdefault("num_classes", dataset.num_classes)
    params.setdefault("mean", float(dataset.x_train.mean()))
    params.setdefault("std", float(dataset.x_train.std()))
    if not math.isfinite(params["std"]) or params["std"] <= 0:
        raise ValueError(f"the {len(dataset.x_train)} training inputs have standard deviation {params['std']}: the "
                         f"model's normalization would be non-finite (give mean and std in the architecture "
                         f"parameters, or more varied training inputs)")
    return params


def check_model_fits(model: nn.Module, dataset, checkpoint: str | Path, data: str | Path) -> None:
    """Refuse a checkpoint whose input shape or class count is not the dataset's (before any output is written)."""
    shape = tuple(getattr(model, "input_shape", ()) or ())
    if shape and shape != tuple(dataset.input_shape):
        raise ValueError(f"checkpoint {checkpoint} takes inputs of shape {shape}, but the dataset {data} "
                         f"has inputs of shape {tuple(dataset.input_shape)}")
    if len(dataset.x_test):
        with torch.no_grad():
            classes = model(dataset.x_test[:1]).shape[-1]
        if classes != dataset.num_classes:
            raise ValueError(f"checkpoint {checkpoint} scores {classes} classes, but the dataset {data} "
                             f"has {dataset.num_classes}")


def load_models(paths, dataset, data: str | Path, trust: bool = False) -> list[tuple[nn.Module, dict]]:
    """(model, metadata) per checkpoint, each checked against the input shape and classes of ``dataset`` (read
    from the file ``data``); ``trust``: load checkpoints without a sha256 file (:func:`load_checkpoint`)."""
    loaded = [load_checkpoint(path, trust=trust) for path in paths]
    for path, (model, _) in zip(paths, loaded, strict=True):
        check_model_fits(model, dataset, path, data)
    return loaded


def training_sigma(meta: dict, sigma: float | None, checkpoint: str | Path) -> float:
    """``sigma`` when given, else the training sigma the checkpoint's metadata records."""
    if sigma is not None:
        return sigma
    if "sigma" not in meta:
        raise ValueError(f"checkpoint {checkpoint} records no training sigma; pass --sigma")
    return meta["sigma"]
