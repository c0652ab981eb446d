"""Helpers shared by several method families: parameter checks, l2 certificates, per-input noise levels, noise tuned
per input by gradient steps, and Cohen's CERTIFY on an ensemble that counts its member evaluations."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.special import ndtri

from rsscale.bounds import clopper_pearson_lower
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.memory import Memory
from rsscale.methods.base import Certifier
from rsscale.noise import NORMS, NoiseDistribution, convert_radius
from rsscale.sampling import Sampler
from rsscale.smooth import SmoothedClassifier, abstains, check_sample_size, estimate, select


def check_steps(steps, what: str = "steps") -> int:
    """``steps`` as an int, or raise (naming ``what``) if it is not an integer >= 0."""
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {steps!r}")
    return int(steps)


def check_rate(lr, what: str = "lr") -> float:
    """A learning rate as a float, or raise (naming ``what``) if it is not a finite number > 0."""
    rate = float(lr)
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"{what} must be a finite number > 0, got {lr}")
    return rate


def check_sigma_range(low, high, what: str) -> tuple[float, float]:
    """A range ``[low, high]`` of multiples of sigma that contains 1, or a ValueError naming ``what`` it is."""
    low, high = float(low), float(high)
    if not (0 < low <= 1 <= high and math.isfinite(high)):
        raise ValueError(f"the {what} range [low, high] (multiples of sigma) needs 0 < low <= 1 <= high, "
                         f"got [{low}, {high}]")
    return low, high


def l2_radii(radius: float, dim: int) -> dict[str, float]:
    """An l2 radius and the largest l1 and l_inf balls inside its ball (:func:`rsscale.noise.convert_radius`)."""
    return {norm: convert_radius(radius, "l2", norm, dim) for norm in NORMS}


def l2_certificates(top, abstain, radius, p_lower, forward_passes, seconds, dim: int, extras) -> list[Certificate]:
    """One certificate per input i: class ``top[i]`` with l2 radius ``radius[i]`` (and the l1 and l_inf balls inside
    it), or ABSTAIN with radius 0 where ``abstain[i]``; ``forward_passes`` and ``seconds`` are per input or shared."""
    passes, times = (np.broadcast_to(np.asarray(v), (len(top),)) for v in (forward_passes, seconds))
    certs = []
    for i, c_a in enumerate(top):
        radii = l2_radii(0.0 if abstain[i] else float(radius[i]), dim)
        certs.append(Certificate(prediction=ABSTAIN if abstain[i] else c_a, radius=radii["l2"],
                                 p_lower=float(p_lower[i]), forward_passes=int(passes[i]), seconds=float(times[i]),
                                 radii=radii, extra=extras[i]))
    return certs


class ScaledGaussian(NoiseDistribution):
    """N(0, sigma_i^2 I) for the samples of input i: call :meth:`start` before each ``Sampler.counts`` call.

    Per-input noise levels share forward passes: the sampler draws batches over consecutive flat indices
    ``i * num_samples + j``; a cursor tracks the flat index of the next row, and each row is scaled by the level of
    its owner ``index // num_samples``.
    """

    name = "gaussian_per_input"
    native_norm = "l2"
    shareable_across_inputs = False  # each row is scaled by its owner's sigma

    def __init__(self):
        self.sigmas = torch.ones(1)
        self.num_samples, self.cursor = 1, 0

    def start(self, sigmas, num_samples: int) -> ScaledGaussian:
        self.sigmas = torch.as_tensor(np.asarray(sigmas, dtype=np.float32))
        self.num_samples, self.cursor = int(num_samples), 0
        return self

    def sample_(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rows = out.shape[0]
        owners = torch.arange(self.cursor, self.cursor + rows) // self.num_samples
        self.cursor += rows
        out.normal_(0.0, 1.0, generator=generator)
        return out.mul_(self.sigmas[owners].to(out.device).view(rows, *([1] * (out.ndim - 1))))

    def radius(self, p_lower: float) -> float:
        raise NotImplementedError("the radius depends on each input's sigma: use sigma_i * Phi^-1(p_lower)")

    def describe(self) -> dict:
        return {"name": self.name}


def certify_at_sigmas(sampler: Sampler, noise: ScaledGaussian, xs, sigmas, n0: int, n: int, alpha: float,
                      generator, extra_passes: int = 0, seconds: float = 0.0, extras=None) -> list[Certificate]:
    """Cohen's CERTIFY for each input i at its own level ``sigmas[i]`` (fresh n0 selection and n estimation samples):
    c_A from the selection, ``p_A = CP_lower(k, n, alpha)``, radius ``sigmas[i] Phi^-1(p_A)`` or abstain
    (:func:`rsscale.smooth.abstains`).  ``extra_passes`` (the search's) is added to ``forward_passes``, ``seconds``
    is the batch's time before this call."""
    start = time.perf_counter()
    noise.start(sigmas, n0)
    top = select(sampler, xs, n0, generator)
    noise.start(sigmas, n)
    hits = estimate(sampler, xs, n, top, generator)
    p_lower = np.atleast_1d(clopper_pearson_lower(hits, n, alpha))
    per_input = (seconds + time.perf_counter() - start) / len(xs)
    extras = [{"sigma_chosen": float(sigmas[i]), "search_passes": extra_passes, "count": int(hits[i]),
               **(extras[i] if extras is not None else {})} for i in range(len(xs))]
    return l2_certificates(top.tolist(), abstains(p_lower), np.asarray(sigmas) * ndtri(p_lower), p_lower,
                           extra_passes + n0 + n, per_input, math.prod(xs.shape[1:]), extras)


class OptimisedNoiseCertifier(Certifier):
    """The set-up shared by the families that tune the noise of each input by ``steps`` gradient steps on ``n_opt``
    draws (DDRS, ANCER), then certify at the tuned noise with ``n0 + n`` fresh samples (``memory``: the fix of
    :mod:`rsscale.memory`)."""

    def __init__(self, model, num_classes: int, sigma: float, n0: int, n: int, alpha: float, n_opt: int, steps: int,
                 lr: float, memory: bool, batch_size: int, device):
        self.check_sampling(sigma, n0, n, alpha)
        self.n_opt = check_sample_size("n_opt", n_opt)
        self.steps = check_steps(steps)
        self.lr = check_rate(lr)
        if not isinstance(memory, bool):
            raise ValueError(f"memory must be true or false, got {memory!r}")
        self.memory = Memory() if memory else None
        self.set_model(model, num_classes, device, batch_size)


class SmoothedCertifier(Certifier):
    """A family that is Cohen's CERTIFY (:class:`rsscale.smooth.SmoothedClassifier`: select, estimate, bound,
    certificate) on a base classifier of its own; its constructor sets ``self.smoothed``."""

    smoothed: SmoothedClassifier

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self.smoothed.input_shape

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        return self.smoothed.certify_many(xs, self.n0, self.n, self.alpha, generator)


class EnsembleCertifier(SmoothedCertifier):
    """Cohen's CERTIFY on an ensemble ``self.ensemble`` of ``members`` models that logs its member evaluations
    (:func:`certify_counting_evaluations`); :meth:`recorded` adds the family's own numbers to each certificate."""

    combines_models = True
    ensemble: torch.nn.Module

    @property
    def members(self) -> int:
        return len(self.ensemble.members)

    def recorded(self) -> dict:
        return {}

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        return certify_counting_evaluations(self.smoothed, self.ensemble, xs, self.n0, self.n, self.alpha, generator,
                                            **self.recorded())


def _evaluations(log: list[torch.Tensor], num_inputs: int, n0: int, n: int) -> torch.Tensor:
    """Member evaluations per input from a log in flat order: the selection phase, then the estimation phase."""
    costs = torch.cat(log).long()
    if len(costs) != num_inputs * (n0 + n):
        raise RuntimeError(f"expected {num_inputs * (n0 + n)} logged samples, got {len(costs)}")
    selection, estimation = costs[: num_inputs * n0], costs[num_inputs * n0:]
    return selection.view(num_inputs, n0).sum(1) + estimation.view(num_inputs, n).sum(1)


def certify_counting_evaluations(smoothed: SmoothedClassifier, ensemble: torch.nn.Module, xs, n0: int, n: int,
                                 alpha: float, generator=None, **extra) -> list[Certificate]:
    """Cohen's CERTIFY on a smoothed ensemble that logs its member evaluations (``ensemble.log`` while
    ``ensemble.recording``); each certificate records ``members``, ``extra``, the input's ``model_evaluations`` and
    ``evaluations_per_sample`` (k for a plain ensemble, less with early exit or consensus)."""
    ensemble.log, ensemble.recording = [], True
    try:
        certs = smoothed.certify_many(xs, n0, n, alpha, generator)
        evaluations = _evaluations(ensemble.log, len(xs), n0, n).tolist()
    finally:
        ensemble.log, ensemble.recording = [], False
    for cert, spent in zip(certs, evaluations, strict=True):
        cert.extra.update({"members": len(ensemble.members), **extra, "model_evaluations": int(spent),
                           "evaluations_per_sample": spent / (n0 + n)})
    return certs
