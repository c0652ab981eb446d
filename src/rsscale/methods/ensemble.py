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

from rsscale.bounds import check_alpha
from rsscale.certificate import Certificate
from rsscale.methods.base import Certifier, register
from rsscale.noise import noise_from_sigma
from rsscale.smooth import SmoothedClassifier, check_sample_size, check_selection_and_estimation


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


def _evaluations(log: list[torch.Tensor], num_inputs: int, n0: int, n: int) -> torch.Tensor:
    """Member evaluations per input from a log in flat order: the selection phase, then the estimation phase."""
    costs = torch.cat(log).long()
    if len(costs) != num_inputs * (n0 + n):
        raise RuntimeError(f"expected {num_inputs * (n0 + n)} logged samples, got {len(costs)}")
    selection, estimation = costs[: num_inputs * n0], costs[num_inputs * n0:]
    return selection.view(num_inputs, n0).sum(1) + estimation.view(num_inputs, n).sum(1)


def certify_counting_evaluations(smoothed: SmoothedClassifier, ensemble: torch.nn.Module, xs, n0: int, n: int,
                                 alpha: float, generator=None, **extra) -> list[Certificate]:
    """Cohen's CERTIFY on a smoothed ensemble that logs its member evaluations (``ensemble.log`` while
    ``ensemble.recording``); each certificate records ``members``, ``extra``, the input's ``model_evaluations`` and
    ``evaluations_per_sample`` (k for a plain ensemble, less with early exit or consensus)."""
    if isinstance(xs, (list, tuple)):
        xs = torch.stack(list(xs))
    ensemble.log, ensemble.recording = [], True
    try:
        certs = smoothed.certify_many(xs, n0, n, alpha, generator)
        evaluations = _evaluations(ensemble.log, len(xs), n0, n).tolist()
    finally:
        ensemble.log, ensemble.recording = [], False
    for cert, spent in zip(certs, evaluations, strict=True):
        cert.extra.update({"members": len(ensemble.members), **extra, "model_evaluations": int(spent),
                           "evaluations_per_sample": spent / (n0 + n)})
    return certs


@register
class Ensemble(Certifier):
    """Cohen's CERTIFY on the summed-logit ensemble of ``model`` (a list or ModuleList of members)."""

    name = "ensemble"
    summary = "base model = argmax of summed logits of k models (Horvath et al. 2022), optional K-consensus; Cohen"

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                 consensus: int | None = None, batch_size: int = 1000, device=None):
        members = model.members if isinstance(model, EnsembleModel) else model
        if isinstance(members, torch.nn.Module) and not isinstance(members, torch.nn.ModuleList):
            members = [members]
        self.ensemble = EnsembleModel(members, consensus)
        self.smoothed = SmoothedClassifier(self.ensemble, num_classes, noise_from_sigma("gaussian", sigma), batch_size,
                                           device)
        self.n0, self.n = check_selection_and_estimation(n0, n)
        self.alpha = check_alpha(alpha)
        self.sigma = float(sigma)

    def certify(self, x: torch.Tensor, generator=None) -> Certificate:
        return self.certify_many(x.unsqueeze(0) if isinstance(x, torch.Tensor) else x, generator)[0]

    def certify_many(self, xs, generator=None) -> list[Certificate]:
        extra = {"consensus": self.ensemble.consensus or len(self.ensemble.members)}
        return certify_counting_evaluations(self.smoothed, self.ensemble, xs, self.n0, self.n, self.alpha, generator,
                                            **extra)

    def settings(self) -> dict:
        k = len(self.ensemble.members)
        return {"sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha, "members": k,
                "consensus": self.ensemble.consensus or k}
