"""Cohen et al.'s smoothed classifier: Monte Carlo PREDICT and CERTIFY.

``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ noise`` (Gaussian by default).

CERTIFY(x): draw ``n0`` noisy copies and take the most frequent class c_A;
draw ``n`` fresh copies and count the ones classified c_A, k; let ``p_A`` be
the one-sided Clopper-Pearson lower bound on P(f(x + e) = c_A) at level
alpha.  Unless ``p_A > 1/2`` abstain (:func:`abstains`, the one rule of every
family); else return ``(c_A, noise.radius(p_A))``,
``sigma * Phi^-1(p_A)`` for Gaussian noise.  With probability >= 1 - alpha
over the samples, a returned class is g's class on the whole ball.

PREDICT(x): count ``n`` noisy copies, take the two most frequent classes
c1, c2 with counts n1 >= n2; return c1 if the two-sided binomial test of n1
out of n1 + n2 at 1/2 has p-value <= alpha, else abstain.  The probability of
returning a class other than g(x) is at most alpha.

Reference: Cohen, Rosenfeld & Kolter, ICML 2019, Algorithms 1-2 (Pseudocode
for certification and prediction).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from rsscale import ledger
from rsscale.bounds import binomial_test_pvalue, check_alpha, clopper_pearson_lower
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.noise import NoiseDistribution, check_scale_bound
from rsscale.sampling import Sampler, resolve_device


def check_sample_size(name: str, value: int) -> int:
    """Return ``value`` as an int, or raise if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or int(value) != value \
            or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_positive(name: str, value) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number > 0."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def check_selection_and_estimation(n0: int, n: int) -> tuple[int, int]:
    """Validate CERTIFY's sample sizes: both positive integers, n0 <= n."""
    n0, n = check_sample_size("n0", n0), check_sample_size("n", n)
    if n0 > n:
        raise ValueError(f"n0 (selection samples, {n0}) must not exceed n (estimation samples, {n})")
    return n0, n


def check_sampling(sigma: float, n0: int, n: int, alpha: float) -> tuple[float, int, int, float]:
    """The checks every certification shares: sigma a finite number in (0, MAX_SCALE], n0 <= n positive integers,
    alpha in (0, 1)."""
    n0, n = check_selection_and_estimation(n0, n)
    return check_scale_bound("sigma", check_positive("sigma", sigma)), n0, n, check_alpha(alpha)


def check_inputs(xs: torch.Tensor, input_shape: tuple[int, ...] | None, batched: bool) -> torch.Tensor:
    """Validate one input (``batched=False``) or a batch of inputs.

    Raises a ValueError naming the problem for non-tensors, non-float or
    non-finite values, and shapes other than ``input_shape`` (when known).
    """
    if not isinstance(xs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(xs).__name__}")
    if not xs.is_floating_point():
        raise ValueError(f"inputs must be a floating-point tensor, got dtype {xs.dtype}")
    shape = tuple(xs.shape[1:]) if batched else tuple(xs.shape)
    if batched and xs.ndim < 2:
        raise ValueError(f"a batch of inputs needs shape [num_inputs, *input_shape], got {tuple(xs.shape)}")
    if input_shape is not None and shape != tuple(input_shape):
        what = "each input" if batched else "x (one input, no batch dimension)"
        raise ValueError(f"{what} must have shape {tuple(input_shape)}, got {shape}")
    if not bool(torch.isfinite(xs).all()):
        raise ValueError("inputs contain NaN or infinite values")
    return xs


def abstains(p_lower):
    """The abstain rule of CERTIFY, for every family: abstain unless ``p_lower > 1/2`` (elementwise).

    Only ``P(f(x + e) = c_A) > 1/2`` makes c_A the smoothed classifier's class; at ``p_lower = 1/2`` a tie is not
    excluded, and the radius there is 0 anyway (``sigma Phi^-1(1/2) = 0``), so nothing is lost by abstaining.
    Cohen et al.'s pseudocode abstains only below 1/2; this is the sound reading of the same rule.
    """
    return np.asarray(p_lower) <= 0.5


def select(sampler: Sampler, xs: torch.Tensor, n0: int, generator=None, progress=None) -> torch.Tensor:
    """SELECT: c_A of each input, the most frequent class of ``n0`` noisy samples."""
    counts = sampler.counts(xs, n0, generator, progress)
    ledger.use("selection", counts)
    return counts.argmax(dim=1)


