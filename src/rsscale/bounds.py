"""Confidence bounds on a binomial proportion, as used by randomized smoothing.

All functions take ``k`` successes out of ``n`` trials and a failure
probability ``alpha``; they accept scalars or NumPy arrays and return floats
or arrays.  The exact (Clopper-Pearson) bounds are Beta quantiles computed by
SciPy:

* lower one-sided:  ``Beta(alpha; k, n - k + 1)`` (0 when k = 0),
* upper one-sided:  ``Beta(1 - alpha; k + 1, n - k)`` (1 when k = n).

Each holds with probability >= 1 - alpha over the draw of k ~ Bin(n, p).

Reference: Clopper & Pearson, Biometrika 1934; used by Cohen et al. 2019.

Also here: the randomized Clopper-Pearson bound (exact coverage, never
looser; Stevens 1950), and confidence sequences, valid at every sample count
simultaneously and therefore at data-dependent stopping times: the
Krichevsky-Trofimov betting sequence (Ville's inequality) and a union bound
of Clopper-Pearson bounds over geometric checkpoints (Voracek, NeurIPS 2024).

Every bound is a confidence statement for the confidence ledger (:mod:`rsscale.ledger`: recorded with its alpha
while an audit records; a confidence sequence as one anytime-valid statement).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import betainc as _betainc
from scipy.special import betaln as _betaln
from scipy.stats import beta as _beta
from scipy.stats import binomtest

from rsscale.ledger import statement


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float, or raise if it is not inside (0, 1)."""
    alpha = float(alpha)
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return alpha


def _check_counts(k, n):
    k = np.asarray(k)
    n = np.asarray(n)
    if np.any(n < 1):
        raise ValueError(f"the number of trials n must be >= 1, got {n}")
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"the count k must satisfy 0 <= k <= n, got k={k}, n={n}")
    return k, n


def _scalar_or_array(value):
    value = np.asarray(value, dtype=float)
    return float(value) if value.ndim == 0 else value


@statement()
def clopper_pearson_lower(k, n, alpha: float):
    """One-sided lower (1 - alpha) confidence bound on p from k ~ Bin(n, p)."""
    alpha = check_alpha(alpha)
    k, n = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        bound = _beta.ppf(alpha, k, n - k + 1)
    return _scalar_or_array(np.where(k == 0, 0.0, bound))


@statement()
def clopper_pearson_upper(k, n, alpha: float):
    """One-sided upper (1 - alpha) confidence bound on p from k ~ Bin(n, p)."""
    alpha = check_alpha(alpha)
    k, n = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        bound = _beta.ppf(1.0 - alpha, k + 1, n - k)
    return _scalar_or_array(np.where(k == n, 1.0, bound))


@statement()
def clopper_pearson_interval(k, n, alpha: float):
    """Two-sided (1 - alpha) interval: each side at level alpha / 2."""
    alpha = check_alpha(alpha)
    return clopper_pearson_lower(k, n, alpha / 2), clopper_pearson_upper(k, n, alpha / 2)


