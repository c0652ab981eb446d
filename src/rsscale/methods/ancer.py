"""ANCER: anisotropic sigma per input (Eiras, Alfarra, Torr, Kumar, Dokania, Ghanem & Bibi, "ANCER: Anisotropic
Certification via Sample-wise Volume Maximization", TMLR 2022), l2 variant, as published (memory fix optional).

Per input x, a per-coordinate scale vector theta (noise N(0, diag(theta^2))) starts at that input's isotropic DDRS
sigma s(x) (:func:`rsscale.methods.ddrs.isotropic_sigmas` from the model's sigma, ``iso_steps`` steps at learning rate
``iso_lr`` within ``[low sigma, high sigma]``) and takes ``steps`` Adam steps (learning rate ``lr``) of ascent on the
relaxed ellipsoid-volume objective

    geomean(theta) G + kappa min(theta) G,   G = Phi^-1(psi_1) - Phi^-1(psi_2),

psi = mean softmax of f over ``n_opt`` fresh reparameterised draws x + theta ⊙ e per step (psi clipped to
[1e-6, 1 - 1e-6]; psi_1 >= psi_2 its top two entries), each step followed by the projection ``theta <- max(theta,
s(x))`` onto the isotropic starting point, so every coordinate stays >= s(x) and the ellipsoid contains DDRS's ball.
This is the authors' pipeline (MotasemAlfarra/ANCER: ``scripts/run_optimization_dataset.py`` runs the isotropic
data-dependent optimisation first, ``ancer/optimization.py`` starts ANCER's Adam from those per-input sigmas and
projects onto them after every step).  The geometric mean is the volume's d-th root; the min term keeps the l2
radius from collapsing.  Then Cohen's CERTIFY with fresh n0 + n samples of
N(x, diag(theta^2)) (:class:`rsscale.noise.DiagonalGaussian` through the shared sampler): g_theta is constant on the
ellipsoid ``||delta / theta||_2 < Phi^-1(p_A)``.  ``cert.radius`` is its inscribed l2 radius ``min(theta)
Phi^-1(p_A)``; ``extra["proxy_radius"]`` the paper's proxy ``geomean(theta) Phi^-1(p_A)`` (the radius of the ball of
the ellipsoid's volume), ``extra["ellipsoid_scale"]`` Phi^-1(p_A).  ``steps`` (100), ``lr`` (0.04), ``kappa`` (2)
and ``n_opt`` (100) are the authors' script's defaults; the isotropic stage's defaults are DDRS's here (the script's
are 900 steps at learning rate 0.04).

NOT a valid certificate for one smoothed classifier: theta depends on x, so each input is certified for its own
smoothed classifier (Sukenik, Kuvshinov & Guennemann, ICML 2022).  ``memory=True`` applies the memory-based fix of
:mod:`rsscale.memory` (ellipsoids, with a sufficient disjointness test): the certificates become mutually
consistent, which is all that fix guarantees.  Gradients need the model, so the optimisation's differentiable
passes are drawn here (:func:`rsscale.sampling.reparameterized_probs`); ``forward_passes`` counts them and the
certification's, ``extra["search_passes"]`` the optimisation's (both stages).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.special import ndtri

from rsscale import harness
from rsscale.bounds import clopper_pearson_lower
from rsscale.certificate import Certificate
from rsscale.methods.base import register
from rsscale.methods.common import OptimisedNoiseCertifier, check_rate, check_sigma_range, check_steps, l2_certificates
from rsscale.methods.ddrs import HIGH, LOW, LR, STEPS, isotropic_sigmas
from rsscale.noise import DiagonalGaussian
from rsscale.sampling import device_generator, reparameterized_probs
from rsscale.smooth import abstains, estimate, select

#: Adam's decay rates (the paper optimises theta with Adam at PyTorch's defaults).
ADAM_BETAS = (0.9, 0.999)


@register
class ANCER(OptimisedNoiseCertifier):
    """Per-coordinate sigma maximising the ellipsoid proxy volume, then Cohen at that noise (module docstring)."""

    name = "ancer"
    sound = False
    unsound_reason = ("theta is optimised per input, so each input is certified for a different smoothed classifier; "
                      "the ellipsoid is not certified for the classifier that answers at the points inside it "
                      "(Sukenik et al. 2022)")
    summary = "ANCER (Eiras et al.): per-coordinate sigma maximising the ellipsoid volume, then Cohen at that noise"
    settings_fields = ("sigma", "n0", "n", "alpha", "n_opt", "steps", "lr", "kappa", "iso_steps", "iso_lr", "low",
                       "high")

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                 n_opt: int = 100, steps: int = 100, lr: float = 0.04, kappa: float = 2.0, iso_steps: int = STEPS,
                 iso_lr: float = LR, low: float = LOW, high: float = HIGH, memory: bool = False,
                 batch_size: int = 1000, device=None):
        super().__init__(model, num_classes, sigma, n0, n, alpha, n_opt, steps, lr, memory, batch_size, device)
        self.iso_steps, self.iso_lr = check_steps(iso_steps, "iso_steps"), check_rate(iso_lr, "iso_lr")
        self.low, self.high = check_sigma_range(low, high, "sigma")
        self.kappa = float(kappa)
        if not (self.kappa >= 0 and math.isfinite(self.kappa)):
            raise ValueError(f"kappa must be a finite number >= 0, got {kappa}")
        self.noise = DiagonalGaussian(torch.ones(1))
        self.sampler = self.new_sampler(self.noise)

    def isotropic_thetas(self, xs: torch.Tensor, generator=None) -> torch.Tensor:
        """ANCER's starting point and floor ``[inputs, *shape]``: each input's isotropic DDRS sigma on every
        coordinate."""
        sigmas = isotropic_sigmas(self.model, xs, self.sigma, self.iso_steps, self.iso_lr, self.n_opt,
                                  (self.low, self.high), self.batch_size, self.device, generator)[0]
        return torch.as_tensor(sigmas, dtype=torch.float32).view(-1, *([1] * (xs.ndim - 1))).expand(xs.shape)

    def optimise_thetas(self, xs: torch.Tensor, generator=None) -> torch.Tensor:
        """The optimised theta ``[inputs, *shape]`` (on the CPU) of each input (module docstring)."""
        floors = self.isotropic_thetas(xs, generator).to(self.device)
        gen = device_generator(generator, self.device)
        xs = xs.to(self.device, torch.float32)
        chosen = []
        chunk = max(1, self.batch_size // self.n_opt)
        for part, floor in zip(xs.split(chunk), floors.split(chunk), strict=True):
            theta = floor.clone()
            first, second = torch.zeros_like(theta), torch.zeros_like(theta)
            for step in range(1, self.steps + 1):
                eps = torch.randn((len(part), self.n_opt, *part.shape[1:]), generator=gen, device=self.device)
                theta.requires_grad_(True)
                with torch.enable_grad():
                    psi = reparameterized_probs(self.model, part, theta, eps).clamp(1e-6, 1 - 1e-6)
                    top = psi.topk(2, dim=1).values
                    gap = torch.special.ndtri(top[:, 0]) - torch.special.ndtri(top[:, 1])
                    flat = theta.flatten(1)
                    objective = (flat.log().mean(dim=1).exp() * gap + self.kappa * flat.min(dim=1).values * gap).sum()
                    grad = torch.autograd.grad(objective, theta)[0]
                theta = theta.detach()
                # Adam (Kingma & Ba 2015; betas 0.9, 0.999), ascent, then the projection onto theta >= s(x)
                first.mul_(ADAM_BETAS[0]).add_(grad, alpha=1 - ADAM_BETAS[0])
                second.mul_(ADAM_BETAS[1]).addcmul_(grad, grad, value=1 - ADAM_BETAS[1])
                unbiased = (second / (1 - ADAM_BETAS[1] ** step)).sqrt_().add_(1e-8)
                theta.addcdiv_(first, unbiased, value=self.lr / (1 - ADAM_BETAS[0] ** step))
                torch.maximum(theta, floor, out=theta)
            chosen.append(theta.cpu())
        return torch.cat(chosen)

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        start = time.perf_counter()
        thetas = self.optimise_thetas(xs, generator)
        self.noise.start(thetas, self.n0)
        top = select(self.sampler, xs, self.n0, generator)
        self.noise.start(thetas, self.n)
        hits = estimate(self.sampler, xs, self.n, top, generator)
        p_lower = np.atleast_1d(clopper_pearson_lower(hits, self.n, self.alpha))
        flat = thetas.flatten(1).double()
        lows, geomeans = flat.min(dim=1).values.numpy(), flat.log().mean(dim=1).exp().numpy()
        abstain = abstains(p_lower)
        scales = np.where(abstain, 0.0, ndtri(p_lower))
        search = (self.iso_steps + self.steps) * self.n_opt
        extras = [{"ellipsoid_scale": float(scales[i]), "theta_min": float(lows[i]), "theta_max": float(flat[i].max()),
                   "theta_geomean": float(geomeans[i]), "search_passes": search, "count": int(hits[i])}
                  for i in range(len(xs))]
        certs = l2_certificates(top.tolist(), abstain, lows * scales, p_lower, search + self.n0 + self.n, 0.0,
                                flat.shape[1], extras)
        if self.memory is not None:
            self.memory.apply(xs, certs, axes=thetas, scale_key="ellipsoid_scale")
        per_input = (time.perf_counter() - start) / len(xs)
        for cert in certs:
            cert.seconds = per_input
            cert.extra["proxy_radius"] = cert.extra["theta_geomean"] * cert.extra["ellipsoid_scale"]
        return certs

    def settings(self) -> dict:
        return {**super().settings(), "memory": self.memory is not None}

    def noise_at(self, points: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        return self.optimise_thetas(points, generator).flatten(1).double().numpy()

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        """On a half-space g_theta's class is sign(u . x) for every theta and the ellipsoid's inscribed l2 radius
        min(theta) Phi^-1(p_A) stays below |u . x| (flagged unsound: theta depends on x)."""
        return [harness.half_space_case(cls.name, "gaussian", 100, axis=None, max_trials=1000, n_opt=5, steps=3,
                                        iso_steps=3)]
