"""DDRS: data-dependent sigma by gradient ascent (Alfarra, Bibi, Torr & Ghanem, "Data Dependent Randomized
Smoothing", UAI 2022), as published (without the memory-based fix).

Per input x, starting from the model's sigma, maximise the soft radius

    R(s) = s / 2 (Phi^-1(psi_1(s)) - Phi^-1(psi_2(s))),   psi(s) = mean_i softmax(f(x + s e_i)),

psi_1 >= psi_2 its two largest entries, by ``steps`` steps of gradient ascent ``s <- clip(s + lr dR/ds)`` with fresh
reparameterised draws e_1..e_m ~ N(0, I) (``m = n_opt``) per step; s is kept in ``[low sigma, high sigma]`` and psi
in [1e-6, 1 - 1e-6].  Deviation from the paper: neither the paper nor its authors' code (MotasemAlfarra/
Data_Dependent_Randomized_Smoothing, ``optimize_sigma.py`` and ``ddsmoothing/optimization.py``) bounds s -- their
ascent ``s <- s + lr dR/ds`` is unconstrained and starts at the training sigma; they clip psi to [0.02, 0.98].  The
clamp to ``[0.25 sigma, 4 sigma]`` (the defaults of ``low``, ``high``) is this implementation's guard that keeps s
positive and near the noise the model was trained at; it binds only where the unconstrained ascent would leave that
range.  Then Cohen's CERTIFY with fresh n0 + n samples at the chosen s(x)
(:func:`rsscale.methods.common.certify_at_sigmas`).  For a model whose output does not depend differentiably on its
input (e.g. the one-hot oracles) only the explicit term ``(Phi^-1(psi_1) - Phi^-1(psi_2)) / 2`` of dR/ds remains,
which raises s while the top class leads.

NOT a valid certificate for one smoothed classifier: s depends on x, so each input is certified for a different
smoothed classifier (Sukenik, Kuvshinov & Guennemann, ICML 2022).  ``memory=True`` applies the paper's memory-based
certification (:mod:`rsscale.memory`): the certificates become mutually consistent, which is all that fix guarantees.

The optimisation needs gradients through the model, which :class:`rsscale.sampling.Sampler` (inference-mode vote
counts) does not give, so its ``steps n_opt`` differentiable passes are drawn here, inputs in chunks of
``batch_size // n_opt``; every count behind a certificate still comes from the sampler.  ``forward_passes`` counts
both; ``extra["search_passes"]`` the optimisation's.  Defaults (steps, lr, range) are this implementation's choices.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from rsscale import harness
from rsscale.certificate import Certificate
from rsscale.methods.base import register
from rsscale.methods.common import OptimisedNoiseCertifier, ScaledGaussian, certify_at_sigmas, check_sigma_range
from rsscale.sampling import device_generator


def soft_radius(model, xs: torch.Tensor, sigmas: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``s / 2 (Phi^-1(psi_1) - Phi^-1(psi_2))`` per input; ``noise`` is ``[inputs, m, *shape]`` standard normal."""
    b, m = noise.shape[:2]
    scale = sigmas.view(b, 1, *([1] * (xs.ndim - 1)))
    logits = model((xs[:, None] + scale * noise).reshape(b * m, *xs.shape[1:]))
    psi = torch.softmax(logits, dim=1).view(b, m, -1).mean(dim=1).clamp(1e-6, 1 - 1e-6)
    top = psi.topk(2, dim=1).values
    return sigmas / 2 * (torch.special.ndtri(top[:, 0]) - torch.special.ndtri(top[:, 1]))


#: DDRS's defaults here (not the paper's: see the module docstring): ascent steps, learning rate, sigma range.
STEPS, LR, LOW, HIGH = 100, 0.01, 0.25, 4.0


