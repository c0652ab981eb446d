"""Projected randomized smoothing (Pfrommer, Anderson & Sojoudi, TMLR 2023).

Model: the ``"projected"`` architecture, ``f(x) = base(P(x))`` with
``P(x) = U^T U (x - mu) + mu``, U ``[p, d]`` the top-p principal directions of
the centred training inputs (:func:`fit_projection`) and mu their mean.

Smoothing: for ``e ~ N(0, sigma^2 I_d)``, ``P(x + e) = U^T (z + U e) + mu``
with ``z = U (x - mu)`` and ``U e ~ N(0, sigma^2 U U^T) = N(0, sigma^2 I_p)``.
So Cohen's smoothed classifier of f under full-dimensional noise is the
paper's classifier smoothed in z-space, and
:class:`rsscale.smooth.SmoothedClassifier` certifies it unchanged.

Certificate: g(x + delta) depends on delta only through ``U delta``, so
Cohen's radius ``r = sigma Phi^-1(p_A)`` in z-space certifies the cylinder
``{delta : ||Pi delta||_2 < r}``, Pi the orthogonal projector onto the row
space of U (``||U delta|| = ||Pi delta||`` for orthonormal rows; for any
full-rank U, whitening the z-noise by ``(U U^T)^(-1/2)`` gives the same
cylinder).  The largest l_q ball inside it has radius ``r / kappa_q``,
``kappa_q = max_{||delta||_q <= 1} ||Pi delta||_2 = ||W||_{q->2}`` with W
``[p, d]`` an orthonormal basis of that row space (:func:`projection_norms`):

* ``kappa_1 = max_i ||W e_i||_2``, the largest column norm, exactly (a convex
  function peaks at a vertex ``+-e_i`` of the l1 ball); at most 1, so the l1
  radius is never below Cohen's ``r``.
* ``kappa_inf = max_{s in {-1,1}^d} ||W s||_2`` is NP-hard in general; we use
  an upper bound.  For any weights ``y > 0``, ``D = diag(y)``, Cauchy-Schwarz
  gives ``||W delta|| = ||W D^-1/2 D^1/2 delta|| <= ||W D^-1/2||_2 sqrt(sum y)
  ||delta||_inf``, a valid bound for every y.  ``y = 1`` gives ``sqrt(d)``
  (Cohen's l2-to-l_inf conversion, kept as a floor), y = column norms gives at
  most the sum of column norms, and the best y is the dual optimum of Shor's
  relaxation ``max {tr(W^T W X) : diag(X) = 1, X psd}``, which exceeds
  ``kappa_inf^2`` by at most pi/2 (Nesterov 1998), i.e. the bound is within
  ``sqrt(pi/2) ~ 1.25`` of the true kappa_inf.  We approach that y by the
  Burer-Monteiro ascent ``V <- rownormalize(W^T W V)`` (``V [d, k]``, ``k >
  sqrt(2 d)``; monotone for the convex objective ``||W V||_F^2``), whose fixed
  point's row norms ``y_i = ||(W^T W V)_i||`` are the dual certificate.  How
  well it converged changes the bound's tightness, never its validity.

The official code (no centring) reports the volume of the certified cylinder
inside the image cube instead of l_q radii; the l_q radii here are our
reading of the same certificate.  Floating-point rounding in the forward pass
is ignored, as in every RS implementation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import torch

from rsscale import harness, mutation
from rsscale.certificate import Certificate
from rsscale.methods.base import register
from rsscale.methods.cohen import Cohen
from rsscale.models import build_model
from rsscale.noise import Gaussian
from rsscale.oracles import IntervalClassifier


def fit_projection(x_train: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA of the flattened inputs: ``(U [rank, d], mu [d])``, float32.

    mu is the mean and U's rows the top-``rank`` right singular vectors of the
    centred data matrix (``torch.linalg.svd`` in float64), in order of
    decreasing variance, each signed so that its largest-magnitude coordinate
    (the first, on ties) is positive.
    """
    x = x_train.flatten(1).double()
    if not 1 <= rank <= min(x.shape):
        raise ValueError(f"rank must lie in [1, min(num_inputs, dim) = {min(x.shape)}], got {rank}")
    mu = x.mean(dim=0)
    _, _, vh = torch.linalg.svd(x - mu, full_matrices=False)
    u = vh[:rank]
    sign = u.gather(1, u.abs().argmax(dim=1, keepdim=True)).sign()
    return (u * sign).float(), mu.float()


def _weighted_bound(w: torch.Tensor, y: torch.Tensor) -> float:
    """``sqrt(sum y) ||W diag(y)^-1/2||_2 >= max_{||s||_inf <= 1} ||W s||_2`` (a floor keeps y > 0)."""
    y = y + 1e-12 * y.max()
    return math.sqrt(float(y.sum())) * float(torch.linalg.matrix_norm(w / y.sqrt(), 2))


