"""Ensembles as the base classifier (Horvath, Mueller, Fischer & Vechev, "Boosting Randomized Smoothing with
Variance Reduced Classifiers", ICLR 2022).

The base classifier is ``f(x) = argmax_c sum_j z_j(x)_c``, the argmax of the summed logits of k models.  It is one
deterministic function of its input, so Cohen's CERTIFY on it (:class:`rsscale.smooth.SmoothedClassifier`, unchanged)
gives a valid certificate; the ensemble only lowers the variance of f under noise, raising p_A.

K-consensus (the paper's cheap prediction): evaluate the first K members; on the noisy samples where all K name the
same argmax class c, return ``sum_{j<K} z_j`` (whose argmax is c) and skip the other k - K members; elsewhere evaluate
all k and return their sum.  Whether a sample is decided by consensus depends on that sample only, so f is still a
deterministic function and the certificate is still Cohen's.  The cost is k member evaluations per noisy sample
without consensus, K on the samples where the first K agree.

``forward_passes`` is the number of noisy samples (n0 + n, as for every family); the member evaluations actually
spent are counted per input and reported in ``extra["model_evaluations"]`` (and per sample in
``extra["evaluations_per_sample"]``).
"""

from __future__ import annotations

import torch

from rsscale import harness, mutation
from rsscale.methods.base import register
from rsscale.methods.common import EnsembleCertifier
from rsscale.noise import Gaussian, noise_from_sigma
from rsscale.oracles import IntervalClassifier, sign_vector
from rsscale.smooth import SmoothedClassifier, check_sample_size


class EnsembleModel(torch.nn.Module):
    """Summed logits of ``members``, with optional K-consensus (module docstring).

    While :attr:`recording` is on, each call appends the member evaluations of each of its rows (an int16 tensor) to
    :attr:`log`; the sampler calls the model on consecutive flat sample indices, so the concatenated log is in flat
    sample order (sample j of input i at ``i * num_samples + j``, :mod:`rsscale.sampling`).
    """

    def __init__(self, members, consensus: int | None = None):
        super().__init__()
        members = list(members)
        if not members or not all(isinstance(m, torch.nn.Module) for m in members):
            raise ValueError(f"an ensemble needs a non-empty list of torch.nn.Module members, got {members!r}")
        self.members = torch.nn.ModuleList(members)
        if consensus is not None:
            consensus = check_sample_size("consensus", consensus)
            if consensus > len(members):
                raise ValueError(f"consensus K must be at most the number of members ({len(members)}), got {consensus}")
            if consensus == len(members):
                consensus = None  # all members agree or not: the sum is computed either way
        self.consensus = consensus
        shape = getattr(members[0], "input_shape", None)
        if shape:
            self.input_shape = tuple(shape)
        self.recording = False
        self.log: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.members)
        if self.consensus is None:
            total = sum(member(x) for member in self.members)
            cost = torch.full((x.shape[0],), k, dtype=torch.int16)
        else:
            first = [member(x) for member in self.members[: self.consensus]]
            total = sum(first)
            votes = torch.stack([z.argmax(dim=1) for z in first])
            rest = (votes != votes[0]).any(dim=0).nonzero().squeeze(1)
            if len(rest):
                total = total.clone()
                total[rest] += sum(member(x[rest]) for member in self.members[self.consensus:])
            cost = torch.full((x.shape[0],), self.consensus, dtype=torch.int16)
            cost[rest.cpu()] = k
        if self.recording:
            self.log.append(cost)
        return total


@register
class Ensemble(EnsembleCertifier):
    """Cohen's CERTIFY on the summed-logit ensemble of ``model`` (a list or ModuleList of members)."""

    name = "ensemble"
    summary = "base model = argmax of summed logits of k models (Horvath et al. 2022), optional K-consensus; Cohen"
    settings_fields = ("sigma", "n0", "n", "alpha", "members", "consensus")

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                 consensus: int | None = None, batch_size: int = 1000, device=None):
        members = model.members if isinstance(model, EnsembleModel) else model
        if isinstance(members, torch.nn.Module) and not isinstance(members, torch.nn.ModuleList):
            members = [members]
        self.ensemble = EnsembleModel(members, consensus)
        self.smoothed = SmoothedClassifier(self.ensemble, num_classes, noise_from_sigma("gaussian", sigma), batch_size,
                                           device)
        self.check_sampling(sigma, n0, n, alpha)

    @property
    def consensus(self) -> int:
        return self.ensemble.consensus or self.members

    def recorded(self) -> dict:
        return {"consensus": self.consensus}

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return [_majority_case(None), _majority_case(2)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.doubled_alpha(cls, "majority-rotated-d100-K3", 800)]


#: The harness's members: three half-spaces u . x >= a, a = -0.2, 0.2, 0 (same u); their summed one-hot votes are the
#: majority, i.e. the half-space u . x >= 0; with K = 2 consensus the third member decides only where the first two
#: disagree.
ENSEMBLE_THRESHOLDS = (-0.2, 0.2, 0.0)


def _majority_case(consensus: int | None) -> harness.Case:
    def run(trials, seed, alpha, factory):
        u = sign_vector(100)
        members = [IntervalClassifier(u, [a], [0, 1], num_classes=2) for a in ENSEMBLE_THRESHOLDS]
        oracle = IntervalClassifier(u, [0.0], [0, 1], num_classes=2)
        certifier = harness.build(factory, "ensemble", members, 2, harness.N, alpha, 100, consensus=consensus)
        noise = Gaussian(harness.SIGMA)
        return harness.half_space_outcomes(oracle, noise, certifier, harness.COHEN_POSITIONS, trials, seed)

    run.__doc__ = (f"majority of the half-spaces u . x >= a, a in {ENSEMBLE_THRESHOLDS} (= the half-space u . x >= 0), "
                   f"d = 100 (u a random-sign diagonal), consensus K = {consensus or 3}; inputs at p_A in "
                   f"{harness.HALF_SPACE_P}, either side, where Cohen's CERTIFY on the majority has an exact violation "
                   f"probability; true l_q radius |u . x| / ||u||_q*")
    return harness.case("ensemble", f"majority-rotated-d100-K{consensus or 3}", run, dim=100,
                        positions=harness.COHEN_POSITIONS)