def binomial_test_pvalue(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test p-value of k successes in n trials at p."""
    k, n = _check_counts(k, n)
    return float(binomtest(int(k), int(n), p, alternative="two-sided").pvalue)


def min_samples_to_certify(alpha: float) -> int:
    """Smallest n for which n agreeing samples give a Clopper-Pearson bound > 1/2.

    With k = n the lower bound is ``alpha^(1/n)``, which exceeds 1/2 iff
    ``n > log(alpha) / log(1/2)``.
    """
    alpha = check_alpha(alpha)
    return math.floor(math.log(alpha) / math.log(0.5)) + 1


# ---- randomized Clopper-Pearson ---------------------------------------------------------------------------


def _bisect_last_nonpositive(f, lo, hi, iterations: int = 64):
    """Vectorized bisection for an increasing ``f`` with ``f(lo) <= 0``: the largest point found with ``f <= 0``.

    The invariant ``f(lo) <= 0`` holds at every step and ``lo`` is returned, so
    the result never lies beyond the root (a lower bound stays conservative).
    """
    lo, hi = np.asarray(lo, dtype=float).copy(), np.asarray(hi, dtype=float).copy()
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = f(mid) <= 0
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return lo


def _uniforms(shape, u, generator):
    """The randomization U ~ U(0, 1): given explicitly, or drawn from a torch or NumPy generator (never implicit)."""
    if u is not None:
        u = np.broadcast_to(np.asarray(u, dtype=float), shape)
        if np.any((u < 0) | (u > 1)) or np.any(np.isnan(u)):
            raise ValueError(f"u must lie in [0, 1], got {u}")
        return u
    if generator is None:
        raise ValueError("the randomized bound needs its uniform draw: pass u or an explicit generator")
    if isinstance(generator, np.random.Generator):
        return generator.random(shape)
    import torch  # only here: the bounds module stays NumPy/SciPy otherwise

    return torch.rand(shape, generator=generator, dtype=torch.float64).numpy()


@statement()
def randomized_clopper_pearson_lower(k, n, alpha: float, u=None, generator=None):
    """Randomized (exact-coverage) one-sided lower bound on p from k ~ Bin(n, p) and an independent U ~ U(0, 1).

    The bound is the root p_L of ``P_p(X > k) + U P_p(X = k) = alpha`` (0 when
    ``U >= alpha`` at k = 0; 1 when ``U <= alpha`` at k = n).  Under X ~ Bin(n, p)
    the randomized tail ``P_p(X > X_obs) + U P_p(X = X_obs)`` is exactly U(0, 1),
    and the left side increases in p, so ``P(p_L > p) = alpha`` for every
    p in (0, 1): coverage exactly 1 - alpha (Stevens, Biometrika 1950; used for
    randomized smoothing by Voracek, NeurIPS 2024).  The left side is at most
    ``P_p(X >= k)``, which equals alpha at the Clopper-Pearson bound, so p_L is
    never below the Clopper-Pearson bound (equal at U = 1).

    ``u`` gives U explicitly (scalar or array broadcast to k); otherwise it is
    drawn from ``generator`` (a ``torch.Generator`` or ``numpy.random.Generator``).
    Solved by bisection on the binomial tails (regularized incomplete beta functions) between 0 and the
    Clopper-Pearson bound of k + 1 (where the left side is >= alpha); the
    returned end keeps ``left side <= alpha``, so rounding never makes it
    anti-conservative, and it is floored at the Clopper-Pearson bound.
    """
    alpha = check_alpha(alpha)
    k, n = _check_counts(k, n)
    k, n = np.broadcast_arrays(k, n, *([] if u is None else [np.asarray(u)]))[:2]
    u = _uniforms(k.shape, u, generator)
    hi = np.where(k < n, clopper_pearson_lower(np.minimum(k + 1, n), n, alpha), 1.0)

    kf, nf = k.astype(float), n.astype(float)
    at_least_k_plus_1 = (k < n, np.minimum(kf + 1, nf), np.maximum(nf - kf, 1.0))  # P(X >= k+1) = I_p(k+1, n-k)
    at_least_k = (k > 0, np.maximum(kf, 1.0), nf - kf + 1)  # P(X >= k) = I_p(k, n-k+1)

    def excess(p):  # P(X > k) + U P(X = k) - alpha = (1 - U) P(X >= k + 1) + U P(X >= k) - alpha
        above = np.where(at_least_k_plus_1[0], _betainc(*at_least_k_plus_1[1:], p), 0.0)
        at_or_above = np.where(at_least_k[0], _betainc(*at_least_k[1:], p), 1.0)
        return (1.0 - u) * above + u * at_or_above - alpha

    bound = _bisect_last_nonpositive(excess, np.zeros(k.shape), hi)
    bound = np.maximum(bound, clopper_pearson_lower(k, n, alpha))  # equal at U = 1: keep bisection rounding out
    bound = np.where((k == 0) & (u >= alpha), 0.0, bound)
    bound = np.where((k == n) & (u <= alpha), 1.0, bound)
    return _scalar_or_array(bound)


@statement()
def randomized_clopper_pearson_upper(k, n, alpha: float, u=None, generator=None):
    """Randomized one-sided upper bound: ``1 - randomized_clopper_pearson_lower(n - k, n, alpha, U)``.

    By the symmetry ``n - X ~ Bin(n, 1 - p)`` it has exact coverage 1 - alpha
    and is never above the Clopper-Pearson upper bound (Stevens 1950).
    """
    k, n = _check_counts(k, n)
    bound = 1.0 - np.asarray(randomized_clopper_pearson_lower(n - k, n, alpha, u, generator))
    return _scalar_or_array(np.minimum(bound, clopper_pearson_upper(k, n, alpha)))  # equal at U = 1, up to rounding


# ---- confidence sequences: valid uniformly over time ------------------------------------------------------


def _log_likelihood(k, n, m):
    """``k log m + (n - k) log(1 - m)`` with ``0 log 0 = 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k > 0, k * np.log(m), 0.0) + np.where(n - k > 0, (n - k) * np.log1p(-m), 0.0)


def _log_kt_mixture(k, n):
    """``log [B(k + 1/2, n - k + 1/2) / B(1/2, 1/2)]``: the KT (Beta(1/2, 1/2)-mixture) probability of the sequence."""
    return _betaln(k + 0.5, n - k + 0.5) - _betaln(0.5, 0.5)


