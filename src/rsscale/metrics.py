"""The metrics of Cohen et al.'s tables, over the per-input columns of a run.

* certified accuracy at radius r: the fraction of test inputs that are
  classified correctly with a certified radius >= r;
* ACR (average certified radius): the mean over test inputs of the radius
  when correct, 0 otherwise.
"""

from __future__ import annotations

import numpy as np


def certified_accuracy(radius: np.ndarray, correct: np.ndarray, r: float) -> float:
    """Fraction of inputs with a correct prediction and certified radius >= r."""
    return float(np.mean(correct & (radius >= r))) if len(radius) else float("nan")


def radius_if_correct(radius: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Per input: radius * [correct], the input's share of the ACR."""
    return np.where(correct, radius, 0.0)


def average_certified_radius(radius: np.ndarray, correct: np.ndarray) -> float:
    """Mean of radius * [correct]."""
    return float(np.mean(radius_if_correct(radius, correct))) if len(radius) else float("nan")
