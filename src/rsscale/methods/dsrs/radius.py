"""The validated, cached entry points of the DSRS bounds: :func:`dsrs_bound`, :func:`dsrs_radius`, :func:`np_radius`."""

from __future__ import annotations

import functools
import math

from scipy.special import (
    gammainc,
    gammaincinv,
    ndtri,
)

from rsscale.methods.dsrs.gaussian import DSRSBound
from rsscale.methods.dsrs.generalized import GeneralizedDSRSBound, ScaledGeneralizedDSRSBound
from rsscale.methods.dsrs.polar import PolarBound
from rsscale.smooth import check_positive, check_sample_size

SECONDARIES = ("truncated", "scaled")
#: sigma_q / sigma of the paper's CIFAR-10 runs (0.2, 0.4, 0.8 for sigma 0.25, 0.5, 1).
DEFAULT_SCALE_RATIO = 0.8
#: S(r) must exceed 1/2 by this much (covers quadrature and root-finding error).

def check_k(k) -> float:
    try:
        number = math.nan if isinstance(k, bool) else float(k)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    return number


def _secondary_param(sigma: float, secondary: str, truncation: float | None, sigma_q: float | None) -> float | None:
    """The validated parameter of Q: the truncation T (None: the default, which depends on d) or sigma_q."""
    if secondary not in SECONDARIES:
        raise ValueError(f"unknown secondary {secondary!r}; expected one of {list(SECONDARIES)}")
    unused = ("sigma_q", sigma_q) if secondary == "truncated" else ("truncation", truncation)
    if unused[1] is not None:
        raise ValueError(f"{unused[0]}={unused[1]!r} does not apply to secondary={secondary!r}")
    if secondary == "truncated":
        return None if truncation is None else check_positive("truncation", truncation)
    param = DEFAULT_SCALE_RATIO * sigma if sigma_q is None else check_positive("sigma_q", sigma_q)
    if not param < sigma:
        raise ValueError(f"sigma_q must be smaller than sigma={sigma}, got {param}")
    return param


@functools.lru_cache(maxsize=64)
def _generalized_bound(sigma: float, dim: int, k: float, secondary: str, param: float | None) -> PolarBound:
    if not (dim >= 3 and k < (dim - 1) / 2):
        raise ValueError(f"the generalized Gaussian needs d >= 3 and 0 <= k < (d - 1)/2 (a finite Lipschitz "
                         f"constant), got k={k} for d={dim}")
    if secondary == "scaled":
        return ScaledGeneralizedDSRSBound(sigma, dim, k, param)
    if param is None:  # the T with P_k(||z|| <= T) = 1/2
        param = sigma * math.sqrt(dim / (dim - 2 * k)) * math.sqrt(2 * gammaincinv(dim / 2 - k, 0.5))
    return GeneralizedDSRSBound(sigma, dim, k, param)


def np_radius(p_lower: float, sigma: float, dim: int, k: float = 0.0) -> float:
    """The Neyman-Pearson l2 radius of the generalized Gaussian P_k (k = 0: sigma Phi^-1(pL)); 0 when pL <= 1/2."""
    sigma, k = check_positive("sigma", sigma), check_k(k)
    if not 0.0 <= p_lower <= 1.0:
        raise ValueError(f"p_lower must lie in [0, 1], got {p_lower}")
    if k == 0:
        return sigma * float(ndtri(p_lower)) if p_lower > 0.5 else 0.0
    return _generalized_bound(sigma, check_sample_size("dim", dim), k, "truncated", math.inf).np_radius(p_lower)


def dsrs_bound(sigma: float, dim: int, secondary: str = "truncated", truncation: float | None = None,
               sigma_q: float | None = None, k: float = 0.0) -> DSRSBound | PolarBound:
    """The (cached) bound for these parameters, after validation: :class:`DSRSBound` for k = 0;
    :class:`GeneralizedDSRSBound` (truncated Q) or :class:`ScaledGeneralizedDSRSBound` (scaled Q) for k > 0.

    ``truncation=None`` means the T with P(||z|| <= T) = 1/2, ``sigma' sqrt(chi2_{d-2k} median)``;
    ``sigma_q=None`` means 0.8 sigma (the paper's CIFAR-10 ratio; for k > 0, Q is P_k at sigma_q).
    """
    k = check_k(k)
    sigma, dim = check_positive("sigma", sigma), check_sample_size("dim", dim)
    param = _secondary_param(sigma, secondary, truncation, sigma_q)
    if k > 0:
        return _generalized_bound(sigma, dim, k, secondary, param)
    return _gaussian_bound(sigma, dim, secondary, param)


@functools.lru_cache(maxsize=64)
def _gaussian_bound(sigma: float, dim: int, secondary: str, param: float | None) -> DSRSBound:
    if secondary == "truncated":
        param = sigma * math.sqrt(2 * gammaincinv(dim / 2, 0.5)) if param is None else param
        if gammainc(dim / 2, 0.5 * (param / sigma) ** 2) <= 0:
            raise ValueError(f"truncation={param} leaves the ball no P mass at d={dim} (sigma sqrt(d) = "
                             f"{sigma * math.sqrt(dim):.4g})")
    return DSRSBound(sigma, dim, secondary, param)


def dsrs_radius(p_lower: float, p_upper: float, q_lower: float, q_upper: float, sigma: float, dim: int,
                secondary: str = "truncated", truncation: float | None = None, sigma_q: float | None = None,
                k: float = 0.0) -> float:
    """Certified l2 radius of DSRS from the intervals [pL, pU] (under P) and [qL, qU] (under Q).

    0 when pL <= 1/2; never below the Neyman-Pearson radius (sigma Phi^-1(pL) for k = 0, :func:`np_radius`).
    """
    for name, value in (("p_lower", p_lower), ("p_upper", p_upper), ("q_lower", q_lower), ("q_upper", q_upper)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    if p_lower > p_upper or q_lower > q_upper:
        raise ValueError(f"need p_lower <= p_upper and q_lower <= q_upper, got [{p_lower}, {p_upper}], "
                         f"[{q_lower}, {q_upper}]")
    return dsrs_bound(sigma, dim, secondary, truncation, sigma_q, k).radius(p_lower, p_upper, q_lower, q_upper)
