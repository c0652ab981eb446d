"""The interface every method family implements, and the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from rsscale.certificate import Certificate
from rsscale.sampling import resolve_device
from rsscale.smooth import check_inputs, check_sample_size


class Certifier(ABC):
    """A certification procedure for one input at a time.

    Subclasses set the class attributes below and implement :meth:`certify`;
    their constructor takes ``model``, ``num_classes``, ``sigma`` and the
    method's own keyword parameters.
    """

    #: Registry name, used in configs, file names and tables.
    name: str
    #: Whether the published procedure yields a valid certificate.
    sound: bool = True
    #: Why it is not sound (empty when sound).
    unsound_reason: str = ""
    #: One line for tables and ``rsscale methods``.
    summary: str = ""

    @abstractmethod
    def certify(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Certificate:
        """Certify one input ``x`` (no batch dimension)."""

    def certify_many(self, xs: torch.Tensor, generator: torch.Generator | None = None) -> list[Certificate]:
        """Certify a batch of inputs; families that can share forward passes override this."""
        return [self.certify(x, generator) for x in xs]

    def settings(self) -> dict:
        """The parameters that identify this certifier's run (for provenance and file names)."""
        return {}


class BatchCertifier(Certifier):
    """A family that certifies a batch of inputs together (the inputs share forward passes).

    Subclasses implement :meth:`certify_batch` on a checked ``[m, *input_shape]`` tensor and an explicit
    generator (``None`` becomes one seeded from fresh OS entropy); :meth:`certify` is the batch of one.
    ``input_shape`` (``None``: any shape) is what the inputs are checked against.
    """

    input_shape: tuple[int, ...] | None = None

    def _set_model(self, model: torch.nn.Module, num_classes: int, device) -> None:
        """The model in eval mode on the device, the number of classes, and the input shape the model declares."""
        self.num_classes = check_sample_size("num_classes", num_classes)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.input_shape = tuple(getattr(model, "input_shape", ()) or ()) or None

    @abstractmethod
    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        """Certify the inputs ``xs`` (already validated) with draws from ``generator``."""

    def certify(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Certificate:
        check_inputs(x, self.input_shape, batched=False)
        return self.certify_many(x.unsqueeze(0), generator)[0]

    def certify_many(self, xs, generator: torch.Generator | None = None) -> list[Certificate]:
        if isinstance(xs, (list, tuple)):
            xs = torch.stack(list(xs))
        check_inputs(xs, self.input_shape, batched=True)
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        return self.certify_batch(xs, generator)


@dataclass(frozen=True)
class MethodInfo:
    name: str
    sound: bool
    unsound_reason: str
    summary: str


_REGISTRY: dict[str, type[Certifier]] = {}


def register(cls: type[Certifier]) -> type[Certifier]:
    """Class decorator adding a Certifier subclass to the registry under ``cls.name``."""
    if not getattr(cls, "name", None):
        raise ValueError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of all registered method families, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> type[Certifier]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def info(name: str) -> MethodInfo:
    """Soundness flag and summary of a registered family."""
    cls = _lookup(name)
    return MethodInfo(cls.name, cls.sound, cls.unsound_reason, cls.summary)


def build(name: str, model: torch.nn.Module, num_classes: int, sigma: float, **params) -> Certifier:
    """Instantiate a registered family with its parameters."""
    cls = _lookup(name)
    try:
        return cls(model=model, num_classes=num_classes, sigma=sigma, **params)
    except TypeError as err:
        raise TypeError(f"bad parameters for method {name!r}: {err}") from err
