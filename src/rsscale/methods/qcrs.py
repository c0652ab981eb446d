"""QCRS: input-specific sigma by quasiconcave search (Kung & Chen, "Towards Large Certified Radius in Randomized
Smoothing using Quasiconcave Optimization", AAAI 2024).

Per input x, assume the certified radius ``R(s) = s Phi^-1(p_A(x; s))`` is quasiconcave in the noise level s, and
find its maximiser by bisection on log s over ``[low sigma, high sigma]``: at the midpoint m compare cheap estimates
of ``R(m / (1 + probe))`` and ``R(m (1 + probe))`` (``n_search`` samples each, the same standard normal draws scaled
by both levels, so the comparison is not swamped by sampling noise) and keep the half where R increases.  Each
estimate is the radius Cohen's bound would give from those samples, ``s Phi^-1(CP_lower(k, n_search, alpha))`` with k
the count of the most frequent class (negative below 1/2, so the search still sees which way R rises).  After
``steps`` halvings the chosen level sigma(x) is the midpoint of the final interval, and a fresh Cohen CERTIFY (n0 + n
samples, alpha) at sigma(x) gives the certificate.  Cost: ``2 steps n_search`` search passes on top of Cohen's n0 + n
(7 x 1000 = 7 % of 1e5 at the defaults).  The paper's exact search rule and range were not available to check; the
centred slope test, the range and the CP-based estimate are this implementation's choices.

NOT a valid certificate for one smoothed classifier: sigma depends on x, so each input is certified for a different
smoothed classifier g_sigma(x); a point x' inside the ball of x gets its own sigma(x') and g_sigma(x') may disagree
with g_sigma(x) there (Sukenik, Kuvshinov & Guennemann, "Intriguing Properties of Input-Dependent Randomized
Smoothing", ICML 2022).  The per-input statement (g at this input's sigma is constant on the ball, with probability
>= 1 - alpha) does hold, because the final samples are fresh.

Per-input noise levels share forward passes: :class:`ScaledGaussian` scales the standard normal rows of each batch
by the level of the input that owns them (the sampler's flat index ``i * num_samples + j``), so one
:meth:`rsscale.sampling.Sampler.counts` call serves all inputs, each at its own sigma.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.special import ndtri

from rsscale.bounds import check_alpha, clopper_pearson_lower
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.methods.base import BatchCertifier, register
from rsscale.methods.iss import l2_radii
from rsscale.noise import Gaussian, NoiseDistribution
from rsscale.sampling import Sampler
from rsscale.smooth import check_sample_size, check_selection_and_estimation


class ScaledGaussian(NoiseDistribution):
    """N(0, sigma_i^2 I) for the samples of input i: call :meth:`start` before each ``Sampler.counts`` call.

    The sampler draws batches over consecutive flat indices; a cursor tracks the flat index of the next row, and
    each row is scaled by the level of its owner ``index // num_samples``.
    """

    name = "gaussian_per_input"
    native_norm = "l2"

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


def _cohen_radius(sigmas, counts, n: int, alpha: float) -> np.ndarray:
    """``sigma Phi^-1(CP_lower(k, n, alpha))`` per input (negative below 1/2; -inf never: the bound is clipped)."""
    p = np.clip(np.atleast_1d(clopper_pearson_lower(counts, n, alpha)), 1e-12, 1.0)
    return np.asarray(sigmas) * ndtri(p)


def certify_at_sigmas(sampler: Sampler, noise: ScaledGaussian, xs, sigmas, n0: int, n: int, alpha: float,
                      generator, extra_passes: int = 0, seconds: float = 0.0, extras=None) -> list[Certificate]:
    """Cohen's CERTIFY for each input i at its own level ``sigmas[i]`` (fresh n0 selection and n estimation samples):
    c_A from the selection, ``p_A = CP_lower(k, n, alpha)``, radius ``sigmas[i] Phi^-1(p_A)`` or abstain below 1/2.
    ``extra_passes`` (the search's) is added to ``forward_passes``, ``seconds`` is the batch's time before this call."""
    start = time.perf_counter()
    noise.start(sigmas, n0)
    top = sampler.counts(xs, n0, generator).argmax(dim=1)
    noise.start(sigmas, n)
    hits = sampler.counts(xs, n, generator).gather(1, top[:, None]).squeeze(1).numpy()
    p_lower = np.atleast_1d(clopper_pearson_lower(hits, n, alpha))
    per_input = (seconds + time.perf_counter() - start) / len(xs)
    dim = math.prod(xs.shape[1:])
    certs = []
    for i, c_a in enumerate(top.tolist()):
        abstain = p_lower[i] < 0.5
        radii = l2_radii(0.0 if abstain else float(sigmas[i] * ndtri(p_lower[i])), dim)
        certs.append(Certificate(
            prediction=ABSTAIN if abstain else c_a, radius=radii["l2"], p_lower=float(p_lower[i]),
            forward_passes=extra_passes + n0 + n, seconds=per_input, radii=radii,
            extra={"sigma_chosen": float(sigmas[i]), "search_passes": extra_passes, "count": int(hits[i]),
                   **(extras[i] if extras is not None else {})},
        ))
    return certs


@register
class QCRS(BatchCertifier):
    """Bisection on log sigma per input with cheap radius estimates, then Cohen at the chosen sigma (docstring)."""

    name = "qcrs"
    sound = False
    unsound_reason = ("sigma is chosen per input, so each input is certified for a different smoothed classifier; "
                      "the ball around x is not certified for the classifier that answers at the points inside it "
                      "(Sukenik et al. 2022)")
    summary = "input-specific sigma (Kung & Chen): bisection on sigma assuming R(sigma) quasiconcave, then Cohen"

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                 n_search: int = 500, steps: int = 7, low: float = 0.5, high: float = 2.0, probe: float = 0.1,
                 batch_size: int = 1000, device=None):
        self.n0, self.n = check_selection_and_estimation(n0, n)
        self.alpha = check_alpha(alpha)
        self.sigma = Gaussian(sigma).sigma
        self.n_search = check_sample_size("n_search", n_search)
        if isinstance(steps, bool) or int(steps) != steps or steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        self.steps = int(steps)
        low, high, probe = float(low), float(high), float(probe)
        if not (0 < low <= 1 <= high and math.isfinite(high)):
            raise ValueError(f"the search range [low, high] (multiples of sigma) needs 0 < low <= 1 <= high, "
                             f"got [{low}, {high}]")
        if not (0 < probe < 1):
            raise ValueError(f"probe (relative step of the slope test) must lie in (0, 1), got {probe}")
        self.low, self.high, self.probe = low, high, probe
        self._set_model(model, num_classes, device)
        self.noise = ScaledGaussian()
        self.sampler = Sampler(self.model, self.noise, self.num_classes, check_sample_size("batch_size", batch_size),
                               self.device)

    def _counts(self, xs, sigmas, num_samples, generator):
        self.noise.start(sigmas, num_samples)
        return self.sampler.counts(xs, num_samples, generator)

    def _search_radius(self, xs, sigmas, seed: int):
        counts = self._counts(xs, sigmas, self.n_search, torch.Generator().manual_seed(seed))
        return _cohen_radius(sigmas, counts.max(dim=1).values.numpy(), self.n_search, self.alpha)

    def choose_sigmas(self, xs, generator=None) -> np.ndarray:
        """The bisection of the module docstring for a batch of inputs (shared forward passes)."""
        lo = np.full(len(xs), math.log(self.low * self.sigma))
        hi = np.full(len(xs), math.log(self.high * self.sigma))
        for _ in range(self.steps):
            mid = np.exp((lo + hi) / 2)
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))  # common random numbers for both levels
            rising = (self._search_radius(xs, mid * (1 + self.probe), seed)
                      > self._search_radius(xs, mid / (1 + self.probe), seed))
            lo, hi = np.where(rising, np.log(mid), lo), np.where(rising, hi, np.log(mid))
        return np.exp((lo + hi) / 2)

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        start = time.perf_counter()
        sigmas = self.choose_sigmas(xs, generator)
        return certify_at_sigmas(self.sampler, self.noise, xs, sigmas, self.n0, self.n, self.alpha, generator,
                                 extra_passes=2 * self.steps * self.n_search, seconds=time.perf_counter() - start)

    def settings(self) -> dict:
        return {"sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha, "n_search": self.n_search,
                "steps": self.steps, "low": self.low, "high": self.high, "probe": self.probe}
