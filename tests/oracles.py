"""The exact oracles live in the package (:mod:`rsscale.oracles`); re-exported here for the tests, with a recorder."""

import torch

from rsscale.oracles import *  # noqa: F403
from rsscale.oracles import __all__  # noqa: F401


class Recorder(torch.nn.Module):
    """Keeps every batch it is called on (``seen``) and answers class 0 of ``num_classes``: shows what noise a
    certifier draws."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.num_classes, self.seen = num_classes, []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], self.num_classes)
