"""Gaussian noise augmentation (Cohen et al. 2019, Sec. 4).

Minimises the cross-entropy of the base classifier on ``x + N(0, sigma^2 I)``,
one fresh noise draw per example and step (``m`` draws, the cross-entropy
averaged over them, when ``m > 1``), so that f is accurate under the noise it
will be smoothed with.  ``sigma = 0`` trains on clean inputs (one pass, whatever ``m``).  Cost per
example: ``m`` forward and ``m`` backward passes; ``m = 1`` is the unit in
which the other objectives' costs are reported, and ``m = k`` gives Gaussian
augmentation the pass budget of an objective that spends ``k`` per example
(e.g. MACER's ``k`` noisy copies): the study's equal-budget baseline.
"""

from __future__ import annotations

import torch.nn.functional as F

from rsscale.training._common import check_int, check_sigma, draw_noise, noisy_logits


class GaussianAugmentation:
    name = "gaussian"

    def __init__(self, sigma: float, m: int = 1):
        self.sigma = check_sigma(sigma)
        self.m = check_int("m", m, 1)

    def __call__(self, model, x, y, generator):
        if not self.sigma:  # clean training: the m copies would be identical, one pass serves them all
            return F.cross_entropy(model(x), y), x.shape[0], x.shape[0]
        logits = noisy_logits(model, x, draw_noise(x, self.m, self.sigma, generator))
        passes = self.m * x.shape[0]
        return F.cross_entropy(logits.flatten(0, 1), y.repeat(self.m)), passes, passes

    def describe(self) -> dict:
        return {"objective": "gaussian", "sigma": self.sigma, "m": self.m,
                "passes_per_example": {"forward": self.m, "backward": self.m}}
