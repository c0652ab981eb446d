"""The polar quadrature shared by the DSRS bounds of the generalized Gaussian primary P_k (k > 0): masses as
integrals over the radius u of a Beta CDF, refined where the set's levels and edges bend
(:mod:`rsscale.methods.dsrs.generalized`)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import (
    betainc,
    betaln,
    gammainc,
    gammainccinv,
    gammaincinv,
    gammaln,
    wrightomega,
)

from rsscale.methods.dsrs.numerics import _SMOOTH_DF, _WALK_STEPS, _WALK_TOL, MARGIN

_U_TAILS = 0.02 * 4.0 ** -np.arange(21.0, 0.0, -1)
_U_GRID = np.concatenate([[0.0], _U_TAILS, np.linspace(0.02, 0.98, 25), 1 - _U_TAILS[::-1], [1.0]])
_GL_X, _GL_W = np.polynomial.legendre.leggauss(10)
_GL_T, _GL_W = (_GL_X + 1) / 2, _GL_W / 2
#: Panel ends towards a support edge, where the level diverges logarithmically: distances 0.02 * 4^-j, j < 23.
_EDGE_GRADING = 0.02 * 4.0 ** -np.arange(23)
_EDGE_REACH = 40.0  # kappa |m - rho^2| beyond which exp(-kappa |m - rho^2|) no longer changes a level
#: ... and towards a turning point's kink, where an interval of the shifted mass appears with a square-root edge.
_KINK_GRADING = np.append(0.0, 0.02 * 4.0 ** -np.arange(12))
_ZONE, _SPREAD, _REFINEMENTS = 8.0, 2.0, 3  # the Beta CDF's rise, +-8 sd; its resolution, 2 sd per panel
_NARROW = 1e-11  # panels narrower in u (mass at most this) are never refined
_FAR = 1e12  # no level or edge lies beyond: a bracket stops growing there
_BISECTIONS = 64  # per-node bisections for the shifted mass's interval ends (2^-64 of the bracket)


def _warm_root(f, guess, width, xtol, lower=-math.inf, upper=math.inf):
    """Root of a decreasing f: a bracket grown geometrically from guess +- width (within [lower, upper], where f
    has the sign it has past the root, and within +-1e12), then Brent's method; the end of the bracket when the
    root lies beyond it."""
    guess = min(max(guess, lower), upper)
    lo, hi = max(guess - width, lower), min(guess + width, upper)
    f_lo, f_hi = f(lo), f(hi)
    while f_lo < 0 and lo > max(lower, -_FAR):
        lo, hi, f_hi = max(lo - 4 * (hi - lo), lower, -_FAR), lo, f_lo
        f_lo = f(lo)
    while f_hi > 0 and hi < min(upper, _FAR):
        lo, hi, f_lo = hi, min(hi + 4 * (hi - lo), upper, _FAR), f_hi
        f_hi = f(hi)
    if f_lo <= 0:
        return lo
    if f_hi >= 0:
        return hi
    return brentq(f, lo, hi, xtol=xtol, rtol=1e-15)


def _newton(value_slope, target, x, steps=6, tol=1e-13):
    """x with ``value(x) = target`` to tol by Newton's method from x (``value_slope(x) = (value, slope)``), or None
    when it does not get there within steps."""
    for _ in range(steps):
        value, slope = value_slope(x)
        if abs(value - target) < tol:
            return x
        x -= (value - target) / slope if slope else math.nan
        if not math.isfinite(x):
            return None
    return None


def _bisect(g, lo, hi):
    """Elementwise sign change of g on [lo, hi] (g < 0 below it, >= 0 above), by _BISECTIONS bisections."""
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        below = g(mid) < 0
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


@dataclass(frozen=True, eq=False)
class _Radial:
    """Quadrature nodes (rho^2) and weights in u, the CDF of the radial law ``rho^2 / (2 scale^2) ~
    Gamma((d - 2k)/2)``: len(_GL_T) Gauss-Legendre nodes on each panel between consecutive edges (values of u)."""

    rho2: np.ndarray
    w: np.ndarray
    edges: np.ndarray
    scale: float


class PolarBound:
    """The polar machinery that the DSRS bounds for the generalized Gaussian primary P_k share (density
    ~ ||z||^(-2k) exp(-||z||^2 / (2 sigma'^2)), sigma' = sigma sqrt(d / (d - 2k));
    :class:`rsscale.noise.GeneralizedGaussian`; Li et al. 2022, Sec. 4 and App. E; Zhang et al., NeurIPS 2020,
    for P_k's NP radius).

    The ratio p(z - r e_1) / p(z) = exp(-Lambda(z)) depends on ||z|| and ||z - r e_1||, and the worst sets are
    ``A = {Lambda(z) > c(||z||^2)}`` for a level function c of the radius alone, so every set is described in polar
    coordinates: for ``rho = ||z||``, ``Lambda > c`` iff ``||z - r e_1||^2 > rho^2 + D(rho; c)`` with
    ``k ln(1 + D / rho^2) + D / (2 sigma'^2) = c`` (D = 2 sigma'^2 k (W(e^y) - x), x = rho^2 / (2 sigma'^2 k),
    y = ln x + x + c / k, W the Lambert function: scipy's ``wrightomega``; one Newton step polishes it), iff
    ``cos(z, e_1) < (r^2 - D) / (2 r rho)``.  The cosine has the law 2 Beta((d-1)/2, (d-1)/2) - 1 independently
    of rho, and ``rho^2 / (2 s^2) ~ Gamma((d - 2k)/2)`` under P_k (s = sigma') and under P_k at any other scale
    s, so every mass is a 1-D integral over a radial law of a Beta CDF, computed by Gauss-Legendre panels in the
    radial quantile u (graded towards u = 0 and 1, split at the set's breaks and at the kinks of the integrand,
    and refined where a threshold sweeps across the Beta CDF's rise, a near step of width ~ 1 / sqrt(d) at large
    d).  A level c with a given mass is found by Newton's method (d mass / dc is the same integral with the Beta
    density), falling back to Brent's method.

    The shifted mass ``P(A - r e_1)`` is the same integral for y = z - r e_1: with x = ||y||^2,
    ``y + r e_1 in A`` iff ``w = ||y + r e_1||^2 = x + r^2 + 2 r sqrt(x) cos(y, e_1)`` lies in the sublevel set
    ``{w : phi(w) < h(x)}`` of ``phi = h + c`` (h(t) written in w = t^2), a union of intervals, one on each
    piece of the domain where phi is monotone; each interval of w is an interval of cos(y, e_1).

    NP and DSRS radii come from the same Lipschitz walk (``S > 1/2`` on ``[r, r + (S(r) - 1/2) / L)``) with L the
    density of z_1 at 0, ``Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) E[1 / rho]``, finite for d - 2k > 1; no
    monotonicity of S in r is assumed.
    """

    secondary: str

    def __init__(self, sigma: float, dim: int, k: float):
        self.sigma, self.dim, self.k = float(sigma), int(dim), float(k)
        nu = self.dim - 2 * self.k
        self.scale = self.sigma * math.sqrt(self.dim / nu)
        self.precision = 1 / self.scale**2  # h(w) = k ln w + precision w / 2
        self.shape, self.beta = nu / 2, (self.dim - 1) / 2
        self.everywhere = self._radial(0.0, 1.0)
        log_cos_density = gammaln(self.dim / 2) - gammaln(self.beta) - 0.5 * math.log(math.pi)
        log_inverse_rho = gammaln(self.shape - 0.5) - gammaln(self.shape) - 0.5 * math.log(2) - math.log(self.scale)
        self.lipschitz = math.exp(log_cos_density + log_inverse_rho)
        self.xtol = 1e-13
        self._warm = {}  # root-finding warm starts only: the roots themselves do not depend on them
        self.np_radius = functools.lru_cache(maxsize=1024)(self._np_radius)
        self.radius = functools.lru_cache(maxsize=4096)(self._radius)  # counts repeat across inputs

    # ---- geometry ------------------------------------------------------------------------
    def _radial(self, lo: float, hi: float, breaks=(), scale: float | None = None) -> _Radial:
        """Composite Gauss-Legendre in the radial quantile u on [lo, hi], panels ending at _U_GRID and at breaks."""
        edges = np.unique(np.clip(np.concatenate([_U_GRID, [lo, hi], np.asarray(breaks, dtype=float)]), lo, hi))
        scale = self.scale if scale is None else scale
        rho2, w = self._panels(edges[:-1], edges[1:], scale)
        return _Radial(rho2.ravel(), w.ravel(), edges, scale)

    def _panels(self, starts, ends, scale):
        """rho^2 and weights of the nodes of the panels [starts, ends] in u (rows: panels)."""
        width = (ends - starts)[:, None]
        u = starts[:, None] + width * _GL_T
        t = np.where(u < 0.5, gammaincinv(self.shape, np.minimum(u, 0.5)),
                     gammainccinv(self.shape, np.minimum(1 - u, 0.5)))
        lost = ~((t > 0) & (t < np.inf))  # nodes of a panel within rounding of u = 0 or 1: weight 0
        return 2 * scale**2 * np.where(lost, self.shape, t), np.where(lost, 0.0, width * _GL_W)

    def _with_breaks(self, nodes: _Radial, breaks) -> _Radial:
        """The nodes with their panels cut at breaks (only the cut panels' nodes are computed afresh)."""
        old, breaks = nodes.edges, np.asarray(breaks, dtype=float)
        edges = np.union1d(old, np.clip(breaks[np.isfinite(breaks)], old[0], old[-1]))
        fresh = ~(np.isin(edges[:-1], old) & np.isin(edges[1:], old))
        rho2, w = np.empty((len(edges) - 1, len(_GL_T))), np.empty((len(edges) - 1, len(_GL_T)))
        kept = np.searchsorted(old, edges[:-1][~fresh])
        rho2[~fresh], w[~fresh] = nodes.rho2.reshape(-1, len(_GL_T))[kept], nodes.w.reshape(-1, len(_GL_T))[kept]
        rho2[fresh], w[fresh] = self._panels(edges[:-1][fresh], edges[1:][fresh], nodes.scale)
        return _Radial(rho2.ravel(), w.ravel(), edges, nodes.scale)

    def _u(self, rho2, scale: float | None = None) -> float:
        return float(gammainc(self.shape, rho2 / (2 * (self.scale if scale is None else scale) ** 2)))

    def gap(self, rho2, c):
        """D(rho; c) with ``k ln(1 + D / rho^2) + D / (2 sigma'^2) = c`` (-rho^2 at c = -inf, inf at c = inf);
        c a number or an array like rho2."""
        rho2 = np.asarray(rho2, dtype=float)
        c = np.broadcast_to(np.asarray(c, dtype=float), rho2.shape)
        finite = np.isfinite(c)
        c_finite = np.where(finite, c, 0.0)
        two_s2 = 2 * self.scale**2
        if self.k == 0:
            gap = two_s2 * c_finite
        else:
            x = rho2 / (two_s2 * self.k)
            gap = two_s2 * self.k * (wrightomega(np.log(x) + x + c_finite / self.k) - x)
            gap = np.maximum(gap, -rho2 * (1 - 1e-16))
            residual = self.k * np.log1p(gap / rho2) + gap / two_s2 - c_finite
            polished = gap - residual / (self.k / (rho2 + gap) + 1 / two_s2)
            gap = np.where(np.isfinite(polished) & (polished > -rho2), polished, gap)
        return np.where(finite, gap, np.where(c > 0, np.inf, -rho2))

    def _inverse(self, c):
        """x -> the w with h(w) = h(x) - c, i.e. ``x + D(sqrt(x); -c)``: where phi = h + c crosses h(x)."""
        return lambda x: x + self.gap(x, -c)

    def _cos_cdf(self, tau):
        """P(cos(z, e_1) < tau)."""
        return betainc(self.beta, self.beta, np.clip((1 + tau) / 2, 0.0, 1.0))

    def _cos_pdf(self, tau):
        """The density of cos(z, e_1) at tau: ``((1 - tau^2) / 4)^(beta - 1) / (2 B(beta, beta))``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            log = (self.beta - 1) * np.log(np.maximum(1 - tau**2, 0.0) / 4) - math.log(2) - betaln(self.beta, self.beta)
        return np.where(np.abs(tau) < 1, np.exp(log), 0.0)

    def _saturations(self, rho2, taus, scale: float | None = None):
        """Radial quantiles u where some ``tau(rho^2)`` (a function returning a stack of cosine thresholds) crosses
        +-1: there the Beta CDF saturates with a (1 - x)^((d-1)/2) kink, which a panel break makes harmless.
        Only for d < 16 (beyond, the kink is too smooth to matter); found between sorted nodes, 50 bisections."""
        if self.dim >= _SMOOTH_DF or len(rho2) < 2:
            return []
        rho2 = np.sort(rho2)
        with np.errstate(invalid="ignore"):
            values = np.atleast_2d(taus(rho2))
        found = []
        for side in (-1.0, 1.0):
            sign = np.nan_to_num(values - side) > 0
            rows, cols = np.nonzero(sign[:, :-1] != sign[:, 1:])
            lo, hi = rho2[cols], rho2[cols + 1]
            lo_sign = sign[rows, cols]
            for _ in range(50):
                mid = (lo + hi) / 2
                with np.errstate(invalid="ignore"):
                    mid_sign = np.nan_to_num(np.atleast_2d(taus(mid))[rows, np.arange(len(mid))] - side) > 0
                lo, hi = np.where(mid_sign == lo_sign, mid, lo), np.where(mid_sign == lo_sign, hi, mid)
            found += [self._u(x, scale) for x in (lo + hi) / 2]
        return found

    def _resolve(self, nodes: _Radial, taus):
        """The nodes split at the Beta CDF's kinks (d < 16) and refined where some threshold sweeps across the
        CDF's rise, ``|tau| < 8 / sqrt(d)`` (cos(z, e_1) has standard deviation 1 / sqrt(d)), in a panel by more
        than 2 / sqrt(d) (panels of mass below 1e-11 excepted): at large d the CDF is nearly a step, which a
        threshold pinned to a fixed ||z + r e_1|| crosses within a small part of a panel.  Returns the nodes and
        the thresholds there (one row each)."""
        breaks = self._saturations(nodes.rho2, taus, nodes.scale)
        if breaks:
            nodes = self._with_breaks(nodes, breaks)
        for _ in range(_REFINEMENTS):
            with np.errstate(invalid="ignore"):
                values = np.atleast_2d(taus(nodes.rho2))
            splits = self._splits(nodes, values)
            if not splits:
                return nodes, values
            nodes = self._with_breaks(nodes, splits)
        with np.errstate(invalid="ignore"):
            return nodes, np.atleast_2d(taus(nodes.rho2))

    def _splits(self, nodes: _Radial, values):
        """Breaks that cut each panel whose thresholds sweep across the Beta CDF's rise into pieces of at most
        2 / sqrt(d) each (at most 16 per round)."""
        if not len(nodes.w):
            return []
        sd = 1 / math.sqrt(self.dim)
        tau = np.clip(np.nan_to_num(values, nan=0.0), -1.0, 1.0).reshape(len(values), -1, len(_GL_T))
        low, high = tau.min(axis=2), tau.max(axis=2)
        sweeps = (low < _ZONE * sd) & (high > -_ZONE * sd) & (np.diff(nodes.edges) > _NARROW)
        spread = np.where(sweeps, high - low, 0.0).max(axis=0)
        pieces = np.minimum(np.ceil(spread / (_SPREAD * sd)), 16).astype(int)
        return [b for i in np.flatnonzero(pieces > 1)
                for b in np.linspace(nodes.edges[i], nodes.edges[i + 1], pieces[i] + 1)[1:-1]]

    def _mass_rates(self, nodes: _Radial, radius, c):
        """(mass, rho^2, rates) of {Lambda > c(rho^2)} under the radial law and part of it that the nodes cover (c a
        number or a function of rho^2): raising c by dc at the nodes changes the mass by -sum(rates dc), the rate
        being ``w pdf(tau) (dD/dc) / (2 r rho)``, ``dD/dc = 1 / (k / (rho^2 + D) + 1 / (2 sigma'^2))``."""
        if not len(nodes.w):
            return 0.0, nodes.rho2, nodes.w
        level = c if callable(c) else lambda x: c
        tau = lambda x: (radius**2 - self.gap(x, level(x))) / (2 * radius * np.sqrt(x))  # noqa: E731
        nodes, values = self._resolve(nodes, tau)
        x, tau = nodes.rho2, values[0]
        root = 2 * radius * np.sqrt(x)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            rates = nodes.w * self._cos_pdf(tau) / ((self.k / (x + radius**2 - root * tau) + self.precision / 2) * root)
        return float(nodes.w @ self._cos_cdf(tau)), x, np.where(np.isfinite(rates), rates, 0.0)

    def _part_mass(self, nodes: _Radial, radius, c) -> float:
        """Mass of {Lambda > c(rho^2)} under the radial law and part of it that the nodes cover."""
        return self._mass_rates(nodes, radius, c)[0]

    def _mass_slope(self, nodes: _Radial, radius, c):
        """(mass, d mass / dc) of {Lambda > c + const}: :meth:`_mass_rates`."""
        mass, _, rates = self._mass_rates(nodes, radius, c)
        return mass, -float(rates.sum())

    def _level(self, mass_at, target, total, key):
        """The c with mass target, ``mass_at(c) = (mass, d mass / dc)`` falling from total at c = -inf to 0 at
        c = inf: Newton's method from the last level found under key, else Brent's method on a bracket grown from
        it."""
        if target <= 0:
            return math.inf
        if target >= total - 1e-13:  # the whole part (its mass is total at c = -inf only)
            return -math.inf
        guess = self._warm.get(key, 0.0)
        level = _newton(mass_at, target, guess)
        if level is None:
            level = _warm_root(lambda c: mass_at(c)[0] - target, guess, 1e-3 * (1.0 + abs(guess)), self.xtol)
        if abs(level) < _FAR:
            self._warm[key] = level
        return level

    def _shifted_mass(self, radius, pieces, kinks=()):
        """``P(A - r e_1)``: for y ~ P_k with x = ||y||^2, the P(cos(y, e_1) in the cosines whose
        ``w = x + r^2 + 2 r sqrt(x) cos`` lies in {phi < h(x)}``, integrated over x.  ``pieces``: (start, end,
        increasing, crossing) for the pieces of w where phi is monotone, ``crossing(x)`` the w where phi = h(x) (any
        value past an end when phi stays on one side); ``kinks``: radial quantiles to split the panels at (where an
        interval end meets a piece end, or graded towards such a point)."""
        r = radius

        def taus(x):
            ends = []
            for start, end, increasing, crossing in pieces:
                v = np.clip(crossing(x), start, end)
                ends += [np.full_like(x, start), v] if increasing else [v, np.full_like(x, end)]
            with np.errstate(over="ignore", invalid="ignore"):
                return np.stack([(np.minimum(e, 1e300) - x - r**2) / (2 * r * np.sqrt(x)) for e in ends])

        nodes, values = self._resolve(self._with_breaks(self.everywhere, kinks), taus)
        cdf = self._cos_cdf(values)
        return float(nodes.w @ np.maximum(cdf[1::2] - cdf[::2], 0.0).sum(axis=0))

    # ---- the NP set and the walk -----------------------------------------------------------
    def _np_level(self, p_lower, radius):
        """The level c of the Neyman-Pearson set {Lambda > c} with P mass pL."""
        return self._level(lambda c: self._mass_slope(self.everywhere, radius, c), p_lower, 1.0, "np")

    def _walk(self, value, start: float) -> float:
        """Largest r reached from ``start`` by steps ``(value(r) - 1/2 - MARGIN) / L`` (value > 1/2 on [start, r]);
        a nan value (an unsolved worst case) stops it."""
        radius = start
        for _ in range(_WALK_STEPS):
            step = (value(radius) - 0.5 - MARGIN) / self.lipschitz
            if not step > _WALK_TOL * self.sigma:
                break
            radius += step
        return radius

    def _np_radius(self, p_lower) -> float:
        """The plain Neyman-Pearson radius of P_k: S_NP > 1/2 on [0, r] (0 when pL <= 1/2)."""
        if p_lower <= 0.5:
            return 0.0
        if p_lower >= 1:
            return math.inf
        return self._walk(lambda r: self.np_case(p_lower, r).shifted_mass if r > 0 else p_lower, 0.0)

    def _radius(self, p_lower, p_upper, q_lower, q_upper) -> float:
        """The DSRS radius: the walk continued from the NP radius (S >= S_NP > 1/2 below it); never below it."""
        r_np = self.np_radius(p_lower)
        if not (0 < r_np < math.inf) or not self.consistent(p_lower, p_upper, q_lower, q_upper):
            return r_np

        def value(r):
            case = self.worst_case(p_lower, p_upper, q_lower, q_upper, r)
            return case.shifted_mass if case.solved else math.nan

        return self._walk(value, r_np)
