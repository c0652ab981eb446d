"""Cohen et al. (ICML 2019): CERTIFY with n0 + n samples.

The baseline every other family is compared with; the algorithm itself lives
in :class:`rsscale.smooth.SmoothedClassifier`.  ``noise`` selects the
smoothing family at per-coordinate standard deviation ``sigma``: Gaussian
(l2 certificate, Cohen et al.), Laplace (l1, Teng et al. 2020) or uniform (l1,
Yang et al. 2020); the CERTIFY algorithm is the same for all three.
``autocast``, ``channels_last`` and ``compile`` are the sampling engine's
options (:class:`rsscale.sampling.Sampler`), recorded in :meth:`settings`.
"""

from __future__ import annotations

import torch

from rsscale.bounds import check_alpha
from rsscale.certificate import Certificate
from rsscale.methods.base import Certifier, register
from rsscale.noise import noise_from_sigma
from rsscale.smooth import SmoothedClassifier, check_selection_and_estimation


@register
class Cohen(Certifier):
    name = "cohen"
    summary = "RS with a Clopper-Pearson bound on p_A; Gaussian radius sigma * Phi^-1(p_A)"

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000,
                 alpha: float = 0.001, batch_size: int = 1000, device=None, noise: str = "gaussian",
                 autocast: str | None = None, channels_last: bool = False, compile: bool = False):
        self.smoothed = SmoothedClassifier(model, num_classes, noise_from_sigma(noise, sigma), batch_size, device,
                                           autocast=autocast, channels_last=channels_last, compile=compile)
        self.n0, self.n = check_selection_and_estimation(n0, n)
        self.alpha = check_alpha(alpha)
        self.sigma = float(sigma)

    def certify(self, x: torch.Tensor, generator=None) -> Certificate:
        return self.smoothed.certify(x, self.n0, self.n, self.alpha, generator)

    def certify_many(self, xs: torch.Tensor, generator=None) -> list[Certificate]:
        return self.smoothed.certify_many(xs, self.n0, self.n, self.alpha, generator)

    def settings(self) -> dict:
        return {"sigma": self.sigma, "noise": self.smoothed.noise.describe(), "n0": self.n0, "n": self.n,
                "alpha": self.alpha, **self.smoothed.sampler.settings()}
