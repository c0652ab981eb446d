"""CRT: certified-robustness transfer by distillation (Vaishnavi et al., NeurIPS 2022).

A student ``f`` is trained to match a frozen, already robust teacher ``g``
(e.g. one trained with SmoothAdv or MACER at the same sigma) on the same
noisy inputs: with ``m`` draws ``d_i ~ N(0, sigma^2 I)`` per example,

    L = (1/m) sum_i || f(x + d_i) - g(x + d_i) ||_2,

the l2 distance (not squared) between the logits, averaged over the batch.
The labels are not used.  ``L >= 0`` with equality iff the student's logits
equal the teacher's on every noisy input, so the loss is minimized exactly
when the student computes the teacher's function.

The teacher is an rsscale checkpoint path (loaded weights-only, frozen, in
eval mode) or, from Python, an ``nn.Module``.  Cost per example: ``m`` student
forward passes plus ``m`` teacher forward passes (counted in the forward
passes; the teacher's cost depends on its architecture) and ``m`` backward
passes; training the teacher its own way costs what its objective costs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rsscale.models import load_checkpoint
from rsscale.training._common import check_int, check_sigma, draw_noise


def crt_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over all rows of ``||student - teacher||_2`` along the class dimension."""
    return torch.linalg.vector_norm(student_logits - teacher_logits, ord=2, dim=-1).mean()


class CRT:
    """Distillation from a robust teacher on noisy inputs; see the module docstring."""

    name = "crt"

    def __init__(self, sigma: float, teacher: str | Path | nn.Module | None = None, m: int = 1):
        self.sigma = check_sigma(sigma)
        self.m = check_int("m", m, 1)
        if teacher is None:
            raise ValueError("the crt objective needs a teacher: the path of a robust model's checkpoint, "
                             "e.g. --objective-params '{\"teacher\": \"results/models/teacher.pt\"}'")
        self.teacher_info: dict = {}
        if isinstance(teacher, nn.Module):
            model = teacher
            self.teacher_info = {"teacher": type(teacher).__name__}
        elif isinstance(teacher, (str, Path)):
            model, meta = load_checkpoint(teacher)
            trained_with = meta.get("objective")
            self.teacher_info = {"teacher": str(teacher), "teacher_sha256": meta["sha256"],
                                 "teacher_arch": meta["arch"], "teacher_sigma": meta.get("sigma"),
                                 "teacher_objective": trained_with.get("objective") if isinstance(trained_with, dict)
                                 else trained_with}
        else:
            raise ValueError(f"teacher must be a checkpoint path, got {teacher!r}")
        self.teacher = model.eval().requires_grad_(False)
        self._device = None

    def __call__(self, model, x, y, generator):
        noise = draw_noise(x, self.m, self.sigma, generator)
        noisy = (x.unsqueeze(0) + noise).flatten(0, 1)
        shape = tuple(getattr(self.teacher, "input_shape", ()) or ())
        if shape and shape != tuple(x.shape[1:]):
            raise ValueError(f"the crt teacher takes inputs of shape {shape}, but the training inputs have shape "
                             f"{tuple(x.shape[1:])}")
        if self._device != x.device:
            self.teacher.to(x.device)
            self._device = x.device
        with torch.no_grad():
            target = self.teacher(noisy)
        logits = model(noisy)
        if logits.shape != target.shape:
            raise ValueError(f"the crt teacher scores {tuple(target.shape[1:])} per input but the student "
                             f"{tuple(logits.shape[1:])}: they must classify the same classes")
        rows = self.m * x.shape[0]
        return crt_loss(logits, target), 2 * rows, rows

    def describe(self) -> dict:
        return {"objective": self.name, "sigma": self.sigma, "m": self.m, **self.teacher_info,
                "passes_per_example": {"forward": 2 * self.m, "backward": self.m, "teacher_forward": self.m}}
