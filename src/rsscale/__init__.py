"""rsscale: how randomized-smoothing certification scales with d, n and sigma."""

from rsscale import data, methods, models, run
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.noise import Gaussian, NoiseDistribution
from rsscale.smooth import SmoothedClassifier

__version__ = "0.1.0"

__all__ = ["ABSTAIN", "Certificate", "Gaussian", "NoiseDistribution", "SmoothedClassifier", "data", "methods", "models",
           "run"]
