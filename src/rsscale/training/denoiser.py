"""Training a denoiser in front of a frozen classifier (Salman et al., "Denoised Smoothing: A Provable Defense
for Pretrained Image Classifiers", NeurIPS 2020).

The classifier ``f`` is fixed (eval mode, no gradients, never updated); only
the denoiser ``D`` (:class:`rsscale.models.DnCNN`) is trained, on ``x + e``,
``e ~ N(0, sigma^2 I)``, with one of the objectives

* ``mse``:       (1 / (B d)) sum_b ||D(x_b + e_b) - x_b||^2  (per-pixel mean, as ``nn.MSELoss``);
* ``stability``: (1 / B) sum_b CE(f(D(x_b + e_b)), argmax f(x_b)) -- labels are not used;
* ``mse_then_stability``: ``mse`` for the first ``mse_epochs`` epochs (default half), then ``stability``
  (Salman et al.'s MSE pre-training followed by stability fine-tuning).

The gradient of the stability loss flows through ``f`` into ``D`` only.
Cost per example: MSE, one denoiser forward and backward pass; stability,
one denoiser and two classifier forward passes (``f(x)`` for the target,
``f(D(x + e))``) and backward passes through both networks.
:func:`rsscale.training.loop.fit` runs the objective on ``D``'s parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsscale.models import build_model
from rsscale.training._common import check_float, check_int
from rsscale.training.loop import TrainingReport, fit

DENOISER_OBJECTIVES = ("mse", "stability", "mse_then_stability")
#: Network passes per training example of each stage (forward counts both networks).
PASSES_PER_EXAMPLE = {"mse": {"forward": 1, "backward": 1, "denoiser_forward": 1, "classifier_forward": 0},
                      "stability": {"forward": 3, "backward": 2, "denoiser_forward": 1, "classifier_forward": 2}}


class DenoiserObjective:
    """One of :data:`DENOISER_OBJECTIVES` for the denoiser in front of the frozen ``classifier``; see the module."""

    name = "denoiser"

    def __init__(self, classifier: nn.Module, sigma: float, objective: str = "mse", mse_epochs: int | None = None):
        if objective not in DENOISER_OBJECTIVES:
            raise ValueError(f"unknown denoiser objective {objective!r}; expected one of {list(DENOISER_OBJECTIVES)}")
        if mse_epochs is not None and objective != "mse_then_stability":
            raise ValueError(f"mse_epochs applies only to mse_then_stability, not to {objective!r}")
        self.sigma = check_float("sigma", sigma, 0.0, strict=True)
        self.objective = objective
        self.mse_epochs = None if mse_epochs is None else check_int("mse_epochs", mse_epochs, 0)
        self.classifier = classifier.eval().requires_grad_(False)
        self.stage = "stability" if objective == "stability" else "mse"

    def start_epoch(self, epoch: int, epochs: int) -> None:
        if self.objective == "mse_then_stability":
            switch = epochs // 2 if self.mse_epochs is None else self.mse_epochs
            self.stage = "mse" if epoch < switch else "stability"

    def __call__(self, denoiser, x, y, generator):
        rows = x.shape[0]
        denoised = denoiser(x + self.sigma * torch.randn(x.shape, generator=generator, device=x.device))
        if self.stage == "mse":
            return F.mse_loss(denoised, x), rows, rows
        self.classifier.to(x.device)
        with torch.no_grad():
            target = self.classifier(x).argmax(dim=1)
        return F.cross_entropy(self.classifier(denoised), target), 3 * rows, 2 * rows

    def describe(self) -> dict:
        stages = ("mse", "stability") if self.objective == "mse_then_stability" else (self.objective,)
        return {"objective": self.objective, "sigma": self.sigma, "mse_epochs": self.mse_epochs,
                "passes_per_example": {stage: PASSES_PER_EXAMPLE[stage] for stage in stages}}


def compose(classifier: nn.Module, depth: int = 4, width: int = 16) -> nn.Module:
    """A fresh (untrained) ``denoised`` model around a copy of ``classifier``'s weights (made by ``build_model``)."""
    if not hasattr(classifier, "arch"):
        raise ValueError("compose needs a classifier made by rsscale.models.build_model (e.g. from a checkpoint)")
    model = build_model("denoised", classifier_arch=classifier.arch, classifier_config=classifier.config,
                        denoiser_config={"depth": depth, "width": width})
    model.classifier.load_state_dict(classifier.state_dict())
    return model.eval()


def train_denoiser(model: nn.Module, objective: DenoiserObjective, x_train: torch.Tensor, **fit_args) -> TrainingReport:
    """Train ``model.denoiser`` (a ``denoised`` model) by :func:`fit`; ``model.classifier`` stays as it was.

    ``objective`` must hold ``model.classifier``; ``fit_args`` are :func:`fit`'s (epochs, lr, generator, ...).
    The labels are never used (a dummy tensor is passed).
    """
    if objective.classifier is not model.classifier:
        raise ValueError("the objective must hold the classifier of the model whose denoiser is trained")
    report = fit(model.denoiser, objective, x_train, torch.zeros(len(x_train), dtype=torch.long), **fit_args)
    model.eval()
    return report
