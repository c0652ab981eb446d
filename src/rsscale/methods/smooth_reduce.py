"""Smooth-Reduce (Joshi, Pham, Cho, Boytsov, Condessa, Kolter & Hegde, "Smooth-Reduce: Leveraging Patches for
Improved Certified Robustness", 2022).

The patch operator ``A`` maps an image ``x`` (C x H x W) to k = grid^2 patches: crops of size ``patch_size`` at the
corners ``round(linspace(0, H - patch_size, grid))`` (same along W), each resized bilinearly to the model's input
size.  The base classifier reduces the model's outputs on the k patches (mean or max of softmax or logits) and takes
the argmax; Cohen's CERTIFY runs on it unchanged.  Cost: k model evaluations per noisy sample
(``extra["model_evaluations"]``, ``extra["evaluations_per_sample"]``).

Where the noise goes (``noise_space``):

* ``"input"`` (default): ``f(x + e) = reduce_i model(A_i(x + e))``, e ~ N(0, sigma^2 I) on the image.  f is a
  deterministic function of the noisy image, so Cohen's radius ``sigma Phi^-1(p_A)`` is already in input space.
* ``"patch"`` (the authors' code): independent noise on each resized patch, ``reduce_i model(A_i x + e_i)``.  Cohen's
  radius R then holds in the stacked patch space; an input perturbation delta moves the patches by ``A delta`` with
  ``||A delta|| <= ||A||_2 ||delta||``, so the input-space radius is ``R / ||A||_2``.  Crop and bilinear resize are
  matrices with non-negative entries, so ``||A||_2^2 <= ||A||_1 ||A||_inf = max(A^T 1) max(A 1)`` (Schur's test);
  that upper bound (exact for crops without resizing: the square root of the largest number of patches that cover
  one pixel) is used, and power iteration's estimate (a lower bound) is reported next to it.  The published,
  unconverted radius R is kept in ``extra["patch_space_radius"]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rsscale import harness, mutation
from rsscale.certificate import Certificate
from rsscale.methods.base import Certifier, register
from rsscale.methods.common import l2_radii
from rsscale.noise import Gaussian
from rsscale.oracles import IntervalClassifier, sign_vector
from rsscale.smooth import SmoothedClassifier, check_sample_size

REDUCTIONS = ("mean", "max")
SCORES = ("softmax", "logits")
NOISE_SPACES = ("input", "patch")


class PatchOperator:
    """The linear map ``A``: a batch ``[m, C, H, W]`` -> ``[m, k, C, h, w]`` (crops, bilinearly resized to h x w)."""

    def __init__(self, input_shape, patch_size: int, grid: int, output_size=None):
        if len(input_shape) != 3:
            raise ValueError(f"Smooth-Reduce needs images of shape (C, H, W), got input shape {tuple(input_shape)}")
        self.input_shape = tuple(int(v) for v in input_shape)
        _, height, width = self.input_shape
        self.patch_size = check_sample_size("patch_size", patch_size)
        if self.patch_size > min(height, width):
            raise ValueError(f"patch_size must be at most the image's side {min(height, width)}, got {patch_size}")
        self.grid = check_sample_size("grid", grid)
        self.output_size = tuple(int(v) for v in (output_size or (height, width)))
        rows = np.round(np.linspace(0, height - self.patch_size, self.grid)).astype(int)
        cols = np.round(np.linspace(0, width - self.patch_size, self.grid)).astype(int)
        self.corners = [(int(r), int(c)) for r in rows for c in cols]

    @property
    def num_patches(self) -> int:
        return len(self.corners)

    @property
    def patch_shape(self) -> tuple[int, ...]:
        return (self.num_patches, self.input_shape[0], *self.output_size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = self.patch_size
        crops = torch.stack([x[:, :, r:r + s, c:c + s] for r, c in self.corners], dim=1).flatten(0, 1)
        if (s, s) != self.output_size:
            crops = F.interpolate(crops, size=self.output_size, mode="bilinear", align_corners=False)
        return crops.view(x.shape[0], *self.patch_shape)

    def _transpose_ones(self) -> torch.Tensor:
        x = torch.zeros(1, *self.input_shape, dtype=torch.float64, requires_grad=True)
        self(x).sum().backward()
        return x.grad

    def norm_upper(self) -> float:
        """``sqrt(max(A^T 1) max(A 1))`` >= ``||A||_2`` (Schur's test; A has non-negative entries)."""
        rows = self(torch.ones(1, *self.input_shape, dtype=torch.float64))
        return math.sqrt(float(self._transpose_ones().max()) * float(rows.max()))

    def norm_estimate(self, iterations: int = 100, seed: int = 0) -> float:
        """Power iteration on ``A^T A`` (a lower bound on ``||A||_2``), for reporting."""
        v = torch.randn(1, *self.input_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        value = 0.0
        for _ in range(iterations):
            v = v / v.norm()
            x = v.clone().requires_grad_(True)
            patches = self(x)
            value = float(patches.detach().norm())
            (patches * patches.detach()).sum().backward()  # x.grad = A^T A v
            v = x.grad
        return value


class PatchReduce(torch.nn.Module):
    """``reduce_i model(patch_i)`` over the k patches: of ``A(x)`` for images (noise in input space), or of given
    patches ``[m, k, C, h, w]`` (noise in patch space)."""

    def __init__(self, model, operator: PatchOperator, reduction: str, scores: str, crop: bool):
        super().__init__()
        self.model, self.operator, self.reduction, self.scores, self.crop = model, operator, reduction, scores, crop
        self.input_shape = operator.input_shape if crop else operator.patch_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.operator(x) if self.crop else x
        out = self.model(patches.flatten(0, 1)).view(x.shape[0], self.operator.num_patches, -1)
        if self.scores == "softmax":
            out = torch.softmax(out, dim=2)
        return out.mean(dim=1) if self.reduction == "mean" else out.amax(dim=1)


@register
class SmoothReduce(Certifier):
    """Cohen's CERTIFY on the patch-reduced classifier (module docstring); radius always in input space."""

    name = "smooth_reduce"
    summary = "Smooth-Reduce (Joshi et al. 2022): reduce over k resized patches; Cohen; patch-space radius / ||A||"
    settings_fields = ("sigma", "n0", "n", "alpha", "patch_size", "grid", "reduction", "scores", "noise_space",
                       "output_size")

    def __init__(self, model, num_classes: int, sigma: float, patch_size: int = 24, grid: int = 2,
                 reduction: str = "mean", scores: str = "softmax", noise_space: str = "input", output_size=None,
                 n0: int = 100, n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000, device=None):
        for value, allowed, what in ((reduction, REDUCTIONS, "reduction"), (scores, SCORES, "scores"),
                                     (noise_space, NOISE_SPACES, "noise_space")):
            if value not in allowed:
                raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
        input_shape = getattr(model, "input_shape", None)
        if not input_shape:
            raise ValueError("Smooth-Reduce needs a model with an input_shape attribute (C, H, W)")
        self.operator = PatchOperator(input_shape, patch_size, grid, output_size)
        self.reduction, self.scores, self.noise_space = reduction, scores, noise_space
        self.reduced = PatchReduce(model, self.operator, reduction, scores, crop=noise_space == "input")
        batch = max(1, check_sample_size("batch_size", batch_size) // self.operator.num_patches)
        self.smoothed = SmoothedClassifier(self.reduced, num_classes, Gaussian(sigma), batch, device)
        self.check_sampling(sigma, n0, n, alpha)
        self.norm = 1.0 if noise_space == "input" else self.operator.norm_upper()

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self.operator.input_shape

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        inputs = xs if self.noise_space == "input" else self.operator(xs.float())
        certs = self.smoothed.certify_many(inputs, self.n0, self.n, self.alpha, generator)
        dim, k = math.prod(xs.shape[1:]), self.operator.num_patches
        for cert in certs:
            published = cert.radius
            cert.radii = l2_radii(published / self.norm, dim)
            cert.radius = cert.radii["l2"]
            cert.extra.update({"patch_space_radius": published, "operator_norm": self.norm, "patches": k,
                               "model_evaluations": k * (self.n0 + self.n), "evaluations_per_sample": k})
        return certs

    @property
    def patch_size(self) -> int:
        return self.operator.patch_size

    @property
    def grid(self) -> int:
        return self.operator.grid

    @property
    def output_size(self) -> list[int]:
        return list(self.operator.output_size)

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return [harness.case(cls.name, "one-patch-half-space-d16", _one_patch_case, dim=16,
                             positions=harness.COHEN_POSITIONS)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        return [mutation.reused_selection(cls, "smoothed.sampler", "one-patch-half-space-d16", 1500),
                mutation.doubled_alpha(cls, "one-patch-half-space-d16", 800)]


def _one_patch_case(trials, seed, alpha, factory):
    """one 4 x 4 patch of a 1 x 4 x 4 image (A = identity: the composition is the oracle) of the half-space u . x > 0,
    input-space noise (u a random-sign diagonal); inputs at the p_A of the half-space positions, either side (Cohen's
    CERTIFY on the oracle: exact violation probability); true l_q radius |u . x| / ||u||_q*"""
    noise = Gaussian(harness.SIGMA)
    oracle = IntervalClassifier(sign_vector(16), [0.0], [0, 1], num_classes=2)
    oracle.input_shape = (1, 4, 4)  # it flattens its input, and draws inputs of this shape
    certifier = harness.build(factory, "smooth_reduce", oracle, 2, harness.N, alpha, 16, patch_size=4, grid=1)
    return harness.half_space_outcomes(oracle, noise, certifier, harness.COHEN_POSITIONS, trials, seed)
