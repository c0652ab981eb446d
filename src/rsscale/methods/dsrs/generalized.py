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
    expit,
    gammainc,
    gammaincc,
    gammainccinv,
    gammaincinv,
)

from rsscale.methods.dsrs.polar import (
    _EDGE_GRADING,
    _EDGE_REACH,
    _KINK_GRADING,
    PolarBound,
    _bisect,
    _Radial,
    _warm_root,
)


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
