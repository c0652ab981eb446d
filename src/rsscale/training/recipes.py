"""Training recipes: the optimizer, learning-rate schedule and batch size a model is trained with.

Two kinds, both run by :func:`rsscale.training.loop.fit`:

* the **shared loop** (:func:`shared`): every objective trained alike -- Adam, cosine decay of the learning
  rate over every step, the study's learning rate and batch size -- so that a difference between objectives is
  the objective's alone;
* each objective's **published recipe** (:func:`published`): the optimizer, learning rate, weight decay, step
  schedule, batch size and objective hyperparameters of its authors' code, read in the files cited in
  :data:`PUBLISHED`.  A schedule defined in epochs (step decay at epoch 30 of 90, say) is kept as fractions of the
  run and scaled to the epochs asked for (step decay at 1/3 and 2/3), and so is SmoothAdv's eps warm-up.

The learning rate at optimizer step ``t`` (0-based) of a run of ``E`` epochs of ``S`` steps is
``lr * factor(t)``: a linear warm-up ``(t + 1) / (W S)`` over the first ``W`` epochs, then either
``(1 + cos(pi t / (E S))) / 2`` (cosine) or ``gamma ** #{milestones passed}`` (step, milestones at
``round(f E)`` epochs for each fraction ``f``) or 1 (constant).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch

from rsscale.training._common import check_float, check_int

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step", "constant")
RECIPES = ("shared", "published")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained; see the module docstring for the learning-rate factor."""

    name: str = "shared"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: tuple[float, ...] = ()  # step schedule: fractions of the run
    gamma: float = 0.1
    warmup_epochs: int = 0
    batch_size: int = 64
    objective_params: dict = field(default_factory=dict)
    source: str = "this study's shared loop"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {list(SCHEDULES)}")
        check_float("lr", self.lr, strict=True)
        check_float("momentum", self.momentum)
        check_float("weight_decay", self.weight_decay)
        check_float("gamma", self.gamma, strict=True)
        check_int("warmup_epochs", self.warmup_epochs, 0)
        check_int("batch_size", self.batch_size, 1)
        if any(not 0 < f < 1 for f in self.milestones):
            raise ValueError(f"milestones are fractions of the run in (0, 1), got {list(self.milestones)}")

    def optimizer_for(self, parameters) -> torch.optim.Optimizer:
        """The recipe's optimizer over ``parameters``."""
        if self.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return torch.optim.Adam(parameters, lr=self.lr, weight_decay=self.weight_decay)

    def milestone_epochs(self, epochs: int) -> list[int]:
        """The epochs (0-based) from which each decay of the step schedule applies, for a run of ``epochs``."""
        return [round(f * epochs) for f in self.milestones]

    def factor(self, step: int, epochs: int, steps_per_epoch: int) -> float:
        """The learning-rate multiplier at optimizer step ``step`` (0-based)."""
        warm = self.warmup_epochs * steps_per_epoch
        if step < warm:
            return (step + 1) / warm
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * step / (epochs * steps_per_epoch)))
        if self.schedule == "step":
            epoch = step // steps_per_epoch
            return self.gamma ** sum(epoch >= m for m in self.milestone_epochs(epochs))
        return 1.0

    def scheduler_for(self, optimizer, epochs: int, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
        """A scheduler stepped once per optimizer step that applies :meth:`factor`."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.factor(step, epochs, steps_per_epoch))

    def describe(self, epochs: int | None = None) -> dict:
        """The recipe as recorded in the checkpoint metadata (milestones also in epochs when ``epochs`` is given)."""
        record = asdict(self)
        record["milestones"] = list(self.milestones)
        if epochs is not None:
            record["milestone_epochs"] = self.milestone_epochs(epochs)
        return record


def shared(lr: float = 1e-3, batch_size: int = 64, weight_decay: float = 0.0) -> Recipe:
    """The study's shared loop: Adam, cosine decay over every step, no warm-up."""
    return Recipe(lr=lr, batch_size=batch_size, weight_decay=weight_decay)


def _smoothadv_params(epochs: int) -> dict:
    # eps warm-up over 10 of 150 epochs (README's command), scaled to the run
    return {"m": 1, "steps": 2, "eps": 64 / 256, "warmup": max(1, round(10 / 150 * epochs))}


#: Each objective's published recipe: optimizer settings, batch size, the epochs of the published run (the schedule
#: is scaled from them), objective hyperparameters (a callable of the run's epochs where they are epoch-defined) and
#: the files they were read from.
PUBLISHED = {
    "gaussian": dict(
        optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="step", milestones=(1 / 3, 2 / 3),
        batch_size=256, objective_params={},
        source="Cohen et al. 2019, locuslab/smoothing code/train.py: SGD lr 0.1, momentum 0.9, weight decay 1e-4, "
               "StepLR x0.1 every 30 of 90 epochs, batch 256"),
    "smoothadv": dict(
        optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="step", milestones=(1 / 3, 2 / 3),
        batch_size=256, objective_params=_smoothadv_params,
        source="Salman et al. 2019, Hadisalman/smoothing-adversarial code/train_pgd.py and README: SGD lr 0.1, "
               "momentum 0.9, weight decay 1e-4, StepLR x0.1 every 50 of 150 epochs, batch 256; PGD 2 steps, "
               "eps 64/256, m = 1 (the PGD_2steps/eps_64 models), eps warm-up over 10 of 150 epochs"),
    "macer": dict(
        optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="step", milestones=(200 / 440, 400 / 440),
        batch_size=64, objective_params={"k": 16, "beta": 16.0, "gamma": 8.0},
        source="Zhai et al. 2020, RuntianZ/macer main.py: SGD lr 0.01, momentum 0.9, weight decay 5e-4, "
               "MultiStepLR x0.1 at epochs 200 and 400 of 440, batch 64; k = 16, beta = 16, gamma = 8, "
               "lambda 12 (sigma < 1) or 4 (the paper's CIFAR-10 settings)"),
    "consistency": dict(
        optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, schedule="step", milestones=(1 / 3, 2 / 3),
        batch_size=256, objective_params={"m": 2, "lam": 20.0, "eta": 0.5},
        source="Jeong & Shin 2020, jh-jeong/smoothing-consistency code/train_consistency.py and its MNIST commands "
               "(README, EXPERIMENTS.MD): SGD lr 0.01, momentum 0.9, weight decay 1e-4, StepLR x0.1 every 30 of "
               "90 epochs, batch 256; m = 2, lambda = 20, eta = 0.5"),
    "crt": dict(
        optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="step", milestones=(1 / 2, 3 / 4),
        batch_size=128, objective_params={"m": 1},
        source="Vaishnavi et al. 2022, Ethos-lab/crt-neurips22 main.py, helpers/xfer.py, README config: SGD lr 0.1, "
               "momentum 0.9, weight decay 1e-4, multistep x0.1 at 1/2 and 3/4 of the run, batch 128; one noise "
               "draw, transfer loss only (alpha = 1)"),
}


def published(objective: str, epochs: int, **overrides) -> Recipe:
    """``objective``'s published recipe for a run of ``epochs`` epochs; ``overrides`` replace fields of the recipe
    (a deviation the caller states), ``objective_params`` among them being merged over the published ones."""
    if objective not in PUBLISHED:
        raise ValueError(f"no published recipe for objective {objective!r}; known: {sorted(PUBLISHED)}")
    spec = dict(PUBLISHED[objective])
    params = spec.pop("objective_params")
    params = params(epochs) if callable(params) else dict(params)
    params.update(overrides.pop("objective_params", None) or {})
    unknown = sorted(set(overrides) - set(Recipe.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown recipe fields {unknown}; a recipe has {sorted(Recipe.__dataclass_fields__)}")
    return replace(Recipe(name="published", objective_params=params, **spec), **overrides)
