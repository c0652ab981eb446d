"""Exact oracles: base classifiers whose smoothed classifier is known in closed form.

Certifiers are checked against them (``tests/``, :mod:`rsscale.harness`): a
certificate is violated when it names a class other than g's or a radius
beyond g's true radius, and a sound certifier at level alpha does so with
probability at most alpha on every input.

* :class:`IntervalClassifier` labels x by where ``t = u . x`` (``|u|_2 = 1``)
  falls among sorted thresholds.  Under N(0, sigma^2 I) the noise's projection
  on u is N(0, sigma^2) for every unit u, so

      P(f(x + e) = class of [lo, hi)) = Phi((hi - t) / sigma) - Phi((lo - t) / sigma),

  g depends on t only and changes class at fixed points c_j of the t axis,
  and g's true l_q radius at x is ``min_j |t - c_j| / ||u||_q*`` (q* the dual
  exponent: the largest ``u . delta`` over ``||delta||_q <= r`` is
  ``r ||u||_q*``).  With one threshold a at 0 this is the linear classifier of
  DESIGN.md: p_A = Phi(|t - a| / sigma), l2 radius |t - a|.  For l1 noises
  (Laplace, uniform) the projection on a general u has no closed-form law; on
  a coordinate axis ``u = e_k`` it is one coordinate of the noise, whose CDF
  replaces Phi, and the distance along e_k is the true radius in every l_p
  norm.  So Laplace and uniform noise are only checked on axis-aligned
  oracles (:meth:`IntervalClassifier.smoothed_probs` refuses the others).
* :class:`OneVsRestClassifier`: two orthogonal directions, four classes;
  the smoothed probabilities factor (below).
* :class:`BallClassifier`: the l2 ball ``||x - c|| <= R``; under Gaussian noise
  ``||x + e - c||^2 / sigma^2`` is noncentral chi-square.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.stats import laplace, ncx2, norm, uniform

from rsscale.noise import Gaussian, Laplace, NoiseDistribution, Uniform

__all__ = [
    "BallClassifier",
    "IntervalClassifier",
    "OneVsRestClassifier",
    "allowed_rate",
    "dual_norm",
    "marginal_cdf",
    "marginal_ppf",
    "sign_vector",
    "unit_vector",
    "violation_rate",
]


def marginal_cdf(noise: NoiseDistribution, z):
    """CDF of one coordinate of the noise (of its projection on a unit vector, for Gaussian noise)."""
    if isinstance(noise, Gaussian):
        return norm.cdf(z, scale=noise.sigma)
    if isinstance(noise, Laplace):
        return laplace.cdf(z, scale=noise.scale)
    if isinstance(noise, Uniform):
        return uniform.cdf(z, loc=-noise.half_width, scale=2 * noise.half_width)
    raise TypeError(f"no marginal CDF for {noise!r}")


def marginal_ppf(noise: NoiseDistribution, p):
    """Quantile function of one coordinate of the noise (inverse of :func:`marginal_cdf`)."""
    if isinstance(noise, Gaussian):
        return norm.ppf(p, scale=noise.sigma)
    if isinstance(noise, Laplace):
        return laplace.ppf(p, scale=noise.scale)
    if isinstance(noise, Uniform):
        return uniform.ppf(p, loc=-noise.half_width, scale=2 * noise.half_width)
    raise TypeError(f"no marginal quantile for {noise!r}")


def unit_vector(dim: int, axis: int | None = None, seed: int = 0) -> torch.Tensor:
    """The coordinate axis ``e_axis`` or, with ``axis=None``, a uniformly random unit direction (from ``seed``)."""
    if axis is not None:
        return torch.eye(dim)[axis]
    z = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (z / z.norm()).float()


def sign_vector(dim: int, seed: int = 0) -> torch.Tensor:
    """A random-sign diagonal ``s / sqrt(dim)``, s uniform on {-1, 1}^dim (from ``seed``): ``||u||_1 = sqrt(dim)``, so a
    half-space along it is as close in l_inf as the l2 ball allows (its l_inf radius is its l2 radius / sqrt(dim))."""
    signs = 2.0 * torch.randint(0, 2, (dim,), generator=torch.Generator().manual_seed(seed)) - 1.0
    return signs / math.sqrt(dim)


def dual_norm(u: torch.Tensor, norm_name: str) -> float:
    """``||u||_q*``, the dual of the l_q norm named ``norm_name``: ``max u . delta`` over the unit l_q ball."""
    u = u.flatten().double()
    dual = {"l1": u.abs().max(), "l2": u.norm(), "linf": u.abs().sum()}
    if norm_name not in dual:
        raise ValueError(f"unknown norm {norm_name!r}; expected one of {sorted(dual)}")
    return float(dual[norm_name])


class IntervalClassifier(torch.nn.Module):
    def __init__(self, direction: torch.Tensor, thresholds, labels, num_classes: int):
        super().__init__()
        direction = direction.flatten().double()
        self.register_buffer("u", (direction / direction.norm()).float())
        self.thresholds = np.asarray(thresholds, dtype=float)
        self.labels = np.asarray(labels, dtype=int)
        assert len(self.labels) == len(self.thresholds) + 1
        self.num_classes = num_classes
        self.input_shape = tuple(direction.shape)
        self.axis_aligned = int((self.u != 0).sum()) == 1
        # buffers, so that a copy moved to another device classifies there
        self.register_buffer("_edges", torch.tensor(self.thresholds, dtype=torch.float32), persistent=False)
        self.register_buffer("_labels", torch.tensor(self.labels), persistent=False)

    def forward(self, x):
        t = x.flatten(1) @ self.u
        cls = self._labels[(t[:, None] >= self._edges).sum(dim=1)]  # = bucketize(t, edges, right=True), faster on CPU
        return torch.nn.functional.one_hot(cls, self.num_classes).float()

    # ---- closed forms -------------------------------------------------
    def projection(self, x: torch.Tensor) -> float:
        return float(x.flatten().double() @ self.u.double())

    def projections(self, xs: torch.Tensor) -> np.ndarray:
        """``t = u . x`` of each input of a batch, in float64."""
        return (xs.flatten(1).double() @ self.u.double()).numpy()

    def input_at(self, t: float, generator: torch.Generator) -> torch.Tensor:
        """An input with projection t and a random orthogonal component."""
        z = torch.randn(self.u.shape, generator=generator, dtype=torch.float64)
        u = self.u.double()
        z = z - (z @ u) * u
        return (z + t * u).float()

    def inputs_at(self, ts, generator: torch.Generator) -> torch.Tensor:
        """A batch of inputs with projections ``ts`` and random orthogonal components (batched :meth:`input_at`), each
        of shape :attr:`input_shape`."""
        ts = torch.as_tensor(np.asarray(ts, dtype=float), dtype=torch.float64)
        z = torch.randn((len(ts), *self.u.shape), generator=generator, dtype=torch.float64)
        u = self.u.double()
        z = z - (z @ u)[:, None] * u
        return (z + ts[:, None] * u).float().view(len(ts), *self.input_shape)

    def smoothed_probs(self, t, noise: NoiseDistribution) -> np.ndarray:
        """Class probabilities of the smoothed classifier, shape [..., num_classes]."""
        if not (isinstance(noise, Gaussian) or self.axis_aligned):
            raise ValueError(f"no closed form for {noise!r} along a direction that is not a coordinate axis; "
                             f"use an axis-aligned oracle (e.g. u = e_1) for non-Gaussian noise")
        t = np.asarray(t, dtype=float)[..., None]
        edges = np.concatenate([[-np.inf], self.thresholds, [np.inf]])
        cdf = marginal_cdf(noise, edges - t)
        mass = np.diff(cdf, axis=-1)
        probs = np.zeros(t.shape[:-1] + (self.num_classes,))
        for j, label in enumerate(self.labels):
            probs[..., label] += mass[..., j]
        return probs

    def smoothed_class(self, t, noise):
        return np.argmax(self.smoothed_probs(t, noise), axis=-1)

    def true_radius(self, t: float, noise: NoiseDistribution, reach: float = 10.0, steps: int = 4000) -> float:
        """Distance from t to the nearest point where g's class changes (inf if none within ``reach``)."""
        cls = self.smoothed_class(t, noise)
        best = np.inf
        for sign in (1.0, -1.0):
            grid = t + sign * np.linspace(0.0, reach, steps)
            changed = np.nonzero(self.smoothed_class(grid, noise) != cls)[0]
            if changed.size == 0:
                continue
            lo, hi = grid[changed[0] - 1], grid[changed[0]]
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if self.smoothed_class(mid, noise) == cls:
                    lo = mid
                else:
                    hi = mid
            best = min(best, abs(hi - t))
        return best

    def change_points(self, noise: NoiseDistribution, lo: float, hi: float, spacing: float = 2.5e-3) -> np.ndarray:
        """The points of [lo, hi] where g's class changes along the t axis (a grid, then 60 bisection steps each)."""
        grid = np.linspace(lo, hi, max(2, int(np.ceil((hi - lo) / spacing)) + 1))
        classes = self.smoothed_class(grid, noise)
        points = []
        for i in np.nonzero(classes[1:] != classes[:-1])[0]:
            left, right, cls = grid[i], grid[i + 1], classes[i]
            for _ in range(60):
                mid = 0.5 * (left + right)
                left, right = (mid, right) if self.smoothed_class(mid, noise) == cls else (left, mid)
            points.append(0.5 * (left + right))
        return np.asarray(points)

    def true_radii(self, t, noise: NoiseDistribution, norm_name: str = "l2", reach: float = 10.0) -> np.ndarray:
        """g's true l_q radius at projections t (vectorized): ``min_j |t - c_j| / ||u||_q*`` over the change points c_j
        within ``reach`` of the range of t (inf when there is none)."""
        t = np.asarray(t, dtype=float)
        points = self.change_points(noise, float(t.min()) - reach, float(t.max()) + reach)
        if points.size == 0:
            return np.full(t.shape, np.inf)
        distance = np.abs(t[..., None] - points).min(axis=-1)
        return distance * (dual_norm(self.u, "l2") / dual_norm(self.u, norm_name))  # u is a unit vector


