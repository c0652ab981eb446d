"""Input-specific sample size (Chen, Li, Yan, Li & Sheng, "Input-Specific Robustness Certification for Randomized
Smoothing", AAAI 2022).

Offline table: for p on the grid 0.500, 0.501, ..., 1.000 let
``R(p, m) = sigma Phi^-1(CP_lower(p m, m, alpha))`` be Cohen's radius when a
fraction p of m samples hits c_A (p m need not be an integer: the Beta quantile
takes real arguments).  ``T(p)`` is the smallest m <= N_max (= ``n``) with
``R(p, m) >= R(p, N_max) - l`` (absolute decline l) or ``>= (1 - l) R(p, N_max)``
(relative), and 0 where that target is <= 0 (the input is not worth sampling).

Per input: a pilot of n0 samples selects c_A (its most frequent class, count
k0) and gives the two-sided Clopper-Pearson interval [pL, pU] at alpha; the
sample size is ``m = max(T(pL-), T(pL+), T(pU-), T(pU+))``, where p- and p+ are
the grid points around each end (the official code's lookup).  m = 0 abstains.

* ``iss`` (as published): sample up to ``max(m, n0)`` in total, reusing the
  pilot, and certify with Cohen's bound at alpha on all samples.  NOT a valid
  certificate: the pilot selects c_A, sets m and is counted in the estimate,
  with no alpha split.  Near p_A = 1/2 both classes' pilot counts can look
  high, and the count that wins the selection enters the estimate; the exact
  violation probability exceeds alpha there (``tests/test_iss.py`` computes it
  in closed form: about 1.7 alpha at the paper's n0 = 2000, N_max = 100,000,
  alpha = 0.001).  The official code divides by m even when m < n0 while
  counting the whole pilot; here the total is ``max(m, n0)``.
* ``iss_sound``: the pilot only selects c_A and sets m; m fresh samples give
  the estimate, Cohen's bound at the full alpha.  Given the pilot, c_A and m
  are fixed and the fresh count is Bin(m, p_{c_A}), so the bound holds with
  probability >= 1 - alpha whatever the pilot did: no alpha is spent on
  selection or sizing (the pilot interval's level only changes the cost).
  It costs n0 more forward passes per input than reusing the pilot.

Both report the forward passes actually spent (n0 + samples drawn after the
pilot) and the chosen size m (``extra["n_chosen"]``).  Gaussian noise only.
Deviations from the official code besides the total above: table sizes are
exact integers (not multiples of the batch size), and each entry is the
smallest size for its own grid point (the official search starts at the
previous entry, which forces the absolute table to be non-decreasing).
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch
from scipy.special import ndtri

from rsscale import harness, ledger, mutation
from rsscale.bounds import check_alpha, clopper_pearson_interval, clopper_pearson_lower
from rsscale.certificate import Certificate
from rsscale.methods.base import Certifier, register
from rsscale.methods.common import l2_certificates
from rsscale.noise import Gaussian
from rsscale.sampling import Sampler
from rsscale.smooth import abstains, check_sample_size

#: The p_A grid of the sample-size table (the paper's: 0.5 to 1 in steps of 0.001).
GRID = np.linspace(0.5, 1.0, 501)
DECLINE_TYPES = ("absolute", "relative")


def radius_curve(p, m, sigma: float, alpha: float) -> np.ndarray:
    """``sigma Phi^-1(CP_lower(p m, m, alpha))``: Cohen's radius when a fraction p of m samples hits (< 0 allowed)."""
    p, m = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(m, dtype=float))
    return sigma * ndtri(np.asarray(clopper_pearson_lower(p * m, m, alpha)))


@functools.lru_cache(maxsize=32)
def _table(sigma: float, n_max: int, alpha: float, decline: float, decline_type: str) -> np.ndarray:
    best = radius_curve(GRID, n_max, sigma, alpha)
    target = best - decline if decline_type == "absolute" else best * (1.0 - decline)
    lo, hi = np.zeros(GRID.shape, dtype=np.int64), np.full(GRID.shape, n_max, dtype=np.int64)
    while np.any(hi - lo > 1):  # invariant: lo misses the target (0 counts as missing), hi reaches it
        mid = (lo + hi) // 2
        reached = radius_curve(GRID, np.maximum(mid, 1), sigma, alpha) >= target
        lo, hi = np.where(reached, lo, mid), np.where(reached, mid, hi)
    table = np.where(target > 0, hi, 0)
    table.flags.writeable = False
    return table