def estimate(sampler: Sampler, xs: torch.Tensor, n: int, top: torch.Tensor, generator=None,
             progress=None) -> np.ndarray:
    """ESTIMATE: how many of ``n`` fresh noisy samples of each input are classified ``top`` (its c_A)."""
    counts = sampler.counts(xs, n, generator, progress)
    ledger.use("estimation", counts)
    return counts.gather(1, top[:, None]).squeeze(1).numpy()


class SmoothedClassifier:
    """The smoothed version ``g`` of a base classifier ``model``.

    Args:
        model: maps a batch ``[m, *input_shape]`` of inputs in [0, 1] to
            logits ``[m, num_classes]``; put in eval mode here.
        num_classes: number of classes.
        noise: the smoothing distribution, e.g. ``Gaussian(sigma=0.25)``.
        batch_size: noisy samples per forward pass.
        device: ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when present.
        input_shape: expected shape of one input; defaults to
            ``model.input_shape`` when the model has it.
        autocast, channels_last, compile, shared_noise: the sampling engine's
            options (see :class:`rsscale.sampling.Sampler`); the defaults run
            the model as given, in float32, with independent draws per input.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        num_classes: int,
        noise: NoiseDistribution,
        batch_size: int = 1000,
        device: str | torch.device | None = None,
        input_shape: Sequence[int] | None = None,
        autocast: str | None = None,
        channels_last: bool = False,
        compile: bool = False,
        shared_noise: bool = False,
    ):
        self.num_classes = check_sample_size("num_classes", num_classes)
        if not isinstance(noise, NoiseDistribution):
            raise TypeError(f"noise must be a NoiseDistribution (e.g. Gaussian(sigma=0.25)), got {noise!r}")
        self.noise = noise
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.input_shape = tuple(input_shape or getattr(model, "input_shape", ()) or ()) or None
        self.sampler = Sampler(
            self.model, noise, self.num_classes, check_sample_size("batch_size", batch_size), self.device,
            autocast=autocast, channels_last=channels_last, compile=compile, shared_noise=shared_noise,
        )

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, generator=None, progress=None) -> Certificate:
        """Cohen et al.'s CERTIFY on one input ``x`` (no batch dimension)."""
        check_inputs(x, self.input_shape, batched=False)
        return self.certify_many(x.unsqueeze(0), n0, n, alpha, generator, progress)[0]

    def certify_many(self, xs, n0: int, n: int, alpha: float, generator=None, progress=None) -> list[Certificate]:
        """CERTIFY for a batch of inputs whose noisy samples share forward passes.

        Each input gets its own n0 + n samples and its own certificate, with
        the same guarantee as :meth:`certify`.  ``seconds`` of each
        certificate is the batch's wall-clock divided by the number of inputs.
        """
        if isinstance(xs, (list, tuple)):
            xs = torch.stack(list(xs))
        check_inputs(xs, self.input_shape, batched=True)
        n0, n = check_selection_and_estimation(n0, n)
        alpha = check_alpha(alpha)
        start = time.perf_counter()
        top = select(self.sampler, xs, n0, generator, progress)
        hits = estimate(self.sampler, xs, n, top, generator, progress)
        p_lower = clopper_pearson_lower(hits, n, alpha)
        seconds = (time.perf_counter() - start) / len(xs)
        dim = math.prod(xs.shape[1:])
        certs = []
        for c_a, k, p in zip(top.tolist(), hits.tolist(), p_lower.reshape(-1).tolist(), strict=True):
            abstain = abstains(p)
            radii = {norm: 0.0 for norm in self.noise.radii(0.0, dim)} if abstain else self.noise.radii(p, dim)
            certs.append(
                Certificate(
                    prediction=ABSTAIN if abstain else c_a,
                    radius=radii["l2"],
                    p_lower=p,
                    forward_passes=n0 + n,
                    seconds=seconds,
                    radii=radii,
                    extra={"count": k},
                )
            )
        return certs

    def predict(self, x: torch.Tensor, n: int, alpha: float, generator=None) -> int:
        """Cohen et al.'s PREDICT: the class of g(x), or ABSTAIN."""
        check_inputs(x, self.input_shape, batched=False)
        n, alpha = check_sample_size("n", n), check_alpha(alpha)
        counts = self.sampler.counts(x.unsqueeze(0), n, generator)[0]
        top2 = counts.topk(min(2, self.num_classes))
        n1 = int(top2.values[0])
        n2 = int(top2.values[1]) if self.num_classes > 1 else 0
        if binomial_test_pvalue(n1, n1 + n2, 0.5) > alpha:
            return ABSTAIN
        return int(top2.indices[0])
