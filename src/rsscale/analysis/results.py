"""Reading certification runs and the metrics of Cohen et al.'s tables.

* certified accuracy at radius r: the fraction of test inputs that are
  classified correctly with a certified radius >= r;
* ACR (average certified radius): the mean over test inputs of the radius
  when correct, 0 otherwise.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Run:
    """One certification run: its per-input columns and its provenance sidecar."""

    path: Path
    columns: dict[str, np.ndarray]
    sidecar: dict

    @property
    def parameters(self) -> dict:
        return self.sidecar.get("parameters", {})

    def __len__(self) -> int:
        return len(self.columns["idx"])

    def radius(self, norm: str | None = None) -> np.ndarray:
        return self.columns["radius" if norm is None else f"radius_{norm}"]

    @property
    def correct(self) -> np.ndarray:
        return self.columns["correct"].astype(bool)

    def certified_accuracy(self, r: float, norm: str | None = None) -> float:
        return certified_accuracy(self.radius(norm), self.correct, r)

    def acr(self, norm: str | None = None) -> float:
        return average_certified_radius(self.radius(norm), self.correct)


def certified_accuracy(radius: np.ndarray, correct: np.ndarray, r: float) -> float:
    """Fraction of inputs with a correct prediction and certified radius >= r."""
    return float(np.mean(correct & (radius >= r))) if len(radius) else float("nan")


def average_certified_radius(radius: np.ndarray, correct: np.ndarray) -> float:
    """Mean of radius * [correct]."""
    return float(np.mean(np.where(correct, radius, 0.0))) if len(radius) else float("nan")


def _parse(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def read_run(path: str | Path) -> Run:
    """Read a certification CSV and its ``.json`` sidecar (if present)."""
    path = Path(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} has no certificates")
    columns = {name: np.array([_parse(row[name]) for row in rows]) for name in rows[0]}
    sidecar_path = path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.exists() else {}
    return Run(path, columns, sidecar)
