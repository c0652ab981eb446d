"""Smoothing distributions and the certified radius each one implies.

A smoothing distribution ``D`` defines the smoothed classifier
``g(x) = argmax_c P_{e ~ D}(f(x + e) = c)``.  If a lower confidence bound
``p_A`` on the probability of the top class exceeds 1/2, ``g`` is constant on
a ball whose radius depends only on ``D`` and ``p_A``.  Each distribution
knows how to draw noise into a preallocated tensor (the sampling engine's hot
loop calls :meth:`NoiseDistribution.sample_`) and how to turn ``p_A`` into a
radius in its native norm; :func:`convert_radius` carries a radius to the
other l_p norms.

References: Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via
Randomized Smoothing", ICML 2019 (Gaussian, Theorem 1); Teng, Lee & Yuan,
"l1 Adversarial Robustness Certificates: a Randomized Smoothing Approach",
2020 (Laplace); Yang et al., "Randomized Smoothing of All Shapes and Sizes",
ICML 2020 (uniform, l1); Li et al., "Double Sampling Randomized Smoothing", ICML
2022 (the truncated Gaussian, as DSRS's secondary distribution).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch
from scipy.special import gammainc, gammaincinv
from scipy.stats import norm as _std_normal

#: The l_p norms every certificate reports, by name, with their exponent p.
NORMS: dict[str, float] = {"l1": 1.0, "l2": 2.0, "linf": math.inf}


def convert_radius(radius: float, from_norm: str, to_norm: str, dim: int) -> float:
    """Largest l_q ball inside a certified l_p ball of the given radius.

    For q >= p, ``||v||_p <= d^(1/p - 1/q) ||v||_q`` so the l_q ball of radius
    ``r / d^(1/p - 1/q)`` lies inside the l_p ball of radius r.  For q < p,
    ``||v||_p <= ||v||_q``, so the l_q ball of the same radius lies inside.
    """
    for name in (from_norm, to_norm):
        if name not in NORMS:
            raise ValueError(f"unknown norm {name!r}; expected one of {sorted(NORMS)}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    p, q = NORMS[from_norm], NORMS[to_norm]
    if q <= p:
        return float(radius)
    exponent = 1.0 / p - (0.0 if math.isinf(q) else 1.0 / q)
    return float(radius) / dim**exponent


class NoiseDistribution(ABC):
    """A smoothing distribution: how to sample it and what it certifies."""

    #: Name used in result files and configs.
    name: str
    #: The norm in which :meth:`radius` is tight.
    native_norm: str
    #: Whether one draw may be added to several inputs (the sampler's ``shared_noise``): true when every row of
    #: :meth:`sample_` is an i.i.d. draw whatever its position in the batch and whichever input it will go to.
    shareable_across_inputs: bool = True

    @abstractmethod
    def sample_(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Fill ``out`` in place with i.i.d. noise draws and return it."""

    @abstractmethod
    def radius(self, p_lower: float) -> float:
        """Certified radius in :attr:`native_norm` for a top-class bound ``p_lower``.

        Returns 0.0 when ``p_lower <= 1/2`` (nothing is certified).
        """

    @abstractmethod
    def describe(self) -> dict:
        """Parameters that identify the distribution, for provenance."""

    def radii(self, p_lower: float, dim: int) -> dict[str, float]:
        """The certified radius in every norm of :data:`NORMS`."""
        native = self.radius(p_lower)
        return {name: convert_radius(native, self.native_norm, name, dim) for name in NORMS}


#: The largest noise scale (sigma, Laplace scale, ...) accepted.  Inputs lie in [0, 1], so any scale beyond a few
#: units already drowns them; this bound only keeps arithmetic finite: draws of a few dozen scales, radii of a few
#: dozen scales and squared norms over a million coordinates (``1e6 * (30 * 1e15)^2 < 3.4e38``) stay finite in
#: float32.
MAX_SCALE = 1e15


def check_scale_bound(name: str, value: float) -> float:
    """Return ``value``, or raise if it exceeds :data:`MAX_SCALE` (its noise and radii would overflow float32)."""
    if value > MAX_SCALE:
        raise ValueError(f"{name} = {value:g} is too large: noise scales above {MAX_SCALE:g} give draws and radii "
                         f"that overflow float32 (inputs lie in [0, 1])")
    return value


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return check_scale_bound(name, value)


