"""Certification runs (:mod:`rsscale.io`) and the metrics of Cohen et al.'s tables (:mod:`rsscale.metrics`)."""

from rsscale.io import Run, read_run  # noqa: F401  (re-exported while the analysis modules move)
from rsscale.metrics import average_certified_radius, certified_accuracy  # noqa: F401
