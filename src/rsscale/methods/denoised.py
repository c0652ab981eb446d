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
from collections.abc import Sequence

import torch

from rsscale import harness, mutation
from rsscale.certificate import Certificate
from rsscale.methods.base import register
from rsscale.methods.cohen import Cohen
from rsscale.models import build_model
from rsscale.noise import Gaussian
from rsscale.oracles import IntervalClassifier, sign_vector


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

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        self._denoiser_seconds = 0.0
        certs = super().certify_batch(xs, generator)
        for cert in certs:
            cert.extra["denoiser_passes"] = cert.forward_passes
            cert.extra["denoiser_seconds"] = self._denoiser_seconds / len(certs)
        return certs

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return [harness.case(cls.name, "dncnn-half-space-rotated-d16", _denoised_half_space_case, dim=16,
                             positions=harness.COHEN_POSITIONS, max_trials=2000)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.reused_selection(cls, "smoothed.sampler", "dncnn-half-space-rotated-d16", 2000),
                mutation.doubled_alpha(cls, "dncnn-half-space-rotated-d16", 500)]


class OrthogonalResidual(torch.nn.Module):
    """A denoiser that leaves ``u . x`` unchanged: ``D(x) = x - (I - u u^T) r(x)``, r a DnCNN's residual net.

    Inputs are flat ``[B, prod(image_shape)]``; the net sees them as images.  ``f(D(x)) = f(x)`` for an interval
    oracle along u, so the oracle's closed forms hold for the composition.
    """

    def __init__(self, dncnn: torch.nn.Module, u: torch.Tensor, image_shape: Sequence[int]):
        super().__init__()
        self.net = dncnn.net
        self.image_shape = tuple(image_shape)
        self.register_buffer("u", u.flatten().float())

    def forward(self, x):
        r = self.net(x.reshape(-1, *self.image_shape)).flatten(1)
        return x - (r - (r @ self.u)[:, None] * self.u).view(x.shape)


def denoised_oracle(oracle: IntervalClassifier, side: int = 4, depth: int = 3, width: int = 8, seed: int = 0):
    """A ``denoised`` model: a random DnCNN (projected by :class:`OrthogonalResidual`) in front of ``oracle``
    (``side * side`` inputs, flat); ``f(D(x)) = oracle(x)``."""
    torch.manual_seed(seed)
    model = build_model("denoised", classifier_arch="cnn", classifier_config={"image_size": side},
                        denoiser_config={"depth": depth, "width": width}).eval()
    model.denoiser = OrthogonalResidual(model.denoiser, oracle.u, (1, side, side)).eval()
    model.classifier, model.input_shape = oracle, oracle.input_shape
    return model


def _denoised_half_space_case(trials, seed, alpha, factory):
    """half-space u . x > 0 (u a random-sign diagonal, d = 16 = 4 x 4) behind a random DnCNN whose correction is
    orthogonal to u; inputs at the p_A of the half-space positions, either side (Cohen's CERTIFY on the composition:
    exact violation probability); true l_q radius |u . x| / ||u||_q*"""
    oracle = IntervalClassifier(sign_vector(16), [0.0], [0, 1], num_classes=2)
    certifier = harness.build(factory, "denoised", denoised_oracle(oracle), 2, harness.N, alpha, 16)
    noise = Gaussian(harness.SIGMA)
    return harness.half_space_outcomes(oracle, noise, certifier, harness.COHEN_POSITIONS, trials, seed)