def isotropic_sigmas(model, xs: torch.Tensor, sigma: float, steps: int, lr: float, n_opt: int,
                     sigma_range: tuple[float, float], batch_size: int, device,
                     generator=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DDRS's per-input isotropic sigma (module docstring): ``steps`` ascent steps on the soft radius from ``sigma``,
    kept in ``[low sigma, high sigma]`` for ``sigma_range = (low, high)``, inputs in chunks of ``batch_size //
    n_opt``.  Returns the chosen sigma, the soft radius at the start and at the end (each from that step's draws),
    per input.  ANCER starts from (and is floored at) this sigma."""
    gen = device_generator(generator, device)
    xs = xs.to(device, torch.float32)
    chosen, first, last = [], [], []
    lo, hi = sigma_range[0] * sigma, sigma_range[1] * sigma
    for part in xs.split(max(1, batch_size // n_opt)):
        sigmas = torch.full((len(part),), sigma, device=device)
        start = end = torch.full((len(part),), math.nan)
        for step in range(steps):
            sigmas.requires_grad_(True)
            eps = torch.randn((len(part), n_opt, *part.shape[1:]), generator=gen, device=device)
            with torch.enable_grad():
                radius = soft_radius(model, part, sigmas, eps)
                grad = (torch.autograd.grad(radius.sum(), sigmas)[0] if radius.requires_grad
                        else torch.zeros_like(sigmas))
            end = radius.detach().cpu()
            if step == 0:
                start = end
            sigmas = (sigmas.detach() + lr * grad).clamp(lo, hi)
        chosen.append(sigmas.detach().cpu())
        first.append(start)
        last.append(end)
    return (torch.cat(chosen).double().numpy(), torch.cat(first).double().numpy(), torch.cat(last).double().numpy())


@register
class DDRS(OptimisedNoiseCertifier):
    """Gradient ascent on each input's sigma of the soft radius, then Cohen at that sigma (module docstring)."""

    name = "ddrs"
    sound = False
    unsound_reason = ("sigma is optimised per input, so each input is certified for a different smoothed classifier; "
                      "without the memory-based fix the balls are not certified for the classifier that answers at "
                      "the points inside them (Sukenik et al. 2022)")
    summary = "data-dependent sigma (Alfarra et al.): gradient ascent on the soft radius per input, then Cohen"
    settings_fields = ("sigma", "n0", "n", "alpha", "n_opt", "steps", "lr", "low", "high")

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                 n_opt: int = 100, steps: int = STEPS, lr: float = LR, low: float = LOW, high: float = HIGH,
                 memory: bool = False, batch_size: int = 1000, device=None):
        super().__init__(model, num_classes, sigma, n0, n, alpha, n_opt, steps, lr, memory, batch_size, device)
        self.low, self.high = check_sigma_range(low, high, "sigma")
        self.noise = ScaledGaussian()
        self.sampler = self.new_sampler(self.noise)

    def optimise_sigmas(self, xs: torch.Tensor, generator=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chosen sigma, soft radius at the start and at the end (each from that step's draws), per input."""
        return isotropic_sigmas(self.model, xs, self.sigma, self.steps, self.lr, self.n_opt, (self.low, self.high),
                                self.batch_size, self.device, generator)

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        start = time.perf_counter()
        sigmas, first, last = self.optimise_sigmas(xs, generator)
        extras = [{"soft_radius_start": float(a), "soft_radius_end": float(b)}
                  for a, b in zip(first, last, strict=True)]
        certs = certify_at_sigmas(self.sampler, self.noise, xs, sigmas, self.n0, self.n, self.alpha, generator,
                                  extra_passes=self.steps * self.n_opt, seconds=time.perf_counter() - start,
                                  extras=extras)
        return certs if self.memory is None else self.memory.apply(xs, certs)

    def settings(self) -> dict:
        return {**super().settings(), **({"memory": True} if self.memory is not None else {})}

    def noise_at(self, points: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        return self.optimise_sigmas(points, generator)[0]

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        """On a half-space g's class and radius do not depend on sigma (flagged unsound: sigma depends on x)."""
        return [harness.half_space_case(cls.name, "gaussian", 100, axis=None, n_opt=10, steps=3)]
