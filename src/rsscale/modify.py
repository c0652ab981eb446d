"""Modifications of a trained model, the inputs of incremental certification (:mod:`rsscale.methods.irs`).

Each modification maps a model to a NEW module (the original is left
untouched) in eval mode, on the CPU:

* ``int8``: dynamic int8 quantization of every ``nn.Linear`` layer
  (``torch.ao.quantization.quantize_dynamic``: int8 weights, activations
  quantized on the fly per batch); convolutions and everything else stay
  float32.  The quantized kernels run on the CPU only.
* ``prune<f>`` (e.g. ``prune0.3``): global L1 magnitude pruning
  (``torch.nn.utils.prune.global_unstructured``) of the fraction ``f`` of all
  ``nn.Conv2d`` and ``nn.Linear`` weights taken together (the smallest
  absolute values across layers), made permanent with ``prune.remove``.
  Biases are kept.

These are the modifications of Ugare et al., "Incremental Randomized
Smoothing Certification", ICLR 2024 (int8 quantization and pruning).
"""

from __future__ import annotations

import copy
import re
import warnings

import torch
from torch import nn
from torch.nn.utils import prune

#: Layer types quantized by ``int8``.
QUANTIZED_LAYERS = (nn.Linear,)
#: Layer types whose weights ``prune<f>`` prunes.
PRUNED_LAYERS = (nn.Conv2d, nn.Linear)

_PRUNE = re.compile(r"prune(\d*\.?\d+)")


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its ``nn.Linear`` layers dynamically quantized to int8."""
    original = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated upstream (moving to torchao), still shipped
        warnings.filterwarnings("ignore", message=".*(torch.ao.quantization|quantized tensor creation).*")
        return torch.ao.quantization.quantize_dynamic(original, set(QUANTIZED_LAYERS), dtype=torch.qint8).eval()


def prune_global_l1(model: nn.Module, fraction: float) -> nn.Module:
    """A copy of ``model`` with the ``fraction`` of smallest-magnitude conv and linear weights set to zero (global)."""
    fraction = float(fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the pruning fraction must lie in [0, 1), got {fraction}")
    pruned = copy.deepcopy(model).cpu().eval()
    targets = [(m, "weight") for m in pruned.modules() if isinstance(m, PRUNED_LAYERS)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=fraction)
    for module, name in targets:
        prune.remove(module, name)
    return pruned


def modify(model: nn.Module, name: str) -> nn.Module:
    """The modification ``name`` (``int8`` or ``prune<fraction>``, e.g. ``prune0.3``) of ``model``."""
    if name == "int8":
        return quantize_int8(model)
    match = _PRUNE.fullmatch(name)
    if match:
        return prune_global_l1(model, float(match.group(1)))
    raise ValueError(f"unknown model modification {name!r}; expected 'int8' or 'prune<fraction>' (e.g. 'prune0.3')")


def zero_fraction(model: nn.Module) -> float:
    """Fraction of exactly-zero weights over the conv and linear layers (the sparsity pruning reached)."""
    weights = [m.weight.detach() for m in model.modules() if isinstance(m, PRUNED_LAYERS)]
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total) if total else 0.0
