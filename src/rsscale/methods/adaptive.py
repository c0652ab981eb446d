"""Certification at a target l2 radius with early stopping: Horvath et al.'s staged sampling and Voracek's
confidence sequences.

The question is a decision: is g constant on the l2 ball of radius r_target
around x?  With Gaussian noise that holds when ``p_A > p* = Phi(r_target /
sigma)`` (Cohen et al.), so a procedure certifies once a valid lower bound on
p_A exceeds p*, abstains early once an upper bound is <= p* (r_target is out
of reach), and abstains when its budget of ``n`` estimation samples is spent.
One registered certifier, ``adaptive``, with ``strategy``:

* ``"horvath"`` (Horvath, Mueller, Fischer & Vechev, "Boosting Randomized
  Smoothing with Variance Reduced Classifiers", ICLR 2022, adaptive
  sampling): s stages of growing size (the paper's 1,000, 10,000, 125,000,
  scaled so the last is ``n``: ``stages`` gives the proportions).  Stage j
  draws n0 fresh selection samples (c_A = most frequent class) and m_j fresh
  estimation samples; it certifies if the Clopper-Pearson lower bound at
  ``alpha / s`` exceeds p*, and (j < s) abstains if the upper bound at
  ``beta / (s - 1)`` is <= p*.  Soundness: each stage's bound holds at alpha/s
  given the past (fresh samples), so all bounds of the stages run hold
  jointly w.p. >= 1 - alpha (union bound).  It spends up to
  ``s n0 + sum_j m_j`` forward passes (the sequences: ``n0 + n``).
* ``"betting"``: n0 selection samples fix c_A, then estimation samples in
  batches ending at the checkpoints ``first, ~growth * first, ..., n``; after
  each batch the Krichevsky-Trofimov betting confidence sequence
  (:func:`rsscale.bounds.betting_cs_lower`, Ville's inequality) gives the lower
  bound at level alpha and, separately, the upper bound at level beta.
* ``"union"``: as ``"betting"``, with Clopper-Pearson bounds at
  ``alpha_j = alpha 6 / (pi^2 j^2)`` (upper: ``beta_j``) at checkpoint j
  (:func:`rsscale.bounds.union_bound_lower`), valid jointly over checkpoints.
  Voracek ("Treatment of Statistical Estimation Problems in Randomized
  Smoothing for Adversarial Robustness", NeurIPS 2024) checks after every
  sample; checking at geometric checkpoints costs at most a factor
  ``growth`` in samples and keeps the forward passes batched.

Alpha: for the two sequences, c_A comes from independent samples drawn
before the sequence starts, so selection spends no alpha and the whole alpha
goes to the lower sequence (valid at every sample count, hence at the data-
dependent stopping time; the running maximum is reported).  The upper bounds
only decide early abstention, which is never a wrong certificate, so they use
their own level beta (default: alpha).  In every strategy the final lower
bound holds at 1 - alpha jointly with the decision, so the radius it implies,
``sigma Phi^-1(p_lower)`` (>= r_target when certified), is reported in
``extra["implied_radius"]``.

Certificate: prediction c_A and radius r_target when certified, else ABSTAIN
and 0; p_lower the final lower bound; forward_passes all samples spent
(selection included); ``extra["decision"]`` is ``certified``,
``abstain_upper`` (ruled out early) or ``abstain_budget``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import ndtr, ndtri

from rsscale import harness, ledger, mutation
from rsscale.bounds import (
    betting_cs_lower,
    betting_cs_upper,
    check_alpha,
    clopper_pearson_lower,
    clopper_pearson_upper,
    geometric_checkpoints,
    union_bound_lower,
    union_bound_upper,
)
from rsscale.certificate import Certificate
from rsscale.methods.base import Certifier, register
from rsscale.methods.common import l2_certificates
from rsscale.noise import Gaussian
from rsscale.smooth import check_sample_size, estimate

STRATEGIES = ("horvath", "betting", "union")
#: Horvath et al.'s stage sizes; scaled so that the last stage is n.
HORVATH_STAGES = (1000, 10_000, 125_000)
DECISIONS = ("abstain_budget", "certified", "abstain_upper")  # indexed by the status codes below
_BUDGET, _CERTIFIED, _RULED_OUT = 0, 1, 2


def scaled_stages(stages: Sequence[float], n: int) -> list[int]:
    """Stage sizes proportional to ``stages`` with the last equal to n (each >= 1, duplicates dropped)."""
    values = [float(s) for s in stages]
    if not values or any(not (math.isfinite(s) and s > 0) for s in values) or any(
            b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"stages must be positive and strictly increasing, got {tuple(stages)}")
    sizes = [max(1, round(n * s / values[-1])) for s in values]
    return sorted(set(sizes))


def _fixed_n_bounds(self, k: np.ndarray, t: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """A mutant's step (:meth:`Adaptive.mutants`): Clopper-Pearson bounds for a fixed n = t at every checkpoint, valid
    at each checkpoint alone but not at a data-dependent stopping time."""
    lower = clopper_pearson_lower(k, t, self.alpha)
    with ledger.auxiliary():
        return lower, clopper_pearson_upper(k, t, self.beta)


@register
class Adaptive(Certifier):
    """Decision at ``r_target`` with early stopping; ``strategy`` in :data:`STRATEGIES` (module docstring)."""

    name = "adaptive"
    summary = ("certify a target l2 radius with early stopping: Horvath et al.'s stages, or a betting / union-bound "
               "confidence sequence (Voracek 2024)")

    def __init__(self, model, num_classes: int, sigma: float, r_target: float | None = None, n0: int = 100,
                 n: int = 125_000, alpha: float = 0.001, strategy: str = "betting", beta: float | None = None,
                 stages: Sequence[float] = HORVATH_STAGES, first: int = 10, growth: float = 1.25,
                 batch_size: int = 1000, device=None):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if r_target is None:
            raise ValueError("adaptive certification needs r_target, the l2 radius to certify (>= 0), got None")
        r = math.nan if isinstance(r_target, bool) else float(r_target)
        if not (math.isfinite(r) and r >= 0):
            raise ValueError(f"r_target must be a finite number >= 0, got {r_target!r}")
        self.strategy, self.r_target = strategy, r
        self.check_sampling(sigma, n0, n, alpha)
        self.beta = self.alpha if beta is None else check_alpha(beta)
        self.noise = Gaussian(self.sigma)
        self.p_star = float(ndtr(self.r_target / self.sigma))
        self.stages = scaled_stages(stages, self.n)
        self.first, self.growth = check_sample_size("first", first), float(growth)
        self.checkpoints = geometric_checkpoints(self.first, self.growth, self.n)
        self.set_model(model, num_classes, device, batch_size)
        self.sampler = self.new_sampler(self.noise)

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        """All inputs share forward passes; each check step draws one batch for the inputs still undecided.

        ``seconds`` is the batch's wall-clock shared in proportion to each input's forward passes.
        """
        start = time.perf_counter()
        run = self._stages if self.strategy == "horvath" else self._sequence
        state = run(xs, generator)
        elapsed = time.perf_counter() - start
        dim = math.prod(xs.shape[1:])
        lower = state["lower"]
        implied = np.where(lower > 0.5, self.sigma * ndtri(np.maximum(lower, 0.5)), 0.0)
        passes = state["passes"]
        extras = [{"decision": DECISIONS[state["status"][i]], "r_target": self.r_target,
                   "candidate": int(state["candidate"][i]), "samples": int(state["samples"][i]),
                   "count": int(state["count"][i]), "checks": int(state["checks"][i]),
                   "p_upper": float(state["upper"][i]), "implied_radius": float(implied[i])} for i in range(len(xs))]
        return l2_certificates([int(c) for c in state["candidate"]], state["status"] != _CERTIFIED,
                               np.full(len(xs), self.r_target), lower, passes, elapsed * passes / float(passes.sum()),
                               dim, extras)

    def _empty_state(self, num: int) -> dict[str, np.ndarray]:
        return {"candidate": np.zeros(num, dtype=np.int64), "status": np.full(num, _BUDGET),
                "lower": np.zeros(num), "upper": np.ones(num), "count": np.zeros(num, dtype=np.int64),
                "samples": np.zeros(num, dtype=np.int64), "passes": np.zeros(num, dtype=np.int64),
                "checks": np.zeros(num, dtype=np.int64)}

    def _decide(self, state, rows: np.ndarray, can_rule_out: bool = True) -> np.ndarray:
        """Mark the rows whose bounds decide; return the rows still undecided."""
        certified = state["lower"][rows] > self.p_star
        ruled_out = ~certified & (state["upper"][rows] <= self.p_star) & can_rule_out
        state["status"][rows[certified]] = _CERTIFIED
        state["status"][rows[ruled_out]] = _RULED_OUT
        return rows[~(certified | ruled_out)]

    def _hits(self, xs, rows, classes, num_samples, generator) -> np.ndarray:
        return estimate(self.sampler, xs[torch.from_numpy(rows)], num_samples, torch.from_numpy(classes), generator)

    def _stages(self, xs, generator):
        """Horvath et al.: fresh selection and estimation per stage, bounds at alpha / s and beta / (s - 1)."""
        state = self._empty_state(len(xs))
        s = len(self.stages)
        rows = np.arange(len(xs))
        for j, size in enumerate(self.stages, start=1):
            if not len(rows):
                break
            selection = self.sampler.counts(xs[torch.from_numpy(rows)], self.n0, generator)
            ledger.use("selection", selection)
            state["candidate"][rows] = selection.argmax(dim=1).numpy()
            hits = self._hits(xs, rows, state["candidate"][rows], size, generator)
            state["count"][rows], state["checks"][rows] = hits, j
            state["samples"][rows] += size
            state["passes"][rows] += self.n0 + size
            state["lower"][rows] = np.atleast_1d(clopper_pearson_lower(hits, size, self.level("stage")))
            with ledger.auxiliary():  # the upper bound only rules out (abstains) early
                state["upper"][rows] = np.atleast_1d(clopper_pearson_upper(hits, size, self.beta / max(s - 1, 1)))
            rows = self._decide(state, rows, can_rule_out=j < s)
        return state

    def _sequence(self, xs, generator):
        """One selection, then batches up to the checkpoints; the betting or union-bound sequence after each."""
        state = self._empty_state(len(xs))
        selection = self.sampler.counts(xs, self.n0, generator)
        ledger.use("selection", selection)
        state["candidate"][:] = selection.argmax(dim=1).numpy()
        state["passes"][:] = self.n0
        rows = np.arange(len(xs))
        drawn = 0
        for j, t in enumerate(self.checkpoints.tolist(), start=1):
            if not len(rows):
                break
            state["count"][rows] += self._hits(xs, rows, state["candidate"][rows], t - drawn, generator)
            drawn = t
            state["samples"][rows], state["checks"][rows] = t, j
            state["passes"][rows] = self.n0 + t
            k = state["count"][rows]
            lower, upper = self.sequence_bounds(k, t, j)
            state["lower"][rows] = np.maximum(state["lower"][rows], lower)  # running max/min: valid jointly
            state["upper"][rows] = np.minimum(state["upper"][rows], upper)
            rows = self._decide(state, rows)
        return state

    def sequence_bounds(self, k: np.ndarray, t: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """The confidence sequence's lower (level alpha) and upper (level beta) bounds after ``k`` hits of ``t`` draws,
        at checkpoint ``j``: valid at every checkpoint at once."""
        betting = self.strategy == "betting"
        lower = betting_cs_lower(k, t, self.alpha) if betting else union_bound_lower(k, t, j, self.alpha)
        with ledger.auxiliary():  # the upper bound only rules out (abstains) early
            return lower, betting_cs_upper(k, t, self.beta) if betting else union_bound_upper(k, t, j, self.beta)

    def level(self, statement: str) -> float:
        """Each ``stage``'s lower bound of Horvath et al.'s staging at alpha / s (s stages)."""
        return self.alpha / len(self.stages)

    @property
    def settings_fields(self) -> tuple[str, ...]:
        steps = ("stages",) if self.strategy == "horvath" else ("first", "growth")
        return ("sigma", "r_target", "strategy", "n0", "n", "alpha", "beta", *steps)

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        """A decision at r_target = 0.1 (p* = Phi(0.2) = 0.579) on the half-space, for each strategy: inputs just
        above 1/2 (selection), just below p* (a certificate there is a violation: where a sequence that is not valid
        at its stopping time errs), just above it, and far above."""
        p_star = float(ndtr(0.1 / harness.SIGMA))
        ps = (harness.NEAR_HALF, p_star - 0.01, p_star - 0.003, p_star + 0.003, 0.9)
        labels = (f"p={harness.NEAR_HALF:g}", "p*-0.01", "p*-0.003", "p*+0.003", "p=0.9")
        return [harness.half_space_case(cls.name, strategy, 100, axis=None, ps=ps, labels=labels, r_target=0.1,
                                        strategy=strategy) for strategy in STRATEGIES]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.doubled_alpha(cls, "betting-rotated-d100", 300, shares=("alpha", "beta")).surviving(
                    "the betting sequence is conservative: at most 0.4 alpha after doubling at every position; only a "
                    "test against its own violation probability would catch it"),
                mutation.overriding(cls, "fixed-n-bounds", "the confidence sequence replaced by Clopper-Pearson "
                                    "bounds for a fixed n at every checkpoint", "betting-rotated-d100", 400,
                                    sequence_bounds=_fixed_n_bounds),
                mutation.full_level(cls, "stage", "no-stage-split", "Horvath et al.'s stages without the alpha/s "
                                    "split", "horvath-rotated-d100", 300).surviving(
                    "1.11 alpha just below p* (p* - 0.003, 6,000 trials): some 30,000 trials per position there")]
