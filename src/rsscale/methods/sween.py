"""SWEEN, smoothed weighted ensembling: a learned weighted ensemble as the base classifier (Liu, Feng, Wang and Dong,
"Enhancing Certified Robustness via Smoothed Weighted Ensembling", 2020, arXiv:2005.09363).

Base classifier ``f(x) = argmax_c F_c(x)``, ``F(x) = sum_j a_j softmax(z_j(x))``, ``a = softmax(w)``.  The weights w
are fitted once, with the members frozen, by minimising the cross-entropy ``-log F_y(x + e)`` of the mixture on
Gaussian copies of held-out examples (:func:`fit_weights`): in the study the held-out part of the training split
(:meth:`rsscale.data.Dataset.held_out`), which no member trains on, so the weights are not fitted to the members'
memorised training examples.  Certification is Cohen's CERTIFY on f, unchanged.

Adaptive prediction: evaluate the members in decreasing weight ``a_(1) >= a_(2) >= ...``; after m of them, with
partial sums ``S_c = sum_{j <= m} a_(j) softmax_c`` and remaining weight ``W = sum_{j > m} a_(j)``, stop when the top
class c1 leads the runner-up by ``S_c1 - S_c2 > W``.  Claim: then c1 is the unique argmax of the full F.  Proof: each
remaining member adds to every class between 0 and its weight, so ``F_c1 >= S_c1`` and, for every c != c1,
``F_c <= S_c + W <= S_c2 + W < S_c1 <= F_c1``.  So the adaptive classifier equals the full ensemble's argmax on every
input (ties included: it stops only when the argmax is unique), it is a deterministic function of the input, and
Cohen's certificate on it is valid.  Sums are accumulated in float64 and the stop test asks for the margin to exceed
``W`` by 1e-9 (far above float64 rounding), so the exact-arithmetic argument carries over to the computed values.

``forward_passes`` counts noisy samples (n0 + n); the member evaluations actually spent are in
``extra["model_evaluations"]`` and ``extra["evaluations_per_sample"]`` (as for :mod:`rsscale.methods.ensemble`).
"""

from __future__ import annotations

import numpy as np
import torch

from rsscale import harness, mutation
from rsscale.methods.base import register
from rsscale.methods.common import EnsembleCertifier
from rsscale.methods.ensemble import ENSEMBLE_THRESHOLDS
from rsscale.noise import Gaussian
from rsscale.oracles import IntervalClassifier, sign_vector
from rsscale.smooth import SmoothedClassifier, check_sample_size

#: How far the lead must exceed the remaining weight before an early stop (covers float64 rounding).
SLACK = 1e-9


def _members(model) -> list[torch.nn.Module]:
    members = list(model) if isinstance(model, (list, tuple, torch.nn.ModuleList)) else [model]
    if not members or not all(isinstance(m, torch.nn.Module) for m in members):
        raise ValueError(f"SWEEN needs a non-empty list of torch.nn.Module members, got {model!r}")
    return members


@torch.no_grad()
def _noisy_member_probs(members, xs, ys, sigma, copies, batch_size, generator):
    """``[k, len(xs) * copies]``: each member's softmax probability of the label on ``copies`` noisy copies."""
    noise = Gaussian(sigma)
    inputs = xs.repeat_interleave(copies, dim=0)
    labels = ys.repeat_interleave(copies)
    out = torch.empty(len(members), len(inputs), dtype=torch.float64)
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size]
        noisy = batch + noise.sample_(torch.empty_like(batch), generator)
        rows = torch.arange(len(batch))
        for j, member in enumerate(members):
            probs = torch.softmax(member(noisy).double(), dim=1)
            out[j, start:start + len(batch)] = probs[rows, labels[start:start + len(batch)]]
    return out


def fit_weights(models, xs: torch.Tensor, ys: torch.Tensor, sigma: float, copies: int = 8, steps: int = 300,
                lr: float = 0.1, batch_size: int = 1000, generator: torch.Generator | None = None) -> list[float]:
    """SWEEN's weight logits w: minimise the mean of ``-log sum_j softmax(w)_j softmax(z_j(x + e))_y`` over ``copies``
    Gaussian copies of each held-out ``(x, y)`` (members frozen; Adam on w from 0, ``steps`` full-batch steps)."""
    members = _members(models)
    copies, steps = check_sample_size("copies", copies), check_sample_size("steps", steps)
    if xs.ndim < 2 or len(xs) != len(ys) or len(xs) == 0:
        raise ValueError(f"xs must be a non-empty batch with one label each, got {tuple(xs.shape)}, {len(ys)} labels")
    if generator is None:
        raise ValueError("fit_weights needs an explicit torch.Generator (noise draws must be reproducible)")
    for m in members:
        m.eval()
    probs = _noisy_member_probs(members, xs.float(), ys.long(), Gaussian(sigma).sigma, copies,
                                check_sample_size("batch_size", batch_size), generator)
    w = torch.zeros(len(members), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=float(lr))
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -torch.log(torch.softmax(w, 0) @ probs + 1e-12).mean()
        loss.backward()
        optimizer.step()
    return w.detach().tolist()