def kt_log_wealth(k, n, m):
    """Log of the Krichevsky-Trofimov mixture martingale for H0: p = m after k successes in n Bernoulli trials.

    ``W_n(m) = B(k + 1/2, n - k + 1/2) / B(1/2, 1/2) / (m^k (1 - m)^(n - k))``, the
    Beta(1/2, 1/2)-mixture likelihood over the Bernoulli(m) likelihood; equal to
    the wealth of betting with the KT plug-in estimate ``(k_{i-1} + 1/2) / i`` on
    each next outcome.  Under p = m it is a nonnegative martingale with
    ``W_0 = 1``, so Ville's inequality gives ``P(exists n: W_n(m) >= 1/alpha) <= alpha``.
    It depends on the sequence only through (k, n), so batched counts suffice.
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    return _log_kt_mixture(k, n) - _log_likelihood(k, n, np.asarray(m, dtype=float))


@statement(anytime=True)
def betting_cs_lower(k, n, alpha: float):
    """Lower end of the KT betting confidence sequence: ``inf {m : W_n(m) < 1/alpha}`` (see :func:`kt_log_wealth`).

    With probability >= 1 - alpha the true p is >= this bound at every n
    simultaneously (Ville's inequality), so it stays valid at any stopping
    time and may be checked after every batch; the running maximum over n is
    valid too.  The set ``{m : W_n(m) < 1/alpha}`` is an interval containing
    k / n (the likelihood is log-concave and its maximum exceeds the mixture),
    so its lower end is the root of ``W_n(m) = 1/alpha`` on [0, k/n], found by
    bisection that keeps the returned end outside the set.  Both ends of the
    interval hold jointly at level alpha, so a one-sided use is conservative.
    References: Waudby-Smith & Ramdas, JRSS-B 2024 (betting CSs); Voracek, NeurIPS 2024.
    """
    alpha = check_alpha(alpha)
    k, n = _check_counts(k, n)
    k, n = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    level = _log_kt_mixture(k, n) + math.log(alpha)  # W_n(m) >= 1/alpha iff the log-likelihood is <= level

    def excess(m):  # increasing on [0, k/n]: the likelihood rises to its maximum at k/n
        return _log_likelihood(k, n, m) - level

    bound = _bisect_last_nonpositive(excess, np.zeros(k.shape), k / n)
    return _scalar_or_array(np.where(k == 0, 0.0, bound))


@statement(anytime=True)
def betting_cs_upper(k, n, alpha: float):
    """Upper end of the KT betting confidence sequence: ``1 - betting_cs_lower(n - k, n, alpha)`` (by symmetry)."""
    k, n = _check_counts(k, n)
    return _scalar_or_array(1.0 - np.asarray(betting_cs_lower(n - k, n, alpha)))


@statement(anytime=True)
def betting_cs(k, n, alpha: float):
    """Both ends of the KT betting sequence: p lies inside at every n, jointly, with probability >= 1 - alpha."""
    return betting_cs_lower(k, n, alpha), betting_cs_upper(k, n, alpha)


def geometric_checkpoints(first: int, growth: float, last: int) -> np.ndarray:
    """Sample counts ``t_1 = first, t_{j+1} = max(t_j + 1, ceil(growth * t_j))``, capped at and ending with ``last``."""
    first, last, growth = int(first), int(last), float(growth)
    if first < 1 or last < 1:
        raise ValueError(f"checkpoints need first >= 1 and last >= 1, got first={first}, last={last}")
    if not growth > 1.0:
        raise ValueError(f"the checkpoint growth factor must be > 1, got {growth}")
    points = [min(first, last)]
    while points[-1] < last:
        points.append(min(last, max(points[-1] + 1, math.ceil(growth * points[-1]))))
    return np.asarray(points, dtype=np.int64)


def union_bound_alpha(index, alpha: float):
    """Level of checkpoint ``index`` (1-based) in the union-bound sequence: ``alpha_j = alpha * 6 / (pi^2 j^2)``.

    ``sum_j alpha_j = alpha`` (Basel series), so bounds that each hold at
    alpha_j at their checkpoint hold at all checkpoints jointly w.p. >= 1 - alpha.
    """
    alpha = check_alpha(alpha)
    index = np.asarray(index)
    if np.any(index < 1):
        raise ValueError(f"checkpoint indices start at 1, got {index}")
    return _scalar_or_array(alpha * 6.0 / (math.pi**2 * index.astype(float) ** 2))


@statement(anytime=True)
def union_bound_lower(k, n, index, alpha: float):
    """Clopper-Pearson lower bound at level ``alpha_j`` (:func:`union_bound_alpha`) at checkpoint j = ``index``.

    Evaluated at geometrically spaced checkpoints (:func:`geometric_checkpoints`),
    the bounds hold at all checkpoints simultaneously w.p. >= 1 - alpha by the
    union bound, so the running maximum is a lower confidence sequence over the
    checkpoints (Voracek, NeurIPS 2024, union-bound baseline).
    """
    level = union_bound_alpha(index, alpha)
    k, n = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        bound = _beta.ppf(level, k, n - k + 1)
    return _scalar_or_array(np.where(k == 0, 0.0, bound))


@statement(anytime=True)
def union_bound_upper(k, n, index, alpha: float):
    """Clopper-Pearson upper bound at level ``alpha_j`` at checkpoint j = ``index`` (see :func:`union_bound_lower`)."""
    level = union_bound_alpha(index, alpha)
    k, n = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        bound = _beta.ppf(1.0 - level, k + 1, n - k)
    return _scalar_or_array(np.where(k == n, 1.0, bound))


@statement(anytime=True)
def union_bound_cs(k, n, index, alpha: float):
    """Two-sided union-bound sequence: each side at ``alpha_j / 2``; jointly valid over all checkpoints at alpha."""
    alpha = check_alpha(alpha)
    return union_bound_lower(k, n, index, alpha / 2), union_bound_upper(k, n, index, alpha / 2)
