"""Cohen et al. (ICML 2019): Gaussian smoothing, CERTIFY with n0 + n samples.

The baseline every other family is compared with; the algorithm itself lives
in :class:`rsscale.smooth.SmoothedClassifier`.
"""

from __future__ import annotations

import torch

from rsscale.bounds import check_alpha
from rsscale.certificate import Certificate
from rsscale.methods.base import Certifier, register
from rsscale.noise import Gaussian
from rsscale.smooth import SmoothedClassifier, check_selection_and_estimation


@register
class Cohen(Certifier):
    name = "cohen"
    summary = "Gaussian RS, Clopper-Pearson bound on p_A, radius sigma * Phi^-1(p_A)"

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000,
                 alpha: float = 0.001, batch_size: int = 1000, device=None):
        self.smoothed = SmoothedClassifier(model, num_classes, Gaussian(sigma), batch_size, device)
        self.n0, self.n = check_selection_and_estimation(n0, n)
        self.alpha = check_alpha(alpha)

    def certify(self, x: torch.Tensor, generator=None) -> Certificate:
        return self.smoothed.certify(x, self.n0, self.n, self.alpha, generator)

    def certify_many(self, xs: torch.Tensor, generator=None) -> list[Certificate]:
        return self.smoothed.certify_many(xs, self.n0, self.n, self.alpha, generator)

    def settings(self) -> dict:
        return {"sigma": self.smoothed.noise.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha}
