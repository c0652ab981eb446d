"""SmoothAdv: adversarial training of the smoothed classifier (Salman et al., NeurIPS 2019).

Per example, ``m`` noise draws ``d_1..d_m ~ N(0, sigma^2 I)`` are drawn once and
reused for the attack and the update.  The attack is l2 PGD on the soft
smoothed classifier's loss

    L(x') = -log (1/m) sum_i softmax(f(x' + d_i))_y,

T steps of size ``2 * eps_t / T`` along the per-example normalized gradient,
starting at ``x' = x``; after each step ``x'`` is clamped to [0, 1] (the image
domain, as in the official code; ``clamp=False`` skips it) and then projected
onto the l2 ball ``||x' - x|| <= eps_t``.  Because ``x`` lies in [0, 1], the
projection keeps ``x'`` in [0, 1].  The noise is never clamped: ``x' + d_i``
leaves [0, 1] like every smoothing sample.  The update is the cross-entropy
averaged over the ``m`` noisy adversarial copies ``x' + d_i``.

Warm-up: :func:`rsscale.training.fit` calls :meth:`SmoothAdv.start_epoch`, and
``eps_t = eps * min(1, (epoch + 1) / warmup)`` for the 0-based epoch (linear
over the first ``warmup`` epochs, as ``max_norm`` in the official
``train_pgd.py``); used outside ``fit``, ``eps_t = eps``.  The attack runs
with the model in eval mode and restores its mode.

Cost per example: ``m (T + 1)`` forward and ``m (T + 1)`` backward passes
(``m`` of each when ``eps_t = 0`` or ``T = 0``), against 1 and 1 for Gaussian
augmentation.  Defaults ``m = 4, T = 10, eps = 1.0, warmup = 10`` are the
SmoothAdv settings Jeong & Shin (2020) reproduce on MNIST and CIFAR-10 at
sigma 0.25; Salman et al. sweep m in {1, 2, 4, 8}, T in {1, 2, 4, 8, 10},
eps in {0.25, 0.5, 1, 2}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsscale.training._common import check_float, check_int, check_sigma, draw_noise, log_mean_softmax, noisy_logits


def smoothed_nll(model, x_adv: torch.Tensor, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per-example ``-log (1/m) sum_i softmax(f(x_adv + noise[i]))_y``: shape ``[B]``."""
    log_p = log_mean_softmax(noisy_logits(model, x_adv, noise))
    return -log_p.gather(1, y.view(-1, 1)).squeeze(1)


class SmoothAdv:
    """SmoothAdv PGD training; see the module docstring for the math and the reference."""

    name = "smoothadv"

    def __init__(self, sigma: float, m: int = 4, steps: int = 10, eps: float = 1.0, warmup: int = 10,
                 clamp: bool = True):
        self.sigma = check_sigma(sigma)
        self.m = check_int("m", m, 1)
        self.steps = check_int("steps", steps, 0)
        self.eps = check_float("eps", eps)
        self.warmup = check_int("warmup", warmup, 0)
        if not isinstance(clamp, bool):
            raise ValueError(f"clamp must be true or false, got {clamp!r}")
        self.clamp = clamp
        self.current_eps = self.eps

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Set this epoch's radius ``eps * min(1, (epoch + 1) / warmup)`` (0-based epoch)."""
        self.current_eps = self.eps * min(1.0, (epoch + 1) / self.warmup) if self.warmup > 1 else self.eps

    def attack(self, model, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        """l2 PGD on :func:`smoothed_nll` with the given noise ``[m, B, ...]``; returns ``x'`` (detached).

        ``||x' - x||_2 <= eps_t`` per example; a zero gradient is replaced by a
        random direction drawn from ``generator`` (as in the official code).
        """
        eps = self.current_eps
        if eps == 0 or self.steps == 0:
            return x.detach()
        was_training = model.training
        model.eval()
        step = 2.0 * eps / self.steps
        x = x.detach()
        delta = torch.zeros_like(x)
        try:
            for _ in range(self.steps):
                delta.requires_grad_(True)
                loss = smoothed_nll(model, x + delta, y, noise).sum()
                (grad,) = torch.autograd.grad(loss, delta)
                delta = delta.detach()
                norms = grad.flatten(1).norm(dim=1)
                zero = norms == 0
                if bool(zero.any()):
                    grad[zero] = torch.randn(grad[zero].shape, generator=generator, device=x.device, dtype=x.dtype)
                    norms = grad.flatten(1).norm(dim=1)
                delta += step * grad / norms.view(-1, *([1] * (x.dim() - 1)))
                if self.clamp:
                    delta = (x + delta).clamp_(0.0, 1.0) - x
                norms = delta.flatten(1).norm(dim=1)
                scale = (eps / norms.clamp_min(1e-12)).clamp_max(1.0)
                delta *= scale.view(-1, *([1] * (x.dim() - 1)))
        finally:
            model.train(was_training)
        return (x + delta).detach()

    def attack_steps(self) -> int:
        """PGD steps the attack runs at the current radius (0 when ``eps_t = 0``)."""
        return self.steps if self.current_eps > 0 else 0

    def __call__(self, model, x, y, generator):
        noise = draw_noise(x, self.m, self.sigma, generator)
        x_adv = self.attack(model, x, y, noise, generator)
        logits = noisy_logits(model, x_adv, noise)
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(self.m))
        passes = self.m * (self.attack_steps() + 1) * x.shape[0]
        return loss, passes, passes

    def describe(self) -> dict:
        per_example = self.m * ((self.steps if self.eps > 0 else 0) + 1)
        return {"objective": self.name, "sigma": self.sigma, "m": self.m, "steps": self.steps, "eps": self.eps,
                "step_size": "2 * eps_t / steps", "warmup": self.warmup, "clamp": self.clamp,
                "passes_per_example": {"forward": per_example, "backward": per_example}}
