"""Training objectives for randomized smoothing and the loop they share.

An objective is a small callable ``objective(model, x, y, generator) ->
(loss, forward_passes)``; :func:`rsscale.training.loop.fit` runs any of them.
"""

from rsscale.training.gaussian import GaussianAugmentation
from rsscale.training.loop import TrainingReport, evaluate_accuracy, fit

OBJECTIVES = {"gaussian": GaussianAugmentation}


def build_objective(name: str, **params):
    """Instantiate a registered training objective by name."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown training objective {name!r}; expected one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](**params)


__all__ = ["OBJECTIVES", "GaussianAugmentation", "TrainingReport", "build_objective", "evaluate_accuracy", "fit"]
