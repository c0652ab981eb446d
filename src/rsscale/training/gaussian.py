"""Gaussian noise augmentation (Cohen et al. 2019, Sec. 4).

Minimises the cross-entropy of the base classifier on ``x + N(0, sigma^2 I)``,
one fresh noise draw per example and step, so that f is accurate under the
noise it will be smoothed with.  ``sigma = 0`` trains on clean inputs.
Cost per example: one forward and one backward pass (the unit in which the
other objectives' costs are reported).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsscale.training._common import check_sigma


class GaussianAugmentation:
    name = "gaussian"

    def __init__(self, sigma: float):
        self.sigma = check_sigma(sigma)

    def __call__(self, model, x, y, generator):
        noisy = x + self.sigma * torch.randn(x.shape, generator=generator, device=x.device) if self.sigma else x
        return F.cross_entropy(model(noisy), y), x.shape[0], x.shape[0]

    def describe(self) -> dict:
        return {"objective": "gaussian", "sigma": self.sigma, "passes_per_example": {"forward": 1, "backward": 1}}