def iss_table(sigma: float, n_max: int, alpha: float, decline: float = 0.01,
              decline_type: str = "absolute") -> np.ndarray:
    """Sample size per grid point of :data:`GRID`: the smallest m with ``R(p, m)`` within the tolerated decline of
    ``R(p, n_max)`` (module docstring), found by bisection on m (R increases with m); 0 where the target is <= 0."""
    if decline_type not in DECLINE_TYPES:
        raise ValueError(f"decline_type must be one of {DECLINE_TYPES}, got {decline_type!r}")
    decline = float(decline)
    if not (decline > 0 and math.isfinite(decline)) or (decline_type == "relative" and decline >= 1):
        bound = "in (0, 1)" if decline_type == "relative" else "> 0"
        raise ValueError(f"the {decline_type} radius decline must be {bound}, got {decline}")
    return _table(float(sigma), check_sample_size("n", n_max), check_alpha(alpha), decline, decline_type)


def iss_sample_size(table: np.ndarray, p_lower, p_upper) -> np.ndarray:
    """The size for a pilot interval [p_lower, p_upper]: the largest table entry at the grid points around its ends.

    For each end v (clipped to [0, 1]) take the first grid point >= v and the
    one before it (both the first point when v <= 0.5), as the official code does.
    """
    sizes = np.zeros(np.broadcast(np.asarray(p_lower), np.asarray(p_upper)).shape, dtype=np.int64)
    for end in (p_lower, p_upper):
        i = np.minimum(np.searchsorted(GRID, np.clip(end, 0.0, 1.0), side="left"), len(GRID) - 1)
        sizes = np.maximum(sizes, np.maximum(table[i], table[np.maximum(i - 1, 0)]))
    return sizes


