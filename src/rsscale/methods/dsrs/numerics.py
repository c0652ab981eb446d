"""Numerics shared by the DSRS bounds: Gauss-Legendre panels on the normal measure, chi-square CDFs, root finders,
and the tolerances of the radius walk (:mod:`rsscale.methods.dsrs`)."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import (
    gammainc,
    gammaincc,
)

MARGIN = 1e-9
_WALK_STEPS = 200  # the walk's cap (it stops short, never beyond, when reached)
_WALK_TOL = 1e-7

_WIDTH = 10.0  # quadrature window: center +- 10 standard deviations (tail mass < 1e-22)
_TAIL = 1e-18  # chi-square quantiles bracketing the inner root
_GRADING = np.concatenate([[0.0], 2.0 ** -np.arange(1, 9)])
_SMOOTH_DF = 16  # from d - 1 = 16 on, the chi-square CDF is smooth enough at 0 for the plain panels



def _panel_rules(order: int = 12):
    """Gauss-Legendre rules on [0, 1] for a panel with no singular end, a singular left end, right end, or both.

    A break (where a chi-square CDF's argument reaches 0, or the set's boundary
    bends) may carry an integrable singularity like (z - a)^(1/2); the maps
    t^2, 1 - (1 - t)^2 and 3 t^2 - 2 t^3 flatten it.
    """
    x, w = np.polynomial.legendre.leggauss(order)
    t, w = (x + 1) / 2, w / 2
    maps = [(t, np.ones_like(t)), (t**2, 2 * t), (1 - (1 - t) ** 2, 2 * (1 - t)),
            (3 * t**2 - 2 * t**3, 6 * t * (1 - t))]
    return np.stack([m for m, _ in maps]), np.stack([w * dm for _, dm in maps])


_RULE_T, _RULE_W = _panel_rules()


def _normal_nodes(center, scale, lo=-math.inf, hi=math.inf, breaks=()):
    """Nodes z and weights w with ``w @ g(z) ~ integral_lo^hi g(z) N(z; center, scale^2) dz``.

    Composite Gauss-Legendre on the window center +- 10 scale: the breaks (and
    lo, hi) cut it into segments, each split evenly into panels at most one
    scale wide, and the panel ends at breaks, lo and hi get a singular-end rule.
    """
    a, b = max(lo, center - _WIDTH * scale), min(hi, center + _WIDTH * scale)
    if not a < b:
        return np.empty(0), np.empty(0)
    singular = np.unique([x for x in (lo, hi, *breaks) if a <= x <= b])
    ends = np.union1d([a, b], singular)
    pieces = [np.linspace(p, q, int(math.ceil((q - p) / scale)) + 1)[:-1]
              for p, q in zip(ends[:-1], ends[1:], strict=True)]
    edges = np.append(np.concatenate(pieces), b)
    marked = np.isin(edges, singular)
    kind = marked[:-1] + 2 * marked[1:]
    width = np.diff(edges)[:, None]
    z = (edges[:-1, None] + width * _RULE_T[kind]).ravel()
    w = (width * _RULE_W[kind]).ravel() * np.exp(-0.5 * ((z - center) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
    return z, w


def _chi2_cdf(x, df):
    x = np.asarray(x, dtype=float)
    return (x >= 0).astype(float) if df == 0 else gammainc(df / 2, np.maximum(x, 0) / 2)


def _chi2_sf(x, df):
    x = np.asarray(x, dtype=float)
    return (x < 0).astype(float) if df == 0 else gammaincc(df / 2, np.maximum(x, 0) / 2)


def _root(f, lo, hi, xtol):
    """Root of an increasing f on [lo, hi], or the end where f already has the sign it would have past the root."""
    f_lo, f_hi = f(lo), f(hi)
    if f_lo >= 0:
        return lo
    if f_hi <= 0:
        return hi
    return brentq(f, lo, hi, xtol=xtol, rtol=1e-14)


def _secant(f, x, step, xtol, steps=8):
    """Secant iterations for a root of f near x; returns the point with the smallest |f| seen."""
    x0, f0, x1 = x, f(x), x + step
    best = (abs(f0), x0)
    for _ in range(steps):
        f1 = f(x1)
        best = min(best, (abs(f1), x1))
        if f1 == f0 or abs(x1 - x0) < xtol:
            break
        x0, f0, x1 = x1, f1, x1 - f1 * (x1 - x0) / (f1 - f0)
    return best[1]
