"""The one base class every method family subclasses, and the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rsscale.certificate import Certificate
from rsscale.noise import NoiseDistribution
from rsscale.sampling import Sampler, VoteFunction, argmax_vote, resolve_device
from rsscale.smooth import check_inputs, check_sample_size, check_sampling


class Certifier(ABC):
    """A certification procedure: certifies a batch of inputs (they may share forward passes) with explicit draws.

    A family subclasses this, sets the class attributes below, and implements
    :meth:`certify_batch` on a checked ``[m, *input_shape]`` tensor.  Its
    constructor takes ``model``, ``num_classes``, ``sigma`` and the method's own
    keyword parameters, and calls :meth:`check_sampling` for the checks every
    family shares.  :meth:`settings` lists the attributes named in
    :attr:`settings_fields`.  The family declares its soundness-harness cases
    in :meth:`harness_cases`, its deliberately wrong variants in :meth:`mutants`
    and, when its noise depends on the input, the noise it picks at any point
    in :attr:`noise_at` (for the violation search).  A family that splits alpha
    among several confidence statements reads each one's level through
    :meth:`level`.
    """

    #: Registry name, used in configs, file names and tables.
    name: str
    #: Whether the published procedure yields a valid certificate.
    sound: bool = True
    #: Why it is not sound (empty when sound).
    unsound_reason: str = ""
    #: One line for tables and ``rsscale methods``.
    summary: str = ""
    #: Whether the family's base classifier combines several models (``model`` may then be a list of them).
    combines_models: bool = False
    #: The attributes that identify a run, in the order :meth:`settings` lists them.
    settings_fields: tuple[str, ...] = ("sigma", "n0", "n", "alpha")
    #: Shape of one input (``None``: any shape); the inputs are checked against it.
    input_shape: tuple[int, ...] | None = None
    #: ``noise_at(self, points, generator)``: the noise the method smooths with at each point, ``[points]`` (sigma)
    #: or ``[points, d]`` (a diagonal theta), for :mod:`rsscale.violations`; ``None``: no violation search.
    noise_at: Callable[[Certifier, torch.Tensor, torch.Generator], np.ndarray] | None = None

    def check_sampling(self, sigma: float, n0: int, n: int, alpha: float) -> None:
        """The checks every family shares: sigma a finite number in (0, :data:`rsscale.noise.MAX_SCALE`] (its draws
        and radii finite in float32); n0 <= n positive integers; alpha in (0, 1)."""
        self.sigma, self.n0, self.n, self.alpha = check_sampling(sigma, n0, n, alpha)

    def set_model(self, model: torch.nn.Module, num_classes: int, device, batch_size: int = 1000) -> None:
        """The model in eval mode on the device, the number of classes, the input shape the model declares, and the
        number of noisy samples per forward pass."""
        self.num_classes = check_sample_size("num_classes", num_classes)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.input_shape = tuple(getattr(model, "input_shape", ()) or ()) or None
        self.batch_size = check_sample_size("batch_size", batch_size)

    def new_sampler(self, noise: NoiseDistribution, num_votes: int | None = None, vote: VoteFunction = argmax_vote,
                    batch_size: int | None = None) -> Sampler:
        """A sampler of the model set by :meth:`set_model` under ``noise`` (by default: argmax votes over the
        classes, the family's batch size)."""
        return Sampler(self.model, noise, num_votes or self.num_classes, batch_size or self.batch_size, self.device,
                       vote=vote)

    @abstractmethod
    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        """Certify the inputs ``xs`` (already validated) with draws from ``generator``."""

    def certify(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Certificate:
        """Certify one input ``x`` (no batch dimension)."""
        check_inputs(x, self.input_shape, batched=False)
        return self.certify_many(x.unsqueeze(0), generator)[0]

    def certify_many(self, xs, generator: torch.Generator | None = None) -> list[Certificate]:
        """Certify a batch of inputs (a tensor or a sequence of tensors); ``None`` draws from fresh OS entropy."""
        if isinstance(xs, (list, tuple)):
            xs = torch.stack(list(xs))
        check_inputs(xs, self.input_shape, batched=True)
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        return self.certify_batch(xs, generator)

    def level(self, statement: str) -> float:
        """The level at which the confidence statement ``statement`` of this family holds: its share of alpha under the
        family's union bound (here: the full alpha; a family that splits alpha overrides this)."""
        return self.alpha

    def settings(self) -> dict:
        """The parameters that identify this certifier's run (for provenance and file names)."""
        return {field: getattr(self, field) for field in self.settings_fields}

    @classmethod
    def harness_cases(cls) -> list:
        """This family's soundness-harness cases (:class:`rsscale.harness.Case`); a family declares its own, a
        subclass never inherits them (it is another family)."""
        return []

    @classmethod
    def mutants(cls) -> list:
        """Deliberately wrong variants of this family that its harness cases must catch
        (:class:`rsscale.mutation.Mutant`); declared by the family itself, never inherited."""
        return []


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


def family(name: str) -> type[Certifier]:
    """The registered class of a method family."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def info(name: str) -> MethodInfo:
    """Soundness flag and summary of a registered family."""
    cls = family(name)
    return MethodInfo(cls.name, cls.sound, cls.unsound_reason, cls.summary)


def build(name: str, model: torch.nn.Module, num_classes: int, sigma: float, **params) -> Certifier:
    """Instantiate a registered family with its parameters."""
    cls = family(name)
    if isinstance(model, (list, tuple)) and not cls.combines_models:
        combining = [n for n in available() if _REGISTRY[n].combines_models]
        raise ValueError(f"method {name!r} certifies one model, got {len(model)}; the families that combine several "
                         f"models: {', '.join(combining)}")
    try:
        return cls(model=model, num_classes=num_classes, sigma=sigma, **params)
    except TypeError as err:
        raise TypeError(f"bad parameters for method {name!r}: {err}") from err
