"""Training objectives for randomized smoothing and the loop they share.

An objective is a small callable ``objective(model, x, y, generator) ->
(loss, forward_passes, backward_passes)`` on one batch (``(loss,
forward_passes)`` when there is one backward pass per forward pass), with an
optional ``start_epoch(epoch, epochs)`` hook and a ``describe()`` dict for the
provenance sidecar; :func:`rsscale.training.loop.fit` runs any of them.

Registered objectives (``build_objective(name, sigma=..., **params)``):

- ``gaussian``: Gaussian augmentation (Cohen et al. 2019);
- ``smoothadv``: SmoothAdv PGD (Salman et al. 2019);
- ``macer``: MACER (Zhai et al. 2020);
- ``consistency``: consistency regularization (Jeong & Shin 2020);
- ``crt``: distillation from a robust teacher (Vaishnavi et al. 2022).
"""

import inspect

from rsscale.training.consistency import Consistency
from rsscale.training.crt import CRT
from rsscale.training.gaussian import GaussianAugmentation
from rsscale.training.loop import TrainingReport, evaluate_accuracy, fit
from rsscale.training.macer import MACER
from rsscale.training.smoothadv import SmoothAdv

OBJECTIVES = {"gaussian": GaussianAugmentation, "smoothadv": SmoothAdv, "macer": MACER,
              "consistency": Consistency, "crt": CRT}


def build_objective(name: str, **params):
    """Instantiate a registered training objective by name.

    Raises ValueError naming the objective for an unknown name or for
    parameters its constructor does not take (or values it refuses).
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown training objective {name!r}; expected one of {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as err:
        accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
        raise ValueError(f"bad parameters for training objective {name!r}: {err} (it takes {accepted})") from err
    try:
        return cls(**params)
    except ValueError as err:
        raise ValueError(f"training objective {name!r}: {err}") from err


__all__ = ["CRT", "MACER", "OBJECTIVES", "Consistency", "GaussianAugmentation", "SmoothAdv", "TrainingReport",
           "build_objective", "evaluate_accuracy", "fit"]