def counts_per_input(sampler: Sampler, xs: torch.Tensor, sizes, generator=None) -> torch.Tensor:
    """Vote counts ``[num_inputs, num_votes]`` with ``sizes[i]`` noisy samples for input i (0 allowed).

    The inputs share forward passes: one :meth:`Sampler.counts` call per bit
    of the largest size, call j drawing ``2^j`` samples for every input whose
    size has bit j set (the samples are i.i.d., so how a size is split does
    not matter).  Exactly ``sum(sizes)`` samples in at most ``log2(max) + 1`` calls.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if np.any(sizes < 0):
        raise ValueError(f"sample sizes must be >= 0, got {sizes}")
    counts = torch.zeros((len(xs), sampler.num_votes), dtype=torch.long)
    for bit in range(int(sizes.max(initial=0)).bit_length()):
        rows = torch.from_numpy(np.nonzero((sizes >> bit) & 1)[0])
        if len(rows):
            counts[rows] += sampler.counts(xs[rows], 1 << bit, generator)
    return counts


@register
class ISS(Certifier):
    """ISS as published: the pilot selects c_A, sizes the sample and is reused in the estimate (module docstring)."""

    name = "iss"
    sound = False
    unsound_reason = ("the n0 pilot samples select c_A, choose the sample size and are reused in the Clopper-Pearson "
                      "estimate at the full alpha, with no alpha split: the violation probability exceeds alpha near "
                      "p_A = 1/2")
    summary = "input-specific sample size (Chen et al. 2022): a pilot sizes the sample from a radius-decline table"
    settings_fields = ("sigma", "n0", "n", "alpha", "decline", "decline_type", "reuse_pilot")
    #: Whether the pilot's counts enter the estimate (the published procedure) or fresh samples are drawn.
    reuse_pilot = True

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 2000, n: int = 100_000, alpha: float = 0.001,
                 decline: float = 0.01, decline_type: str = "absolute", batch_size: int = 1000, device=None):
        self.check_sampling(sigma, n0, n, alpha)
        self.noise = Gaussian(self.sigma)
        self.table = iss_table(self.sigma, self.n, self.alpha, decline, decline_type)
        self.decline, self.decline_type = float(decline), decline_type
        self.set_model(model, num_classes, device, batch_size)
        self.sampler = self.new_sampler(self.noise)

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        """Pilot for all inputs in shared batches, then the per-input sizes (:func:`counts_per_input`, shared too).

        ``seconds`` is the batch's wall-clock shared in proportion to each input's forward passes.
        """
        start = time.perf_counter()
        pilot = self.sampler.counts(xs, self.n0, generator)
        ledger.use("selection", pilot)
        top = pilot.argmax(dim=1)
        k0 = pilot.gather(1, top[:, None]).squeeze(1).numpy()
        with ledger.auxiliary():  # the pilot's interval only sizes the estimate (or abstains)
            pilot_lower, pilot_upper = (np.atleast_1d(b) for b in clopper_pearson_interval(k0, self.n0, self.alpha))
        chosen = iss_sample_size(self.table, pilot_lower, pilot_upper)
        if self.reuse_pilot:  # the estimate counts the pilot: draw up to max(chosen, n0) in total
            drawn = np.where(chosen > 0, np.maximum(chosen, self.n0) - self.n0, 0)
            used = np.where(chosen > 0, drawn + self.n0, 0)
        else:  # fresh samples only
            drawn = used = chosen
        extra = counts_per_input(self.sampler, xs, drawn, generator)
        ledger.use("estimation", extra)
        if self.reuse_pilot:
            ledger.use("estimation", pilot)
        k = extra.gather(1, top[:, None]).squeeze(1).numpy() + (k0 if self.reuse_pilot else 0)
        estimated = used > 0  # chosen = 0: the table says abstain, no estimate (both branches below are evaluated)
        bound = clopper_pearson_lower(np.where(estimated, k, 0), np.where(estimated, used, 1), self.alpha)
        p_lower = np.where(estimated, bound, pilot_lower)
        passes = self.n0 + drawn
        elapsed = time.perf_counter() - start
        abstain = (used == 0) | abstains(p_lower)
        radius = np.where(abstain, 0.0, self.sigma * ndtri(np.where(abstain, 0.5, p_lower)))  # Cohen: sigma Phi^-1
        extras = [{"n_chosen": int(chosen[i]), "estimation_samples": int(used[i]), "count": int(k[i]),
                   "pilot_count": int(k0[i]), "pilot_lower": float(pilot_lower[i]),
                   "pilot_upper": float(pilot_upper[i])} for i in range(len(xs))]
        return l2_certificates(top.tolist(), abstain, radius, p_lower, passes, elapsed * passes / float(passes.sum()),
                               math.prod(xs.shape[1:]), extras)

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return _cases(cls)


@register
class ISSSound(ISS):
    """ISS with fresh estimation samples: the pilot only selects c_A and sets the size (module docstring)."""

    name = "iss_sound"
    sound = True
    unsound_reason = ""
    summary = "ISS with a fresh estimate: the pilot only selects c_A and sizes the sample, so Cohen's bound holds"
    reuse_pilot = False

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return _cases(cls)

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.overriding(cls, "reused-selection", "the estimate counts the pilot draws (reuse_pilot)",
                                    "gaussian-rotated-d100", 6000, mutation.REUSED_SELECTION, reuse_pilot=True),
                mutation.doubled_alpha(cls, "gaussian-rotated-d100", 1500)]


def _cases(cls) -> list[harness.Case]:
    """Both variants on the half-space in d = 100 (pilot n0, N_max = n): p_A just above 1/2 (where the pilot's count
    enters the published estimate), at the decline's edge (the first p_A whose table entry is not 0, at the harness's
    alpha = 0.05), and across the range."""
    edge = float(GRID[np.argmax(iss_table(harness.SIGMA, harness.N, 0.05) > 0)])
    return [harness.half_space_case(cls.name, "gaussian", 100, axis=None,
                                    ps=(harness.NEAR_HALF, edge, *harness.HALF_SPACE_P[1:]))]