class Gaussian(NoiseDistribution):
    """Isotropic Gaussian noise N(0, sigma^2 I).

    Certificate (Cohen et al. 2019, Thm. 1): if ``P(f(x + e) = c_A) >= p_A >
    1/2`` then ``g(x + delta) = c_A`` for all ``||delta||_2 < sigma *
    Phi^-1(p_A)``.
    """

    name = "gaussian"
    native_norm = "l2"

    def __init__(self, sigma: float):
        self.sigma = _positive("sigma", sigma)

    def sample_(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return out.normal_(0.0, self.sigma, generator=generator)

    def radius(self, p_lower: float) -> float:
        if p_lower <= 0.5:
            return 0.0
        return float(self.sigma * _std_normal.ppf(p_lower))

    def describe(self) -> dict:
        return {"name": self.name, "sigma": self.sigma}

    def __repr__(self) -> str:
        return f"Gaussian(sigma={self.sigma})"


class Laplace(NoiseDistribution):
    """I.i.d. Laplace noise with density ``exp(-|z|_1 / scale) / (2 scale)^d``.

    Certificate (Teng et al. 2020, Thm. 1): ``||delta||_1 < -scale * ln(2 (1 -
    p_A))``.  Per-coordinate standard deviation ``sqrt(2) * scale``.
    """

    name = "laplace"
    native_norm = "l1"

    def __init__(self, scale: float):
        self.scale = _positive("scale", scale)

    def sample_(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # inverse CDF: u ~ U(-1/2, 1/2), z = -scale * sign(u) * ln(1 - 2|u|)
        out.uniform_(-0.5, 0.5, generator=generator)
        sign = out.sign()
        # |u| = 1/2 (probability 2^-24 in float32) would give an infinite draw
        return out.abs_().clamp_(max=0.5 - 2.0**-25).mul_(-2.0).log1p_().mul_(sign).mul_(-self.scale)

    def radius(self, p_lower: float) -> float:
        if p_lower <= 0.5:
            return 0.0
        return float(-self.scale * math.log(2.0 * (1.0 - p_lower))) if p_lower < 1 else math.inf

    def describe(self) -> dict:
        return {"name": self.name, "scale": self.scale}

    def __repr__(self) -> str:
        return f"Laplace(scale={self.scale})"


class Uniform(NoiseDistribution):
    """I.i.d. uniform noise on ``[-half_width, half_width]^d``.

    Certificate (Yang et al. 2020, l1 uniform): ``||delta||_1 < 2 half_width
    (p_A - 1/2)``.  Per-coordinate standard deviation ``half_width / sqrt(3)``.
    """

    name = "uniform"
    native_norm = "l1"

    def __init__(self, half_width: float):
        self.half_width = _positive("half_width", half_width)

    def sample_(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return out.uniform_(-self.half_width, self.half_width, generator=generator)

    def radius(self, p_lower: float) -> float:
        if p_lower <= 0.5:
            return 0.0
        return float(2.0 * self.half_width * (p_lower - 0.5))

    def describe(self) -> dict:
        return {"name": self.name, "half_width": self.half_width}

    def __repr__(self) -> str:
        return f"Uniform(half_width={self.half_width})"


def _radial_sample_(out: torch.Tensor, generator: torch.Generator, scale, dof, ball_mass) -> torch.Tensor:
    """Fill ``out`` (rows = samples) with a radial law: a uniform direction times the radius
    ``s * sqrt(2 * G^-1(v * m))``, G the regularized lower incomplete gamma function of order ``dof(d) / 2``,
    v ~ U(0, 1) and m = ``ball_mass(d)`` (1: no truncation), so that ``(||z|| / s)^2 ~ chi^2_dof`` restricted to the
    ball; ``scale`` is s as a number or a function of d."""
    rows = out.shape[0]
    dim = out[0].numel() if rows else 0
    out.normal_(0.0, 1.0, generator=generator)
    if rows == 0:
        return out
    v = torch.rand(rows, generator=generator, device=out.device, dtype=torch.float64).cpu().numpy()
    s = scale(dim) if callable(scale) else scale
    radius = s * np.sqrt(2.0 * gammaincinv(dof(dim) / 2, v * ball_mass(dim)))
    factor = torch.as_tensor(radius, device=out.device) / out.flatten(1).double().norm(dim=1)
    return out.mul_(factor.to(out.dtype).view(rows, *([1] * (out.ndim - 1))))


class TruncatedGaussian(NoiseDistribution):
    """N(0, sigma^2 I_d) conditioned on the l2 ball ``||z||_2 <= radius_T``.

    Each sample is ``R u`` with ``u`` uniform on the unit sphere (a normalized
    standard normal vector) and ``R`` drawn by inverse CDF from the chi
    distribution with d degrees of freedom, scaled by sigma and truncated at
    ``radius_T``: ``R^2 / (2 sigma^2) = Gamma^-1_{d/2}(v * Gamma_{d/2}(T^2 / (2
    sigma^2)))`` with ``v ~ U(0, 1)`` and Gamma_a the regularized lower incomplete
    gamma function (no rejection, which would be hopeless in high d).  The norm
    is taken over all non-batch dimensions, so d is the number of elements of
    one sample.

    This is the secondary distribution Q of DSRS (Li et al. 2022); smoothing
    with it alone is not supported, so :meth:`radius` raises
    NotImplementedError.
    """

    name = "truncated_gaussian"
    native_norm = "l2"

    def __init__(self, sigma: float, radius_T: float):
        self.sigma = _positive("sigma", sigma)
        self.radius_T = _positive("radius_T", radius_T)

    def ball_mass(self, dim: int) -> float:
        """P(||z|| <= radius_T) for z ~ N(0, sigma^2 I_dim) (the chi-square CDF at (T / sigma)^2)."""
        return float(gammainc(dim / 2, 0.5 * (self.radius_T / self.sigma) ** 2))

    def sample_(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return _radial_sample_(out, generator, self.sigma, lambda dim: dim, self.ball_mass)

    def radius(self, p_lower: float) -> float:
        raise NotImplementedError("TruncatedGaussian is only DSRS's secondary distribution; it certifies nothing alone")

    def describe(self) -> dict:
        return {"name": self.name, "sigma": self.sigma, "radius_T": self.radius_T}

    def __repr__(self) -> str:
        return f"TruncatedGaussian(sigma={self.sigma}, radius_T={self.radius_T})"


class GeneralizedGaussian(NoiseDistribution):
    """The generalized Gaussian P_k, density ``~ ||z||^(-2k) exp(-||z||^2 / (2 sigma'^2))`` on R^d, 0 <= k < d/2,
    optionally restricted to the ball ``||z|| <= radius_T``.

    ``sigma' = sigma sqrt(d / (d - 2k))`` keeps ``E||z||^2 = d sigma^2`` (Zhang et al., "Black-Box Certification
    with Randomized Smoothing: A Functional Optimization Based Framework", NeurIPS 2020; Li et al., "Double
    Sampling Randomized Smoothing", ICML 2022, which uses P_k as the primary and P_k on a ball as the secondary).
    The radial law: ``||z||^2 / sigma'^2 ~ chi^2_{d - 2k}``; the direction is uniform.  A sample is a normalized
    standard normal vector times ``sigma' sqrt(2 Gamma^-1_{(d-2k)/2}(v Z))``, v ~ U(0, 1), Z the ball's mass
    (1 without a ball).  d is the number of elements of one sample; k = 0 is N(0, sigma^2 I).

    Its l2 certificate needs d (the Neyman-Pearson radius is a 1-D integral,
    :func:`rsscale.methods.dsrs.np_radius`), so :meth:`radius` raises NotImplementedError.
    """

    name = "generalized_gaussian"
    native_norm = "l2"

    def __init__(self, sigma: float, k: float, radius_T: float | None = None):
        self.sigma = _positive("sigma", sigma)
        k = float(k)
        if not (math.isfinite(k) and k >= 0):
            raise ValueError(f"k must be a finite number >= 0, got {k}")
        self.k = k
        self.radius_T = None if radius_T is None else _positive("radius_T", radius_T)

    def dof(self, dim: int) -> float:
        """d - 2k, the radial law's degrees of freedom; ValueError unless 0 <= k < d/2."""
        if not self.k < dim / 2:
            raise ValueError(f"k must lie in [0, d/2) = [0, {dim / 2}), got k={self.k} for d={dim}")
        return dim - 2 * self.k

    def scale(self, dim: int) -> float:
        """sigma' = sigma sqrt(d / (d - 2k))."""
        return self.sigma * math.sqrt(dim / self.dof(dim))

    def ball_mass(self, dim: int) -> float:
        """P_k(||z|| <= radius_T) (1 without a ball)."""
        if self.radius_T is None:
            return 1.0
        return float(gammainc(self.dof(dim) / 2, 0.5 * (self.radius_T / self.scale(dim)) ** 2))

    def sample_(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return _radial_sample_(out, generator, self.scale, self.dof, self.ball_mass)

    def radius(self, p_lower: float) -> float:
        raise NotImplementedError("the generalized Gaussian's radius depends on d: use rsscale.methods.dsrs.np_radius")

    def describe(self) -> dict:
        return {"name": self.name, "sigma": self.sigma, "k": self.k, "radius_T": self.radius_T}

    def __repr__(self) -> str:
        return f"GeneralizedGaussian(sigma={self.sigma}, k={self.k}, radius_T={self.radius_T})"


#: Noise families by name, each built from a per-coordinate standard deviation sigma.
FAMILIES = {
    "gaussian": lambda sigma: Gaussian(sigma),
    "laplace": lambda sigma: Laplace(sigma / math.sqrt(2.0)),
    "uniform": lambda sigma: Uniform(sigma * math.sqrt(3.0)),
}


def noise_from_sigma(family: str, sigma: float) -> NoiseDistribution:
    """The distribution of a family whose coordinates have standard deviation ``sigma``.

    Matching the variance makes families comparable at the same "noise level".
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown noise family {family!r}; expected one of {sorted(FAMILIES)}")
    return FAMILIES[family](_positive("sigma", sigma))


class DiagonalGaussian(NoiseDistribution):
    """Anisotropic Gaussian N(0, diag(theta^2)), one scale vector theta per input.

    Certificate (Eiras et al., "ANCER", TMLR 2022, Thm. 1; Cohen et al. after
    the change of variables z / theta): if ``P(f(x + e) = c_A) >= p_A > 1/2``
    then g is constant on the ellipsoid ``||delta / theta||_2 < Phi^-1(p_A)``,
    which holds the l2 ball of radius ``min(theta) Phi^-1(p_A)``.

    ``DiagonalGaussian(theta)`` is one distribution; :meth:`start` gives the
    samples of input i (flat sampler index ``i * num_samples + j``) the scales
    ``thetas[i]``, so one :meth:`rsscale.sampling.Sampler.counts` call serves
    inputs with different thetas.  Call it before each such call.
    """

    name = "diagonal_gaussian"
    native_norm = "l2"

    def __init__(self, theta):
        self.start(torch.as_tensor(theta, dtype=torch.float32)[None], None)

    def start(self, thetas, num_samples: int | None) -> DiagonalGaussian:
        """Scales ``thetas`` ``[inputs, *shape]`` for the next ``counts`` call of ``num_samples`` per input
        (``None``: every row uses ``thetas[0]``)."""
        thetas = torch.as_tensor(thetas, dtype=torch.float32)
        if not bool(torch.isfinite(thetas).all()) or bool((thetas <= 0).any()):
            raise ValueError("every theta (per-coordinate standard deviation) must be a finite number > 0")
        self.thetas, self.num_samples, self.cursor = thetas, num_samples, 0
        return self

    def sample_(self, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rows = out.shape[0]
        if self.num_samples is None:
            owners = torch.zeros(rows, dtype=torch.long)
        else:
            owners = torch.arange(self.cursor, self.cursor + rows) // self.num_samples
        self.cursor += rows
        out.normal_(0.0, 1.0, generator=generator)
        return out.mul_(self.thetas[owners].to(out.device).view(rows, *out.shape[1:]))

    def radius(self, p_lower: float) -> float:
        """The l2 radius ``min(theta) Phi^-1(p_lower)`` of the one distribution (not after :meth:`start`)."""
        if len(self.thetas) != 1:
            raise ValueError("the radius depends on each input's theta: use min(theta_i) Phi^-1(p_lower)")
        if p_lower <= 0.5:
            return 0.0
        return float(self.thetas.min()) * float(_std_normal.ppf(p_lower))

    def describe(self) -> dict:
        return {"name": self.name}
