"""The DSRS certificate for the generalized Gaussian primary P_k (k > 0) (:mod:`rsscale.methods.dsrs`).

The generalized Gaussian primary P_k (``k > 0``) is :class:`GeneralizedDSRSBound`
with the truncated Q (P_k on a ball) and :class:`ScaledGeneralizedDSRSBound`
with the scaled Q (P_k at sigma_q, the paper's CIFAR-10 choice), both on the
polar quadrature of :class:`PolarBound`; k = 0 is :mod:`rsscale.methods.dsrs.gaussian`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import (
    betainc,
    betaln,
    expit,
    gammainc,
    gammaincc,
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


@dataclass(frozen=True)
class GeneralizedCase:
    """The worst set at radius r for the generalized Gaussian P_k and its ball-truncated Q:
    ``A = {Lambda(z) > c_in, ||z|| <= T} u {Lambda(z) > c_out, ||z|| > T}``,
    ``Lambda(z) = h(||z - r e_1||) - h(||z||)``,
    ``h(t) = k ln t^2 + t^2 / (2 sigma'^2)`` (so ``p(z - r e_1) / p(z) = exp(-Lambda)``); NP has c_in = c_out."""

    radius: float
    c_in: float
    c_out: float
    p_mass: float
    q_mass: float
    shifted_mass: float
    solved: bool = True


@dataclass(frozen=True)
class ScaledCase:
    """The worst set at radius r for P_k and the scaled Q (P_k at sigma_q):
    ``A = {Lambda(z) > level + o(||z||^2)}``, Lambda as in :class:`GeneralizedCase` and the offset o set by the
    multipliers' signs and the edge m (:meth:`ScaledGeneralizedDSRSBound.offset`); sign2 = 0 is the NP set
    (o = 0).  ``solved`` is False when the root finding could not match the masses (the value is then not
    trusted)."""

    radius: float
    sign1: int
    sign2: int
    edge: float
    level: float
    p_mass: float
    q_mass: float
    shifted_mass: float
    solved: bool = True

    @property
    def shape(self):
        return self.sign1, self.sign2, self.edge


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


class GeneralizedDSRSBound(PolarBound):
    """DSRS for the generalized Gaussian primary P_k and Q = P_k on the ball ||z|| <= T (:class:`PolarBound`).

    The level is c_in inside the ball and c_out outside; for the shifted mass phi increases on [0, T^2] and on
    [T^2, inf), crossing h(x) at ``v^2 = x + D(sqrt(x); -c)``, so ``y in A - r e_1`` iff
    ``||y + r e_1|| < v_in(||y||)`` inside the ball or ``T < ||y + r e_1|| < v_out(||y||)``.

    As for the Gaussian (:class:`DSRSBound`), the truncated Q splits the problem: the worst set is the NP set
    (P mass pL) when its Q mass meets [qL, qU], else its ball part has P mass Z q_B (q_B the binding bound) and
    the outside part max(pL - Z q_B, 0); here each part's level c is found for every r.  k = 0 gives the
    Gaussian (tests compare with :class:`DSRSBound`), as does :class:`ScaledGeneralizedDSRSBound`'s.
    """

    secondary = "truncated"

    def __init__(self, sigma: float, dim: int, k: float, truncation: float = math.inf):
        super().__init__(sigma, dim, k)
        self.param = float(truncation)
        self.ball_mass = float(gammainc(self.shape, 0.5 * (self.param / self.scale) ** 2))
        self.inside = self._radial(0.0, self.ball_mass)
        self.outside = self._radial(self.ball_mass, 1.0)

    def _part_level(self, nodes: _Radial, radius, mass, key):
        """The c with ``P(Lambda > c, part) = mass``."""
        total = float(nodes.w.sum())
        return self._level(lambda c: self._mass_slope(nodes, radius, c), mass, total, key)

    def shifted_mass(self, radius, c_in, c_out) -> float:
        """``P(A - r e_1)`` for the set with levels c_in (ball) and c_out (outside)."""
        t2 = self.param**2
        pieces = [(0.0, t2, True, self._inverse(c_in)), (t2, math.inf, True, self._inverse(c_out))]
        kinks = [self._u(t2 + float(self.gap(np.array([t2]), c)[0])) for c in (c_in, c_out)
                 if math.isfinite(t2) and math.isfinite(c)]
        return self._shifted_mass(radius, pieces, kinks)

    # ---- worst cases and radii -----------------------------------------------------------
    def np_case(self, p_lower, radius, shifted: bool = True) -> GeneralizedCase:
        """The Neyman-Pearson set {Lambda > c} with P mass pL, at radius r (shifted mass nan unless asked)."""
        c = self._np_level(p_lower, radius)
        q_mass = self._part_mass(self.inside, radius, c) / self.ball_mass
        return GeneralizedCase(radius, c, c, p_lower, q_mass, self.shifted_mass(radius, c, c) if shifted else math.nan)

    def consistent(self, p_lower, p_upper, q_lower, q_upper) -> bool:
        """Whether some set has P mass in [pL, pU] and Q mass in [qL, qU]: ``Z Q <= P <= Z Q + 1 - Z``."""
        z = self.ball_mass
        return z * q_lower <= p_upper and p_lower <= z * q_upper + 1 - z

    def worst_case(self, p_lower, p_upper, q_lower, q_upper, radius: float) -> GeneralizedCase:
        """The minimizing set at ``||delta|| = radius`` (consistent bounds, pL in (0, 1), radius > 0)."""
        case = self.np_case(p_lower, radius, shifted=False)
        if q_lower - 1e-12 <= case.q_mass <= q_upper + 1e-12:
            return dataclasses.replace(case, shifted_mass=self.shifted_mass(radius, case.c_in, case.c_out))
        z = self.ball_mass
        m_in = z * (q_lower if case.q_mass < q_lower else q_upper)
        m_out = max(p_lower - m_in, 0.0)
        c_in = self._part_level(self.inside, radius, m_in, "inside")
        c_out = self._part_level(self.outside, radius, m_out, "outside")
        return GeneralizedCase(radius, c_in, c_out, m_in + m_out, m_in / z, self.shifted_mass(radius, c_in, c_out))


class ScaledGeneralizedDSRSBound(PolarBound):
    """DSRS for the generalized Gaussian primary P_k and Q = P_k at the smaller scale sigma_q (the paper's CIFAR-10
    setting: k = 1530 = d/2 - 6 at d = 3072, sigma_q = 0.8 sigma; :class:`PolarBound` for the geometry).

    Both densities carry ||z||^(-2k), so ``q / p = R(rho^2) = (s / s_q)^(d - 2k) exp(-kappa rho^2)``,
    ``kappa = (1/s_q^2 - 1/s^2) / 2`` (s = sigma', s_q = sigma_q sqrt(d / (d - 2k))), and the generalized
    Neyman-Pearson set ``{p(z - r e_1) < lam1 p(z) + lam2 q(z)}`` is ``{Lambda > c(rho^2)}`` with
    ``c = -ln(lam1 + lam2 R)`` (inf where that is <= 0).  Written ``c = level + o(rho^2)``: for lam1 = 0,
    ``o = kappa rho^2``; else, with ``|lam1| = exp(-level)`` and the edge m where ``|lam2| R(m) = |lam1|``,
    ``o = -ln(1 + e^t)`` (both > 0), ``-ln(e^t - 1)`` (lam1 < 0 < lam2: the ball rho^2 < m) or ``-ln(1 - e^t)``
    (lam2 < 0 < lam1: the shell rho^2 > m), ``t = kappa (m - rho^2)``.  The case analysis is the Gaussian one
    (:class:`DSRSBound`): NP when its Q mass meets [qL, qU]; else the binding Q bound q_B fixes lam2's sign, the
    set with lam1 = 0 and Q mass q_B when its P mass lies in [pL, pU], else lam1 > 0 with P mass pL or lam1 < 0
    with pU.  (m, level) matching both masses comes from Newton's method started at the last solution (the walk
    moves r a little at a time; the masses' derivatives in m and in the level are integrals of the same kind),
    else from nested roots: the level matching the P mass for each m, and m matching the Q mass, bracketed
    between the NP set (m -> -inf) or the ball / shell of that P mass and the lam1 = 0 set (m -> inf).  Any
    solution is the minimizer (the Lagrangian bound of the generalized NP lemma holds for every set of this form
    whose masses meet the bounds its multipliers' signs name).  The masses' quadrature is graded towards the
    support's edge m, where o diverges logarithmically.

    The shifted mass needs phi = h + c in w = rho^2: phi increases for lam2 > 0 (lam1 + lam2 R falls with rho, and
    so does rho^(-2k) e^(-rho^2 / (2 s^2))); for lam2 < 0, phi' has the sign of the convex
    ``chi(w) = kappa (w - m) - ln(1 + kappa w / (k + w / (2 s^2)))``, so phi rises, falls and rises again (at most),
    and each piece's crossing of h(x) is found per node by bisection.
    """

    secondary = "scaled"

    def __init__(self, sigma: float, dim: int, k: float, sigma_q: float):
        super().__init__(sigma, dim, k)
        self.param = float(sigma_q)
        self.q_scale = self.scale * self.param / self.sigma
        self.kappa = 0.5 * (1 / self.q_scale**2 - 1 / self.scale**2)
        self.q_everywhere = self._radial(0.0, 1.0, scale=self.q_scale)

    # ---- the set's level function --------------------------------------------------------------
    def offset(self, sign1: int, sign2: int, edge: float, rho2):
        """o(rho^2), with ``c = level + o`` (inf off the set's support; the class docstring)."""
        rho2 = np.asarray(rho2, dtype=float)
        if sign2 == 0:
            return np.zeros_like(rho2)
        if sign1 == 0:
            return self.kappa * rho2
        t = self.kappa * (edge - rho2)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if sign1 > 0 and sign2 > 0:
                return -np.logaddexp(0.0, t)
            if sign2 > 0:
                return np.where(t > 0, -t - np.log(-np.expm1(-t)), np.inf)
            return np.where(t < 0, -np.log(-np.expm1(t)), np.inf)

    def _levels(self, shape, level):
        """rho^2 -> c(rho^2) = level + o(rho^2)."""
        def c(rho2):
            o = self.offset(*shape, rho2)
            return np.where(np.isposinf(o), np.inf, level + o)
        return c

    def _support(self, shape, scale):
        """Nodes of the radial law at ``scale`` on the set's support (rho^2 < m for lam1 < 0, rho^2 > m for
        lam2 < 0), graded towards its edge m."""
        sign1, sign2, edge = shape
        if (sign1 >= 0 and sign2 >= 0) or (sign2 < 0 and edge <= 0):
            return self.everywhere if scale == self.scale else self.q_everywhere
        u = self._u(max(edge, 0.0), scale)
        if sign1 < 0:
            return self._radial(0.0, u, u - _EDGE_GRADING, scale)
        return self._radial(u, 1.0, u + _EDGE_GRADING, scale)

    def _masses(self, shape, level, radius):
        """(P(A), Q(A)) of the set (shape, level)."""
        c = self._levels(shape, level)
        return tuple(self._part_mass(self._support(shape, s), radius, c) for s in (self.scale, self.q_scale))

    def _fit_level(self, shape, radius, target, scale, key):
        """The level at which the set's mass under the radial law at ``scale`` is target."""
        nodes = self._support(shape, scale)
        mass_at = lambda level: self._mass_slope(nodes, radius, self._levels(shape, level))  # noqa: E731
        return self._level(mass_at, target, float(nodes.w.sum()), key)

    # ---- the shifted mass ------------------------------------------------------------------------
    def _critical(self, edge):
        """The zeros of chi (class docstring) on w > max(m, 0): where phi turns (chi is convex)."""
        k, a, kap = self.k, self.precision / 2, self.kappa
        start = max(edge, 0.0)

        def chi(w):
            ratio = kap / (a + k / w) if w > 0 else (0.0 if k else kap / a)
            return kap * (w - edge) - math.log1p(ratio)

        # chi' = 0 iff a (a + kappa) w^2 + k (2a + kappa) w + k^2 - k = 0 (a positive root only for k < 1)
        b, c = k * (2 * a + kap), k * k - k
        root = (-b + math.sqrt(b * b - 4 * a * (a + kap) * c)) / (2 * a * (a + kap)) if c < 0 else 0.0
        lowest = max(start, root)
        if chi(lowest) >= 0:
            return []
        far = edge + (math.log1p(kap / a) + 1) / kap  # chi > 0 beyond it
        left = [brentq(chi, start, lowest, xtol=1e-14 * lowest)] if chi(start) > 0 else []
        return left + [brentq(chi, lowest, far, xtol=1e-14 * far)]

    def _pieces(self, shape, level):
        """The monotone pieces of phi(w) = h(w) + c(w) as (start, end, increasing, crossing), and their finite
        turning points."""
        sign1, sign2, edge = shape
        if sign2 == 0 or level == -math.inf:  # a constant level on the support
            start, end = (max(edge, 0.0), math.inf) if sign2 < 0 else (0.0, edge if sign1 < 0 else math.inf)
            return [(start, end, True, self._inverse(level))], []
        c = self._levels(shape, level)
        k, a = self.k, self.precision / 2
        floor = min(float(self.offset(*shape, 0.0)), 0.0)  # o >= floor: phi >= h + level + floor

        def crossing(x, start, end, increasing):
            excess = lambda w: (k * np.log(w / x) if k else 0.0) + a * (w - x) + c(w)  # noqa: E731
            high = np.minimum(end, self._inverse(level + floor)(x)) if increasing else np.full_like(x, end)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return _bisect(excess if increasing else lambda w: -excess(w), np.full_like(x, start), high)

        if sign2 > 0:
            turns, ends = [], [0.0, edge if sign1 < 0 else math.inf]
        else:
            turns = self._critical(edge)
            ends = [max(edge, 0.0), *turns, math.inf]
        pieces = []
        for i, (start, end) in enumerate(zip(ends[:-1], ends[1:], strict=True)):
            increasing = (len(ends) - 2 - i) % 2 == 0  # the last piece rises, the others alternate
            pieces.append((start, end, increasing, functools.partial(crossing, start=start, end=end,
                                                                     increasing=increasing)))
        return pieces, turns

    def shifted_mass(self, shape, level, radius) -> float:
        """``P(A - r e_1)`` of the set (shape, level) (:meth:`PolarBound._shifted_mass`)."""
        pieces, turns = self._pieces(shape, level)
        c = self._levels(shape, level)
        kinks = [self._u(w + float(self.gap(np.array([w]), c(np.array([w])))[0])) for w in turns]
        graded = [u + side * g for u in kinks for side in (-1, 1) for g in _KINK_GRADING]
        return self._shifted_mass(radius, pieces, graded)

    # ---- worst cases -------------------------------------------------------------------------------
    def np_case(self, p_lower, radius, shifted: bool = True) -> ScaledCase:
        """The Neyman-Pearson set {Lambda > c} with P mass pL, at radius r (shifted mass nan unless asked)."""
        c = self._np_level(p_lower, radius)
        q_mass = self._part_mass(self.q_everywhere, radius, c)
        shape = (1, 0, math.nan)
        return ScaledCase(radius, *shape, c, p_lower, q_mass,
                          self.shifted_mass(shape, c, radius) if shifted else math.nan)

    def consistent(self, p_lower, p_upper, q_lower, q_upper) -> bool:
        """Whether some set has P mass in [pL, pU] and Q mass in [qL, qU]: the reachable (P, Q) lie between the
        balls ||z|| <= t and the shells ||z|| > t (the sets ordered by q / p)."""
        ratio = (self.scale / self.q_scale) ** 2
        ball_q = gammainc(self.shape, gammaincinv(self.shape, p_upper) * ratio)
        shell_q = gammaincc(self.shape, gammainccinv(self.shape, p_lower) * ratio)
        return bool(q_lower <= ball_q and shell_q <= q_upper)

    def worst_case(self, p_lower, p_upper, q_lower, q_upper, radius: float) -> ScaledCase:
        """The minimizing set at ``||delta|| = radius`` (consistent bounds, pL in (0, 1), radius > 0)."""
        case = self.np_case(p_lower, radius, shifted=False)
        if q_lower - 1e-12 <= case.q_mass <= q_upper + 1e-12:
            return self._finish(case.shape, case.level, radius, p_lower, case.q_mass)
        sign2, q_target = (1, q_lower) if case.q_mass < q_lower else (-1, q_upper)
        if sign2 > 0:
            free = (0, 1, math.nan)
            level = self._fit_level(free, radius, q_target, self.q_scale, "free")
            p_star = self._part_mass(self.everywhere, radius, self._levels(free, level))
            if p_lower - 1e-12 <= p_star <= p_upper + 1e-12:  # within rounding: a slightly wider P interval
                return self._finish(free, level, radius, p_star, q_target)
            sign1, p_target = (1, p_lower) if p_star < p_lower else (-1, p_upper)
        else:
            sign1, p_target = 1, p_lower
        edge, level, p_mass, q_mass = self._edge(sign1, sign2, p_target, q_target, radius)
        solved = abs(p_mass - p_target) < 1e-9 and abs(q_mass - q_target) < 1e-9
        return self._finish((sign1, sign2, edge), level, radius, p_mass, q_mass, solved)

    def _edge(self, sign1, sign2, p_target, q_target, radius):
        """(m, level, P mass, Q mass) of the set with P mass p_target and Q mass q_target: Newton's method from the
        last solution, else nested roots, m between the NP set (m -> -inf: lam1 > 0 dominates) or the ball / shell
        with that P mass and the lam1 = 0 set (m -> inf)."""
        reach = _EDGE_REACH / self.kappa
        lower = 2 * self.scale**2 * gammaincinv(self.shape, p_target) if sign1 < 0 else -reach
        upper = 2 * self.scale**2 * gammainccinv(self.shape, p_target) if sign2 < 0 else \
            float(self.everywhere.rho2.max()) + reach

        def excess(edge):  # decreasing in m: Q rises with m when both multipliers are positive, else falls
            shape = (sign1, sign2, edge)
            level = self._fit_level(shape, radius, p_target, self.scale, "edge")
            q_mass = self._part_mass(self._support(shape, self.q_scale), radius, self._levels(shape, level))
            return -sign1 * sign2 * (q_mass - q_target)

        key = ("m", sign1, sign2)
        solution = self._newton_pair(sign1, sign2, p_target, q_target, radius, lower, upper, self._warm.get(key))
        if solution is None:
            edge = _warm_root(excess, (lower + upper) / 2 if sign1 < 0 or sign2 < 0 else 0.0, 0.05 / self.kappa,
                              1e-12 / self.kappa, lower, upper)
            level = self._fit_level((sign1, sign2, edge), radius, p_target, self.scale, "edge")
            solution = edge, level, *self._masses((sign1, sign2, edge), level, radius)
        self._warm[key] = solution[:2]
        return solution

    def _newton_pair(self, sign1, sign2, p_target, q_target, radius, lower, upper, start):
        """(m, level, P mass, Q mass) matching both masses to 1e-11 by Newton's method from start (the last
        (m, level)), each step halved until m stays in [lower, upper] and the larger mass error falls; None when
        that fails or takes more than 12 steps."""
        if start is None or not all(map(math.isfinite, start)):
            return None
        point = np.array(start, dtype=float)
        error, jacobian = self._residual(sign1, sign2, point, radius, p_target, q_target)
        for _ in range(12):
            if np.abs(error).max() < 1e-11:
                return float(point[0]), float(point[1]), p_target + float(error[0]), q_target + float(error[1])
            try:
                step = np.linalg.solve(jacobian, error)
            except np.linalg.LinAlgError:
                return None
            for shrink in 0.5 ** np.arange(8):
                trial = point - shrink * step
                if not (lower <= trial[0] <= upper and np.isfinite(trial).all()):
                    continue
                trial_error, trial_jacobian = self._residual(sign1, sign2, trial, radius, p_target, q_target)
                if np.abs(trial_error).max() < np.abs(error).max():
                    break
            else:
                return None
            point, error, jacobian = trial, trial_error, trial_jacobian
        return None

    def _residual(self, sign1, sign2, point, radius, p_target, q_target):
        """The mass errors (P - p_target, Q - q_target) at point = (m, level) and their Jacobian in (m, level)."""
        shape = (sign1, sign2, float(point[0]))
        rows = [self._slopes(shape, float(point[1]), radius, scale) for scale in (self.scale, self.q_scale)]
        error = np.array([rows[0][0] - p_target, rows[1][0] - q_target])
        return error, np.array([[row[2], row[1]] for row in rows])

    def _slopes(self, shape, level, radius, scale):
        """The set's mass under the radial law at scale and its derivatives in the level and in m (``dc/dm =
        do/dm``; the support's edge adds nothing: the set's mass vanishes there): :meth:`_mass_rates`."""
        mass, x, rates = self._mass_rates(self._support(shape, scale), radius, self._levels(shape, level))
        return mass, -float(rates.sum()), -float(rates @ self._edge_slope(shape, x))

    def _edge_slope(self, shape, rho2):
        """do/dm (the class docstring's offsets, lam1 != 0; 0 off the support)."""
        sign1, sign2, edge = shape
        t = self.kappa * (edge - rho2)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if sign1 > 0 and sign2 > 0:
                slope = -self.kappa * expit(t)
            elif sign2 > 0:
                slope = -self.kappa / -np.expm1(-t)
            else:
                slope = self.kappa / np.expm1(-t)
        return np.where(np.isfinite(slope), slope, 0.0)

    def _finish(self, shape, level, radius, p_mass, q_mass, solved: bool = True) -> ScaledCase:
        """The case (masses as found) with its shifted mass."""
        return ScaledCase(radius, *shape, level, p_mass, q_mass, self.shifted_mass(shape, level, radius), solved)
