"""Denoised smoothing (Salman et al., "Denoised Smoothing: A Provable Defense for Pretrained Image Classifiers",
NeurIPS 2020): Cohen's CERTIFY of the base classifier ``f(D(x))``.

``D`` is a denoiser trained in front of a frozen classifier ``f``
(:mod:`rsscale.training.denoiser`); the composition is one deterministic
base classifier (both parts in eval mode), so smoothing it with
N(0, sigma^2 I) and bounding p_A by Clopper-Pearson gives Cohen's certificate,
radius ``sigma Phi^-1(p_A_lower)``, unchanged.  The model is a ``denoised``
checkpoint (:class:`rsscale.models.DenoisedClassifier`, written by
``rsscale train-denoiser``).

Extra cost: every noisy sample also passes through ``D``.  Each certificate
records ``denoiser_passes`` (= its forward passes) and ``denoiser_seconds``,
the wall-clock spent inside ``D`` (measured with forward hooks; a pack's time
is split evenly over its inputs, like ``seconds``).
"""

from __future__ import annotations

import time

import torch

from rsscale.certificate import Certificate
from rsscale.methods.base import register
from rsscale.methods.cohen import Cohen


@register
class Denoised(Cohen):
    name = "denoised"
    summary = "Cohen's CERTIFY of f(D(x)): a trained denoiser in front of a frozen classifier (Salman et al. 2020)"

    def __init__(self, model, num_classes: int, sigma: float, n0: int = 100, n: int = 100_000,
                 alpha: float = 0.001, batch_size: int = 1000, device=None):
        if not isinstance(getattr(model, "denoiser", None), torch.nn.Module) or not isinstance(
                getattr(model, "classifier", None), torch.nn.Module):
            raise ValueError(f"the denoised method needs a model with a denoiser and a classifier (a 'denoised' "
                             f"checkpoint from `rsscale train-denoiser`), got {type(model).__name__}")
        super().__init__(model, num_classes, sigma, n0, n, alpha, batch_size, device)
        self._denoiser_seconds = 0.0
        self._started = 0.0
        model.denoiser.register_forward_pre_hook(self._start_timer)
        model.denoiser.register_forward_hook(self._stop_timer)

    def _synchronize(self) -> None:
        if self.smoothed.device.type == "cuda":  # kernels run asynchronously: time them when they have finished
            torch.cuda.synchronize(self.smoothed.device)

    def _start_timer(self, module, args) -> None:
        self._synchronize()
        self._started = time.perf_counter()

    def _stop_timer(self, module, args, output) -> None:
        self._synchronize()
        self._denoiser_seconds += time.perf_counter() - self._started

    def certify_many(self, xs: torch.Tensor, generator=None) -> list[Certificate]:
        self._denoiser_seconds = 0.0
        certs = super().certify_many(xs, generator)
        for cert in certs:
            cert.extra["denoiser_passes"] = cert.forward_passes
            cert.extra["denoiser_seconds"] = self._denoiser_seconds / len(certs)
        return certs
