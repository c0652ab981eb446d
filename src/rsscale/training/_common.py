"""Helpers shared by the training objectives: parameter checks and noisy copies.

Layout convention: ``m`` noisy copies of a batch ``x`` ``[B, ...]`` are stacked
copy-major, ``[m, B, ...]``, and flattened to ``[m * B, ...]`` for one forward
pass; the logits are viewed back as ``[m, B, C]``.
"""

from __future__ import annotations

import math

import torch

from rsscale.noise import check_scale_bound


def check_sigma(sigma) -> float:
    """The training noise level as a float; ``sigma = 0`` means clean inputs."""
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    return check_scale_bound("sigma", sigma)


def check_int(name: str, value, minimum: int) -> int:
    """An integer parameter ``>= minimum`` (bools and fractional numbers are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value, minimum: float = 0.0, strict: bool = False) -> float:
    """A finite float parameter ``>= minimum`` (``> minimum`` when ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return value


def draw_noise(x: torch.Tensor, copies: int, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``copies`` independent draws of ``N(0, sigma^2 I)`` shaped like ``x``: ``[copies, B, ...]``."""
    noise = torch.randn((copies, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return noise.mul_(sigma) if sigma else noise.zero_()


def noisy_logits(model, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Logits of ``x + noise[i]`` for every copy ``i`` in one forward pass: ``[copies, B, C]``."""
    copies, batch = noise.shape[0], x.shape[0]
    out = model((x.unsqueeze(0) + noise).flatten(0, 1))
    return out.view(copies, batch, -1)


def log_mean_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``log (1/m) sum_i softmax(logits[i])`` over the copy dimension 0, computed stably (logsumexp)."""
    return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(logits.shape[0])
