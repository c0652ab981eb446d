"""Cohen et al. (ICML 2019): CERTIFY with n0 + n samples.

The baseline every other family is compared with; the algorithm itself lives
in :class:`rsscale.smooth.SmoothedClassifier`.  ``noise`` selects the
smoothing family at per-coordinate standard deviation ``sigma``: Gaussian
(l2 certificate, Cohen et al.), Laplace (l1, Teng et al. 2020) or uniform (l1,
Yang et al. 2020); the CERTIFY algorithm is the same for all three.
``autocast``, ``channels_last``, ``compile`` and ``shared_noise`` are the
sampling engine's options (:class:`rsscale.sampling.Sampler`), recorded in
:meth:`settings`.
"""

from __future__ import annotations

import numpy as np
import torch

from rsscale import harness, mutation
from rsscale.methods.base import register
from rsscale.methods.common import SmoothedCertifier
from rsscale.noise import noise_from_sigma
from rsscale.smooth import SmoothedClassifier


@register
class Cohen(SmoothedCertifier):
    name = "cohen"
    summary = "RS with a Clopper-Pearson bound on p_A; Gaussian radius sigma * Phi^-1(p_A)"

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000,
                 alpha: float = 0.001, batch_size: int = 1000, device=None, noise: str = "gaussian",
                 autocast: str | None = None, channels_last: bool = False, compile: bool = False,
                 shared_noise: bool = False):
        self.smoothed = SmoothedClassifier(model, num_classes, noise_from_sigma(noise, sigma), batch_size, device,
                                           autocast=autocast, channels_last=channels_last, compile=compile,
                                           shared_noise=shared_noise)
        self.check_sampling(sigma, n0, n, alpha)

    def noise_at(self, points: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        return np.full(len(points), self.sigma)

    def settings(self) -> dict:
        return {**super().settings(), "noise": self.smoothed.noise.describe(), **self.smoothed.sampler.settings()}

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        """Half-spaces in d = 2 to 10,000 under Gaussian noise (tight: the rate sits just below alpha; l1 on the axis,
        l_inf on the diagonals), the l1 noises on axis-aligned half-spaces (their only closed form), each with its
        exact violation probability (:mod:`rsscale.exact`), and three classes."""
        return [harness.half_space_case(cls.name, "gaussian", 2, axis=0, exact=True),
                harness.half_space_case(cls.name, "gaussian", 2, axis=None, exact=True),
                harness.half_space_case(cls.name, "gaussian", 100, axis=None, exact=True),
                harness.half_space_case(cls.name, "gaussian", 10_000, axis=None, max_trials=200, exact=True),
                harness.half_space_case(cls.name, "laplace", 10, axis=0, family="laplace", exact=True),
                harness.half_space_case(cls.name, "uniform", 10, axis=0, family="uniform", exact=True),
                harness.three_class_case(cls.name)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.reused_selection(cls, "smoothed.sampler", "gaussian-axis-d2", 2000),
                mutation.doubled_alpha(cls, "gaussian-axis-d2", 600),
                mutation.halved_exponent(cls, "smoothed.noise", "gaussian-rotated-d100", 25)]