class WeightedEnsemble(torch.nn.Module):
    """``F(x) = sum_j a_j softmax(z_j(x))`` with optional adaptive early exit (module docstring).

    Returns F (or the partial sums whose argmax is F's) as ``[batch, classes]``; while :attr:`recording` is on each
    call appends the member evaluations per row to :attr:`log` (the format of
    :class:`rsscale.methods.ensemble.EnsembleModel`).
    """

    def __init__(self, members, weights, adaptive: bool = True):
        super().__init__()
        members = _members(members)
        w = torch.as_tensor(weights, dtype=torch.float64).flatten()
        if len(w) != len(members) or not bool(torch.isfinite(w).all()):
            raise ValueError(f"weights must be {len(members)} finite logits (one per member), got {weights!r}")
        a = torch.softmax(w, 0)
        order = torch.argsort(-a, stable=True)
        self.members = torch.nn.ModuleList([members[i] for i in order.tolist()])
        self.register_buffer("a", a[order])
        suffix = a[order].flip(0).cumsum(0).flip(0)  # suffix[j] = weight of members j, j + 1, ...
        self.register_buffer("remaining", torch.cat([suffix[1:], a.new_zeros(1)]))  # weight after member j
        self.adaptive = bool(adaptive)
        shape = getattr(members[0], "input_shape", None)
        if shape:
            self.input_shape = tuple(shape)
        self.recording = False
        self.log: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = torch.arange(x.shape[0], device=x.device)
        cost = torch.zeros(x.shape[0], dtype=torch.int16)
        total = None
        for j, member in enumerate(self.members):
            probs = torch.softmax(member(x[active]).double(), dim=1)
            if total is None:
                total = torch.zeros(x.shape[0], probs.shape[1], dtype=torch.float64, device=x.device)
            total[active] += self.a[j] * probs
            cost[active.cpu()] += 1
            if not self.adaptive or j == len(self.members) - 1:
                continue
            top2 = total[active].topk(min(2, total.shape[1]), dim=1).values
            lead = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0.0)
            active = active[lead <= self.remaining[j] + SLACK]
            if len(active) == 0:
                break
        if self.recording:
            self.log.append(cost)
        return total


@register
class SWEEN(EnsembleCertifier):
    """Cohen's CERTIFY on the weighted ensemble of ``model`` (a list of members) with weight logits ``weights``."""

    name = "sween"
    summary = "SWEEN (Liu et al. 2020): learned softmax-weighted ensemble, adaptive early exit; Cohen"
    settings_fields = ("sigma", "n0", "n", "alpha", "members", "weights", "adaptive")

    def __init__(self, model, num_classes: int, sigma: float, weights=None, adaptive: bool = True, n0: int = 100,
                 n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000, device=None):
        members = _members(model)
        weights = [0.0] * len(members) if weights is None else list(weights)
        self.weights = [float(w) for w in weights]
        self.ensemble = WeightedEnsemble(members, self.weights, adaptive)
        self.smoothed = SmoothedClassifier(self.ensemble, num_classes, Gaussian(sigma), batch_size, device)
        self.check_sampling(sigma, n0, n, alpha)

    @property
    def adaptive(self) -> bool:
        return self.ensemble.adaptive

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return [harness.case(cls.name, "weighted-majority-rotated-d100", _weighted_majority_case, dim=100,
                             positions=harness.COHEN_POSITIONS)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.doubled_alpha(cls, "weighted-majority-rotated-d100", 800)]


def _weighted_majority_case(trials, seed, alpha, factory):
    """weights 0.4, 0.35, 0.25 on the half-spaces u . x >= a, a in (-0.2, 0.2, 0): any two outweigh the third, so the
    weighted vote is the half-space u . x >= 0 (d = 100, u a random-sign diagonal, adaptive exit); inputs at the p_A of
    the half-space positions, either side (Cohen's CERTIFY on it: exact violation probability); true l_q radius
    |u . x| / ||u||_q*"""
    u = sign_vector(100)
    members = [IntervalClassifier(u, [a], [0, 1], num_classes=2) for a in ENSEMBLE_THRESHOLDS]
    oracle = IntervalClassifier(u, [0.0], [0, 1], num_classes=2)
    certifier = harness.build(factory, "sween", members, 2, harness.N, alpha, 100,
                              weights=np.log([0.4, 0.35, 0.25]).tolist())
    noise = Gaussian(harness.SIGMA)
    return harness.half_space_outcomes(oracle, noise, certifier, harness.COHEN_POSITIONS, trials, seed)
