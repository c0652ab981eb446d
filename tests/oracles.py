"""Exact oracles: base classifiers whose smoothed classifier is known in closed form.

:class:`IntervalClassifier` labels an input by where its projection
``t = u . x`` (``|u| = 1``) falls among sorted thresholds.  Under Gaussian
noise N(0, sigma^2 I) the projection of the noise is N(0, sigma^2), so

    P(f(x + e) = class of [lo, hi)) = Phi((hi - t) / sigma) - Phi((lo - t) / sigma),

the smoothed classifier g depends on t only, and its true l2 robust radius at
x is the distance from t to the nearest point where g's argmax changes (found
on a fine grid, then refined by bisection).  With one threshold this is the
linear classifier of DESIGN.md: p_A = Phi(|t - a| / sigma), radius |t - a|.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm


class IntervalClassifier(torch.nn.Module):
    def __init__(self, direction: torch.Tensor, thresholds, labels, num_classes: int):
        super().__init__()
        direction = direction.flatten().double()
        self.register_buffer("u", (direction / direction.norm()).float())
        self.thresholds = np.asarray(thresholds, dtype=float)
        self.labels = np.asarray(labels, dtype=int)
        assert len(self.labels) == len(self.thresholds) + 1
        self.num_classes = num_classes
        self.input_shape = tuple(direction.shape)
        self._edges = torch.tensor(self.thresholds, dtype=torch.float32)
        self._labels = torch.tensor(self.labels)

    def forward(self, x):
        t = x.flatten(1) @ self.u
        cls = self._labels[torch.bucketize(t, self._edges, right=True)]
        return torch.nn.functional.one_hot(cls, self.num_classes).float()

    # ---- closed forms -------------------------------------------------
    def projection(self, x: torch.Tensor) -> float:
        return float(x.flatten().double() @ self.u.double())

    def input_at(self, t: float, generator: torch.Generator) -> torch.Tensor:
        """An input with projection t and a random orthogonal component."""
        z = torch.randn(self.u.shape, generator=generator, dtype=torch.float64)
        u = self.u.double()
        z = z - (z @ u) * u
        return (z + t * u).float()

    def smoothed_probs(self, t, sigma: float) -> np.ndarray:
        """Class probabilities of the smoothed classifier, shape [..., num_classes]."""
        t = np.asarray(t, dtype=float)[..., None]
        edges = np.concatenate([[-np.inf], self.thresholds, [np.inf]])
        cdf = norm.cdf((edges - t) / sigma)
        mass = np.diff(cdf, axis=-1)
        probs = np.zeros(t.shape[:-1] + (self.num_classes,))
        for j, label in enumerate(self.labels):
            probs[..., label] += mass[..., j]
        return probs

    def smoothed_class(self, t, sigma):
        return np.argmax(self.smoothed_probs(t, sigma), axis=-1)

    def true_radius(self, t: float, sigma: float, reach: float = 20.0, steps: int = 4000) -> float:
        """Distance from t to the nearest point where g's class changes (inf if none within reach * sigma)."""
        cls = self.smoothed_class(t, sigma)
        best = np.inf
        for sign in (1.0, -1.0):
            grid = t + sign * np.linspace(0.0, reach * sigma, steps)
            changed = np.nonzero(self.smoothed_class(grid, sigma) != cls)[0]
            if changed.size == 0:
                continue
            lo, hi = grid[changed[0] - 1], grid[changed[0]]
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if self.smoothed_class(mid, sigma) == cls:
                    lo = mid
                else:
                    hi = mid
            best = min(best, abs(hi - t))
        return best


def violation_rate(predictions, radii, true_classes, true_radii) -> float:
    """Fraction of certificates that claim too much: a certified (non-abstaining)
    prediction that is not g's class, or a radius beyond g's true radius."""
    predictions, radii = np.asarray(predictions), np.asarray(radii)
    true_classes, true_radii = np.asarray(true_classes), np.asarray(true_radii)
    certified = predictions >= 0
    wrong = certified & ((predictions != true_classes) | (radii > true_radii + 1e-9))
    return float(wrong.mean())


def allowed_rate(alpha: float, trials: int) -> float:
    """alpha plus three binomial standard errors of the trials."""
    return alpha + 3.0 * np.sqrt(alpha * (1 - alpha) / trials)
