"""The curse of dimensionality on synthetic data: the l_inf radius falls as d^(-1/2)."""

import math

import numpy as np
import torch

from rsscale import Gaussian, SmoothedClassifier
from rsscale.data import make_synthetic
from rsscale.experiments.dimension import fit_slope


class MeanDifferenceClassifier(torch.nn.Module):
    """The linear rule w.x + b from the class means: near Bayes-optimal for isotropic classes."""

    def __init__(self, dataset):
        super().__init__()
        m0 = dataset.x_train[dataset.y_train == 0].mean(0)
        m1 = dataset.x_train[dataset.y_train == 1].mean(0)
        self.w = (m1 - m0) / (m1 - m0).norm()
        self.b = -float(self.w @ (m0 + m1)) / 2
        self.input_shape = (dataset.dim,)

    def forward(self, x):
        score = x @ self.w + self.b
        return torch.stack([-score, score], dim=1)


def test_fit_slope_recovers_a_power_law():
    d = np.array([10, 100, 1000, 10_000])
    slope, se = fit_slope(d, 3.0 * d**-0.5)
    assert math.isclose(slope, -0.5, abs_tol=1e-12) and se < 1e-9
    slope, _ = fit_slope(d, [1.0, 0.0, 0.01, 0.001])  # zeros are left out of the log fit
    assert math.isclose(slope, -1.0, rel_tol=1e-9)


def test_linf_radius_slope_is_minus_one_half_on_the_synthetic_sweep():
    dims = [10, 100, 1_000, 10_000, 100_000]
    acr_l2, acr_linf = [], []
    for dim in dims:
        data = make_synthetic(dim, separation=2.0, spread=0.3, num_train=200, num_test=20, seed=0)
        smooth = SmoothedClassifier(MeanDifferenceClassifier(data), 2, Gaussian(0.25), batch_size=2000, device="cpu")
        certs = smooth.certify_many(data.x_test, n0=20, n=300, alpha=0.001, generator=torch.Generator().manual_seed(0))
        correct = np.array([c.prediction == int(y) for c, y in zip(certs, data.y_test, strict=True)])
        acr_l2.append(np.mean(np.where(correct, [c.radii["l2"] for c in certs], 0.0)))
        acr_linf.append(np.mean(np.where(correct, [c.radii["linf"] for c in certs], 0.0)))
    slope_l2, _ = fit_slope(dims, acr_l2)
    slope_linf, _ = fit_slope(dims, acr_linf)
    assert abs(slope_l2) < 0.05, acr_l2  # the l2 certificate does not degrade with d here ...
    assert abs(slope_linf + 0.5) < 0.05, acr_linf  # ... so the l_inf one falls as d^(-1/2)