def violation_rate(predictions, radii, true_classes, true_radii) -> float:
    """Fraction of certificates that claim too much: a certified (non-abstaining)
    prediction that is not g's class, or a radius beyond g's true radius."""
    predictions, radii = np.asarray(predictions), np.asarray(radii)
    true_classes, true_radii = np.asarray(true_classes), np.asarray(true_radii)
    certified = predictions >= 0
    wrong = certified & ((predictions != true_classes) | (radii > true_radii + 1e-9))
    return float(wrong.mean())


def allowed_rate(alpha: float, trials: int) -> float:
    """alpha plus three binomial standard errors of the trials."""
    return alpha + 3.0 * np.sqrt(alpha * (1 - alpha) / trials)


class OneVsRestClassifier(torch.nn.Module):
    """Class 0 where ``u . x > 0``; elsewhere class 1, 2 or 3 by where ``v . x`` falls around +-b (u orthogonal to v).

    The two projections of Gaussian noise are independent, so with
    ``t = u . x``, ``s = v . x``:  P(0) = Phi(t / sigma) and, for the rest,
    P(c) = (1 - Phi(t / sigma)) * Q_c(s) with Q the interval masses of s.  A
    certificate for class c is valid exactly when its bound on p_A does not
    exceed P(c) (then sigma Phi^-1(p_A) <= sigma Phi^-1(P(c)), Cohen's radius,
    which is at most g's true radius); for class 0 that radius is the margin t.
    """

    def __init__(self, dim: int, b: float = 0.8):
        super().__init__()
        gen = torch.Generator().manual_seed(123)
        basis, _ = torch.linalg.qr(torch.randn(dim, 2, generator=gen, dtype=torch.float64))
        self.register_buffer("uv", basis.float())
        self.b = b
        self.num_classes = 4
        self.input_shape = (dim,)

    def forward(self, x):
        t, s = (x @ self.uv).unbind(1)
        rest = 1 + (s > -self.b).long() + (s > self.b).long()
        cls = torch.where(t > 0, torch.zeros_like(rest), rest)
        return torch.nn.functional.one_hot(cls, 4).float()

    def input_at(self, t: float, s: float, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(self.input_shape, generator=generator, dtype=torch.float64)
        uv = self.uv.double()
        z = z - uv @ (uv.T @ z)
        return (z + t * uv[:, 0] + s * uv[:, 1]).float()

    def smoothed_probs(self, x: torch.Tensor, sigma: float) -> np.ndarray:
        t, s = (x.double() @ self.uv.double()).numpy().T
        p0 = norm.cdf(t / sigma)
        q1 = norm.cdf((-self.b - s) / sigma)
        q3 = norm.sf((self.b - s) / sigma)
        q2 = 1.0 - q1 - q3
        return np.stack([p0, (1 - p0) * q1, (1 - p0) * q2, (1 - p0) * q3], axis=1)


class BallClassifier(torch.nn.Module):
    """Class ``inside`` on the ball ``||x - c|| <= R``, class ``outside`` elsewhere.

    Under N(0, sigma^2 I_d) noise ``||x + e - c||^2 / sigma^2`` is noncentral
    chi-square with d degrees of freedom and noncentrality ``||x - c||^2 /
    sigma^2``, so the smoothed probability of ``inside`` depends on the distance
    ``s = ||x - c||`` only and falls as s grows: g says ``inside`` exactly on the
    ball of radius ``s*`` (where that probability is 1/2), and g's true l2
    radius at x is ``|s* - s|``.
    """

    def __init__(self, center: torch.Tensor, radius: float, inside: int = 0, outside: int = 1, num_classes: int = 2):
        super().__init__()
        self.register_buffer("center", center.flatten().float())
        self.radius, self.inside, self.outside, self.num_classes = float(radius), inside, outside, num_classes
        self.input_shape = tuple(center.shape)
        self.dim = self.center.numel()

    def forward(self, x):
        dist = (x.flatten(1) - self.center).norm(dim=1)
        cls = torch.where(dist <= self.radius, self.inside, self.outside)
        return torch.nn.functional.one_hot(cls, self.num_classes).float()

    def input_at(self, distance: float, generator: torch.Generator) -> torch.Tensor:
        """An input at the given distance from the center, in a random direction."""
        u = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        return (self.center.double() + distance * u / u.norm()).float().view(self.input_shape)

    def inputs_at(self, distances, generator: torch.Generator) -> torch.Tensor:
        """A batch of inputs at the given distances from the center, in random directions (batched :meth:`input_at`)."""
        distances = torch.as_tensor(np.asarray(distances, dtype=float), dtype=torch.float64)
        u = torch.randn(len(distances), self.dim, generator=generator, dtype=torch.float64)
        x = self.center.double() + distances[:, None] * u / u.norm(dim=1, keepdim=True)
        return x.float().view(len(distances), *self.input_shape)

    def distance(self, x: torch.Tensor) -> float:
        return float((x.flatten().double() - self.center.double()).norm())

    def distances(self, xs: torch.Tensor) -> np.ndarray:
        """``||x - c||`` of each input of a batch, in float64."""
        return (xs.flatten(1).double() - self.center.double()).norm(dim=1).numpy()

    def p_inside(self, distance, sigma: float):
        """P(f(x + e) = inside) at ``||x - c|| = distance``."""
        return ncx2.cdf(self.radius**2 / sigma**2, self.dim, np.square(distance) / sigma**2)

    def boundary(self, sigma: float) -> float:
        """s*, the distance where g switches from inside to outside (g must say inside at the center)."""
        far = self.radius + 20 * sigma
        return brentq(lambda s: self.p_inside(s, sigma) - 0.5, 0.0, far, xtol=1e-12)

    def smoothed_class(self, distance, sigma: float):
        return np.where(self.p_inside(distance, sigma) > 0.5, self.inside, self.outside)

    def true_radius(self, distance, sigma: float):
        """g's l2 robust radius at this distance (infinite when g is ``outside`` everywhere)."""
        if self.p_inside(0.0, sigma) <= 0.5:
            return np.full(np.shape(distance), np.inf)
        return np.abs(self.boundary(sigma) - np.asarray(distance, dtype=float))
