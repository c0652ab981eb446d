"""The DSRS certificate for the Gaussian primary P = N(0, sigma^2 I_d) and a truncated or scaled secondary Q
(:mod:`rsscale.methods.dsrs`).

The worst case at ||delta|| = r (rotate delta to r e_1).  By the generalized
Neyman-Pearson lemma the minimizing f' is the indicator of
``A = {z : p(z - r e_1) < lam1 p(z) + lam2 q(z)}``, where
``p(z - r e_1) / p(z) = exp(l(z_1))``, ``l(z_1) = (2 r z_1 - r^2) / (2 sigma^2)``.
Its value S(r) = P(A - r e_1) is at least the plain Neyman-Pearson value
Phi(Phi^-1(pL) - r / sigma) (DSRS adds constraints), with equality when the NP
half-space {z_1 < sigma Phi^-1(pL)} already meets the Q interval.  Otherwise
one Q bound binds, and (the value is convex in the two masses) the P mass
sits at pL, or at the P mass of the best set that meets the Q bound alone when
that lies in [pL, pU], or at pU.

* truncated Q (P conditioned on ||z|| <= T, ball mass Z): q / p = 1{ball} / Z,
  so A = {z_1 < a_in} in the ball and {z_1 < a_out} outside, and the masses
  fix both thresholds independently of r: the ball part has P mass Z q_B (q_B
  the binding Q bound) and the outside part max(pL - Z q_B, 0).
* scaled Q = N(0, sigma_q^2 I) with sigma_q < sigma: q / p is
  ``(sigma / sigma_q)^d exp(-kappa ||z||^2)``, ``kappa = (1/sigma_q^2 - 1/sigma^2) / 2``,
  so A is a region in (z_1, rho = ||z_{2..d}||): for lam2 > 0 it is
  ``{rho^2 < omega - L(z_1) / kappa - z_1^2}`` (plus {z_1 <= b} when lam1 > 0),
  with ``L = ln|exp(l(z_1)) - lam1|``, ``|lam1| = exp(l(b))`` and ``omega`` carrying lam2;
  for lam2 < 0 it is ``{z_1 < b, rho^2 > omega - L / kappa - z_1^2}`` with
  ``L = ln(lam1 - exp(l))``.  Nested root finding (outer on b, inner on omega)
  matches the two masses.

Every mass is a 1-D integral over z_1 (normal, with the measure's center and
scale) of a chi-square CDF with d - 1 degrees of freedom for
rho^2 / scale^2, computed by composite Gauss-Legendre quadrature over the
center +- 10 standard deviations (panels one standard deviation wide, split
at the set's breakpoints) with the regularized incomplete gamma functions, so
d = 100,000 costs as little as d = 10.

The radius must hold for every shift up to it, and S need not decrease in r
(a Q upper bound makes the worst set a shell, whose shifted mass first rises),
so instead of the paper's binary search, which assumes it does, we walk up
from the NP radius (below it S exceeds the NP value, hence 1/2) with steps
that cannot skip a crossing: each ``P(A - r e_1)`` is Lipschitz in r with
constant ``L = 1 / (sigma sqrt(2 pi))`` (the total variation between
N(r, sigma^2) and N(r', sigma^2) in one dimension), hence so is their minimum
S, and ``S > 1/2`` on ``[r, r + (S(r) - 1/2) / L)``.  The walk stops when its
step falls below 1e-7 sigma; it converges geometrically when S crosses 1/2
with a slope near -L (the NP slope) and stops short, never beyond, otherwise.
Intervals that no classifier can meet (possible only when a bound fails) fall
back to the NP radius.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import (
    gammainc,
    gammaincc,
    gammainccinv,
    gammaincinv,
    ndtr,
    ndtri,
)

from rsscale.methods.dsrs.numerics import (
    _GRADING,
    _SMOOTH_DF,
    _TAIL,
    _WALK_STEPS,
    _WALK_TOL,
    _WIDTH,
    MARGIN,
    _chi2_cdf,
    _chi2_sf,
    _normal_nodes,
    _root,
    _secant,
)


@dataclass(frozen=True)
class WorstCase:
    """The adversary's best classifier at radius r: the indicator of
    ``A = {z : p(z - r e_1) < lam1 p(z) + lam2 q(z)}``, ``lam_i = sign_i exp(log_lam_i)``.

    ``p_mass = P(A)``, ``q_mass = Q(A)`` and ``shifted_mass = P(A - r e_1)``, the
    smoothed probability of c_A at ``x + r e_1`` for this classifier (the
    certificate holds at r iff it exceeds 1/2).  ``solved`` is False when the
    root finding could not match the masses (the value is then not trusted).
    """

    radius: float
    sign1: int
    log_lam1: float
    sign2: int
    log_lam2: float
    p_mass: float
    q_mass: float
    shifted_mass: float
    solved: bool = True


@dataclass(frozen=True)
class _Shape:
    """The scaled-Q set up to omega: lam1 = sign1 exp(l(b)), lam2 of sign sign2 (see the module docstring)."""

    radius: float
    sign1: int
    sign2: int
    b: float

    def offsets(self, z, sigma, kappa):
        """Where the rho-threshold applies, and c(z_1) = L(z_1) / kappa + z_1^2 there (threshold = omega - c)."""
        r, s2 = self.radius, sigma**2
        ell = (2 * r * z - r**2) / (2 * s2)
        ell_b = (2 * r * self.b - r**2) / (2 * s2)
        active = np.ones_like(z, dtype=bool)
        if self.sign1 == 0:
            big = ell
        elif self.sign1 < 0:
            big = np.logaddexp(ell, ell_b)
        else:  # exp(l) - lam1 above b (lam2 > 0), lam1 - exp(l) below b (lam2 < 0)
            gap = r * (z - self.b) / s2 * self.sign2
            active = gap > 0
            big = (ell if self.sign2 > 0 else ell_b) + np.log(-np.expm1(-np.where(active, gap, 1.0)))
        return active, big / kappa + z**2


class DSRSBound:
    """The DSRS certificate for P = N(0, sigma^2 I_dim) and one secondary Q.

    Args:
        sigma: primary noise level.
        dim: input dimension d.
        secondary: ``"truncated"`` (Q = P given ||z|| <= truncation) or
            ``"scaled"`` (Q = N(0, sigma_q^2 I)).
        param: the truncation T or sigma_q.
    """

    def __init__(self, sigma: float, dim: int, secondary: str, param: float):
        self.sigma, self.dim, self.secondary, self.param = float(sigma), int(dim), secondary, float(param)
        self.df = self.dim - 1
        self.chi2_low = 2 * gammaincinv(self.df / 2, _TAIL) if self.df else 0.0
        self.chi2_high = 2 * gammainccinv(self.df / 2, _TAIL) if self.df else 0.0
        self.xtol = 1e-12 * self.sigma
        if secondary == "truncated":
            self.ball_mass = float(gammainc(self.dim / 2, 0.5 * (self.param / self.sigma) ** 2))
            self._thresholds = functools.lru_cache(maxsize=256)(self._find_thresholds)
        else:
            self.kappa = 0.5 * (1 / self.param**2 - 1 / self.sigma**2)
            self.log_ratio = self.dim * math.log(self.sigma / self.param)  # ln(q/p) = log_ratio - kappa ||z||^2

    # ---- the Neyman-Pearson half-space and consistency ---------------------------------
    def np_q_mass(self, a: float) -> float:
        """Q mass of the NP half-space {z_1 < a}."""
        if self.secondary == "truncated":
            return self._ball_below(a) / self.ball_mass
        return float(ndtr(a / self.param))

    def consistent(self, p_lower, p_upper, q_lower, q_upper) -> bool:
        """Whether some set A has P(A) in [pL, pU] and Q(A) in [qL, qU].

        The reachable (P(A), Q(A)) lie between the curves of the sets ordered by
        q / p: for the truncated Q, ``Z Q <= P <= Z Q + 1 - Z``; for the scaled Q,
        between the ball and the ball's complement centred at 0.
        """
        if self.secondary == "truncated":
            z = self.ball_mass
            return z * q_lower <= p_upper and p_lower <= z * q_upper + 1 - z
        ratio = (self.sigma / self.param) ** 2
        ball_q = gammainc(self.dim / 2, gammaincinv(self.dim / 2, p_upper) * ratio)
        shell_q = gammaincc(self.dim / 2, gammainccinv(self.dim / 2, p_lower) * ratio)
        return bool(q_lower <= ball_q and shell_q <= q_upper)

    # ---- worst case at a radius --------------------------------------------------------
    def worst_case(self, p_lower, p_upper, q_lower, q_upper, radius: float) -> WorstCase:
        """The minimizing set at ``||delta|| = radius`` (consistent bounds, pL in (0, 1), radius > 0)."""
        a_np = self.sigma * float(ndtri(p_lower))
        q_np = self.np_q_mass(a_np)
        if q_lower - 1e-12 <= q_np <= q_upper + 1e-12:  # within rounding: no gain worth a solve
            ell = (2 * radius * a_np - radius**2) / (2 * self.sigma**2)
            shifted = float(ndtr((a_np - radius) / self.sigma))
            return WorstCase(radius, 1, ell, 0, -math.inf, p_lower, q_np, shifted)
        q_target = q_lower if q_np < q_lower else q_upper
        if self.secondary == "truncated":
            return self._truncated(p_lower, q_target, radius)
        return self._scaled(p_lower, p_upper, q_target, 1 if q_np < q_lower else -1, a_np, radius)

    def search(self, p_lower, p_upper, q_lower, q_upper) -> float:
        """Largest r reached by the Lipschitz walk from the NP radius (module docstring): S > 1/2 on all of [0, r]."""
        if p_lower <= 0.5:
            return 0.0
        if p_lower >= 1:
            return math.inf
        r_np = self.sigma * float(ndtri(p_lower))
        if not self.consistent(p_lower, p_upper, q_lower, q_upper):
            return r_np
        lipschitz = 1.0 / (self.sigma * math.sqrt(2 * math.pi))
        radius = r_np
        for _ in range(_WALK_STEPS):
            case = self.worst_case(p_lower, p_upper, q_lower, q_upper, radius)
            step = (case.shifted_mass - 0.5 - MARGIN) / lipschitz if case.solved else 0.0
            if step <= _WALK_TOL * self.sigma:
                break
            radius += step
        return radius

    def radius(self, p_lower, p_upper, q_lower, q_upper) -> float:
        """The certified radius, never below the NP radius (a guard against quadrature error)."""
        r_np = self.sigma * float(ndtri(p_lower)) if p_lower > 0.5 else 0.0
        return max(self.search(p_lower, p_upper, q_lower, q_upper), r_np)

    # ---- truncated Q ---------------------------------------------------------------------
    def _in_ball_given(self, z1):
        """P(||z|| <= T | z_1) = P(chi2_{d-1} <= (T^2 - z_1^2) / sigma^2)."""
        return _chi2_cdf((self.param**2 - z1**2) / self.sigma**2, self.df)

    def _out_ball_given(self, z1):
        return _chi2_sf((self.param**2 - z1**2) / self.sigma**2, self.df)

    def _ball_below(self, a):
        """P(z_1 < a, ||z|| <= T)."""
        z, w = _normal_nodes(0.0, self.sigma, -self.param, min(a, self.param))
        return float(w @ self._in_ball_given(z))

    def _threshold(self, mass, part):
        """a with P(z_1 < a, part) = mass, part = ball (True) or its complement (False)."""
        if mass <= 0:
            return -math.inf
        s, t = self.sigma, self.param
        if part:
            f = lambda a: self._ball_below(a) - mass  # noqa: E731
            lo, hi = max(-t, -_WIDTH * s), min(t, _WIDTH * s)
        else:
            f = lambda a: float(ndtr(a / s)) - self._ball_below(a) - mass  # noqa: E731
            lo, hi = -_WIDTH * s, _WIDTH * s
        if f(hi) < 0:
            return math.inf
        return _root(f, lo, hi, self.xtol)

    def _find_thresholds(self, m_in, m_out):
        """(a_in, a_out): P(z_1 < a_in, ball) = m_in and P(z_1 < a_out, outside) = m_out (r plays no part)."""
        return self._threshold(m_in, True) if m_in < self.ball_mass else math.inf, self._threshold(m_out, False)

    def _truncated(self, p_lower, q_target, radius):
        z, s, t, r = self.ball_mass, self.sigma, self.param, radius
        m_in = z * q_target
        a_in, a_out = self._thresholds(m_in, p_lower - m_in)
        nodes, weights = _normal_nodes(r, s, breaks=(-t, t, a_in, a_out))
        inside = np.where(nodes < a_in, self._in_ball_given(nodes), 0.0)
        outside = np.where(nodes < a_out, self._out_ball_given(nodes), 0.0)
        shifted = float(weights @ (inside + outside))
        ball_part = self._ball_below(a_in)
        p_mass = ball_part + float(ndtr(a_out / s)) - self._ball_below(a_out)
        # lam1 = exp(l(a_out)), lam1 + lam2 / Z = exp(l(a_in))
        ell = lambda a: (2 * r * a - r**2) / (2 * s**2)  # noqa: E731
        log_lam1 = ell(a_out) if a_out > -math.inf else -math.inf
        high, low = max(ell(a_in), log_lam1), min(ell(a_in), log_lam1)
        log_lam2 = math.log(z) + high + math.log(-math.expm1(low - high)) if high > low else -math.inf
        sign1 = 1 if a_out > -math.inf else 0
        return WorstCase(r, sign1, log_lam1, 1 if a_in > a_out else -1, log_lam2, p_mass, ball_part / z, shifted)

    # ---- scaled Q ------------------------------------------------------------------------
    def _nodes(self, shape: _Shape, center, scale, omega=None):
        """Quadrature nodes, weights and offsets for N(center e_1, scale^2 I), split at b and, given omega
        (and d - 1 < 16), at the zeros of the threshold omega - c(z_1)."""
        # graded towards b, where the threshold diverges logarithmically
        breaks = list(shape.b + shape.sign2 * scale * _GRADING) if shape.sign1 > 0 else []
        if omega is not None and self.df < _SMOOTH_DF:
            breaks += self._crossings(shape, center, scale, omega)
        z, w = _normal_nodes(center, scale, breaks=breaks)
        return w, *shape.offsets(z, self.sigma, self.kappa)

    def _integrate(self, nodes, sign2, scale, omega):
        w, active, c = nodes
        x = (omega - c) / scale**2
        if sign2 > 0:
            return float(w @ np.where(active, _chi2_cdf(x, self.df), 1.0))
        return float(w @ np.where(active, _chi2_sf(x, self.df), 0.0))

    def _mass(self, shape: _Shape, center, scale, omega):
        """Mass of the set (shape, omega) under N(center e_1, scale^2 I)."""
        return self._integrate(self._nodes(shape, center, scale, omega), shape.sign2, scale, omega)

    def _crossings(self, shape: _Shape, center, scale, omega):
        """Where the threshold omega - c(z_1) changes sign in the window.

        There the chi-square CDF has a (z_1 - z_0)^((d - 1) / 2) singularity that
        a panel break makes harmless; found on a grid of 64 points per scale
        (geometrically refined towards b) and polished by Illinois steps.
        """
        grid = np.linspace(center - _WIDTH * scale, center + _WIDTH * scale, int(64 * _WIDTH) + 1)
        if shape.sign1 > 0:
            grid = np.union1d(grid, shape.b - shape.sign2 * scale * 2.0 ** -np.arange(1, 40))
        active, c = shape.offsets(grid, self.sigma, self.kappa)
        g = np.where(active, omega - c, np.nan)
        i = np.flatnonzero(((g[:-1] > 0) != (g[1:] > 0)) & active[:-1] & active[1:])
        x0, x1, g0, g1 = grid[i], grid[i + 1], g[i], g[i + 1]
        for _ in range(6):
            x = x0 - g0 * (x1 - x0) / (g1 - g0)
            gx = omega - shape.offsets(x, self.sigma, self.kappa)[1]
            same = (gx > 0) == (g0 > 0)  # the root lies in [x, x1]
            x0, g0, x1, g1 = np.where(same, x, x0), np.where(same, gx, g0), np.where(same, x1, x), \
                np.where(same, g1 / 2, gx)
        return list(x0 - g0 * (x1 - x0) / (g1 - g0))

    def _omega(self, shape: _Shape, center, scale, target):
        """omega at which the set's mass under N(center e_1, scale^2 I) equals target.

        Brent's method on fixed panels, then (d - 1 < 16) secant steps on the
        mass with panels split at the threshold's zeros.
        """
        nodes = self._nodes(shape, center, scale)
        _, active, c = nodes
        if not active.any():
            return 0.0
        lo = float(c[active].min()) + scale**2 * self.chi2_low
        hi = float(c[active].max()) + scale**2 * self.chi2_high
        xtol = 1e-12 * scale**2 * max(1.0, self.df)
        f = lambda om: shape.sign2 * (self._integrate(nodes, shape.sign2, scale, om) - target)  # noqa: E731
        omega = _root(f, lo, hi, xtol)
        if self.df < _SMOOTH_DF and lo < omega < hi:
            omega = _secant(lambda om: self._mass(shape, center, scale, om) - target, omega, 1e-6 * scale**2, xtol)
        return omega

    def _scaled(self, p_lower, p_upper, q_target, sign2, a_np, radius):
        r, s, sq = radius, self.sigma, self.param
        reach = _WIDTH * s + 40 * s**2 / r  # beyond it, lam1 = exp(l(b)) changes no node's threshold
        b_low, b_high = -reach, r + reach
        if sign2 > 0:
            # lam1 = 0: omega from the Q bound, then its P mass p*
            free = _Shape(r, 0, 1, 0.0)
            omega = self._omega(free, 0.0, sq, q_target)
            p_star = self._mass(free, 0.0, s, omega)
            if p_lower <= p_star <= p_upper:
                return self._case(free, omega)
            if p_star < p_lower:  # lam1 > 0, Q(A) falls from above q_target (b -> -inf) to q_np (b = a_np)
                sign1, p_target, lo, hi, rising = 1, p_lower, b_low, a_np, False
            else:  # lam1 < 0, Q(A) rises with b
                sign1, p_target, lo, hi, rising = -1, p_upper, b_low, b_high, True
        else:  # lam1 > 0, Q(A) falls from q_np (b = a_np) towards the shell's Q mass
            sign1, p_target, lo, hi, rising = 1, p_lower, a_np, b_high, False

        def excess(b):
            shape = _Shape(r, sign1, sign2, b)
            q = self._mass(shape, 0.0, sq, self._omega(shape, 0.0, s, p_target)) - q_target
            return q if rising else -q

        shape = _Shape(r, sign1, sign2, _root(excess, lo, hi, self.xtol))
        case = self._case(shape, self._omega(shape, 0.0, s, p_target))
        solved = abs(case.q_mass - q_target) < 1e-9 and abs(case.p_mass - p_target) < 1e-9
        return case if solved else dataclasses.replace(case, solved=False)

    def _case(self, shape: _Shape, omega):
        r, s = shape.radius, self.sigma
        masses = [self._mass(shape, center, scale, omega) for center, scale in ((0.0, s), (0.0, self.param), (r, s))]
        log_lam1 = (2 * r * shape.b - r**2) / (2 * s**2) if shape.sign1 else -math.inf
        return WorstCase(r, shape.sign1, log_lam1, shape.sign2, self.kappa * omega - self.log_ratio, *masses)


#: Panel ends in the radial quantile u: 24 even panels, graded by factors of 4 to 5e-15 towards both ends.
