"""Consistency regularization (Jeong & Shin, NeurIPS 2020).

With ``m`` noisy copies ``x + d_i``, ``d_i ~ N(0, sigma^2 I)``, ``p_i =
softmax(f(x + d_i))`` and ``p_mean = (1/m) sum_i p_i``, per example:

    L = (1/m) sum_i CE(f(x + d_i), y)
        + lambda * (1/m) sum_i KL(p_mean || p_i)
        + eta * H(p_mean),

averaged over the batch; gradients flow through ``p_mean`` too, as in the
official code.  The KL term vanishes exactly when all copies give the same
prediction.  ``log p_mean`` is computed with logsumexp.

Defaults: ``m = 2, eta = 0.5`` (the paper's), ``lambda = 20`` for sigma < 1
and 10 for sigma >= 1 (the paper uses lambda in {5, 10, 20}; 20 throughout on
MNIST).  Cost per example: ``m`` forward and ``m`` backward passes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsscale.training._common import check_float, check_int, check_sigma, draw_noise, log_mean_softmax, noisy_logits


def default_lambda(sigma: float) -> float:
    """Jeong & Shin's consistency weight: 20 below sigma = 1, 10 from sigma = 1 on."""
    return 20.0 if sigma < 1.0 else 10.0


def consistency_loss(logits: torch.Tensor, y: torch.Tensor, lam: float,
                     eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss from logits ``[m, B, C]``: ``(total, ce, kl, entropy)``, ``total = ce + lam * kl + eta * entropy``."""
    m = logits.shape[0]
    ce = F.cross_entropy(logits.flatten(0, 1), y.repeat(m))
    log_p = torch.log_softmax(logits, dim=-1)
    log_mean = log_mean_softmax(logits)
    p_mean = log_mean.exp()
    kl = (p_mean * (log_mean - log_p)).sum(-1).mean()
    entropy = -(p_mean * log_mean).sum(-1).mean()
    return ce + lam * kl + eta * entropy, ce, kl, entropy


class Consistency:
    """Gaussian augmentation with consistency regularization; see the module docstring."""

    name = "consistency"

    def __init__(self, sigma: float, m: int = 2, lam: float | None = None, eta: float = 0.5):
        self.sigma = check_sigma(sigma)
        self.m = check_int("m", m, 1)
        self.lam = default_lambda(self.sigma) if lam is None else check_float("lam", lam)
        self.eta = check_float("eta", eta)

    def __call__(self, model, x, y, generator):
        logits = noisy_logits(model, x, draw_noise(x, self.m, self.sigma, generator))
        loss, _, _, _ = consistency_loss(logits, y, self.lam, self.eta)
        passes = self.m * x.shape[0]
        return loss, passes, passes

    def describe(self) -> dict:
        return {"objective": self.name, "sigma": self.sigma, "m": self.m, "lam": self.lam, "eta": self.eta,
                "passes_per_example": {"forward": self.m, "backward": self.m}}