def _kappa_inf(w: torch.Tensor, iterations: int = 1000, tol: float = 1e-10) -> float:
    """Upper bound on ``||W||_{inf->2}``: min of sqrt(d) and the Shor-dual weighted bound (module docstring)."""
    d = w.shape[1]
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(d, min(d, math.isqrt(2 * d) + 1), generator=gen, dtype=w.dtype)
    v = v / v.norm(dim=1, keepdim=True)
    value = 0.0
    for _ in range(iterations):
        grad = w.T @ (w @ v)
        y = grad.norm(dim=1)
        v = grad / y.clamp_min(1e-300)[:, None]
        if float(y.sum()) <= value * (1 + tol):
            break
        value = float(y.sum())
    return min(math.sqrt(d), _weighted_bound(w, y))


_NORMS: dict[str, tuple[float, float]] = {}


def projection_norms(U: torch.Tensor) -> tuple[float, float]:
    """``(kappa_1, kappa_inf)``: ``max ||Pi delta||_2`` over the unit l1 / l_inf balls, Pi the projector onto U's rows.

    kappa_1 is exact, kappa_inf an upper bound (module docstring); both are
    computed in float64 and cached by the content of U.
    """
    u = U.detach().cpu().double()
    key = hashlib.sha256(u.numpy().tobytes() + str(tuple(u.shape)).encode()).hexdigest()
    if key not in _NORMS:
        w = torch.linalg.qr(u.T).Q.T  # orthonormal basis of U's row space (containing it, if U is rank-deficient)
        _NORMS[key] = (float(w.norm(dim=0).max()), _kappa_inf(w))
    return _NORMS[key]


@register
class Projected(Cohen):
    name = "projected"
    summary = "Cohen's CERTIFY in the top-p PCA subspace (Pfrommer et al. 2023): an l2 cylinder, l_q radius r / kappa_q"
    settings_fields = ("sigma", "n0", "n", "alpha", "rank", "kappa_1", "kappa_inf")

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000,
                 alpha: float = 0.001, batch_size: int = 1000, device=None):
        if getattr(model, "arch", None) != "projected":
            raise ValueError(f"projected RS needs a model of architecture 'projected' (trained with "
                             f"`rsscale train --arch projected`), got {getattr(model, 'arch', type(model).__name__)!r}")
        super().__init__(model, num_classes, sigma, n0, n, alpha, batch_size, device)
        self.rank = model.U.shape[0]
        self.kappa_1, self.kappa_inf = projection_norms(model.U)

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        return [self._cylinder(cert) for cert in super().certify_batch(xs, generator)]

    def _cylinder(self, cert: Certificate) -> Certificate:
        """Radii of the certified cylinder ``||Pi delta|| < r`` in each norm, from Cohen's l2 radius r."""
        r = cert.radius
        return dataclasses.replace(
            cert,
            radii={"l1": r / self.kappa_1, "l2": r, "linf": r / self.kappa_inf},
            extra={**cert.extra, "rank": self.rank, "subspace_radius": r, "kappa_1": self.kappa_1,
                   "kappa_inf": self.kappa_inf},
        )

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return [harness.case(cls.name, "subspace-linear-d20", _subspace_linear_case, dim=PLANTED_DIM,
                             positions=harness.COHEN_POSITIONS)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.reused_selection(cls, "smoothed.sampler", "subspace-linear-d20", 1200),
                mutation.doubled_alpha(cls, "subspace-linear-d20", 500)]


#: The planted subspace of the harness case: one random-sign direction per block of coordinates.
PLANTED_DIM, PLANTED_BLOCKS = 20, ((0, 2), (2, 6), (6, 12))


def planted_basis(dim: int = PLANTED_DIM, blocks=PLANTED_BLOCKS, seed: int = 0) -> torch.Tensor:
    """``[len(blocks), dim]`` orthonormal rows, row j = random signs / sqrt(block size) on block j, 0 elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.zeros(len(blocks), dim, dtype=torch.float64)
    for j, (lo, hi) in enumerate(blocks):
        basis[j, lo:hi] = (2.0 * torch.randint(0, 2, (hi - lo,), generator=gen) - 1) / math.sqrt(hi - lo)
    return basis


def _subspace_linear_case(trials, seed, alpha, factory):
    """'projected' model (U = a planted 3-block basis of R^20, mu = 0) around the half-space u . x > 0, u in span(U)
    spread over the blocks (l_inf tight); inputs at the p_A of the half-space positions, either side (Cohen's CERTIFY
    on f(P(x)) = f(x): exact violation probability); true l_q radius |u . x| / ||u||_q*"""
    basis = planted_basis()
    weights = torch.tensor([math.sqrt(hi - lo) for lo, hi in PLANTED_BLOCKS], dtype=torch.float64)
    oracle = IntervalClassifier((weights @ basis).float(), [0.0], [0, 1], num_classes=2)
    model = build_model("projected", base_arch="mlp", base_config={"dim": PLANTED_DIM}, rank=len(PLANTED_BLOCKS),
                        dim=PLANTED_DIM)
    model.set_projection(basis.float(), torch.zeros(PLANTED_DIM))
    model.base = oracle  # f(P(x)) = f(x): u . P(x) = u . x for u in the row space of U
    certifier = harness.build(factory, "projected", model, 2, harness.N, alpha, PLANTED_DIM)
    noise = Gaussian(harness.SIGMA)
    return harness.half_space_outcomes(oracle, noise, certifier, harness.COHEN_POSITIONS, trials, seed)
