"""The Monte Carlo hot loop: noisy forward passes turned into vote counts.

Every certifier spends almost all of its time here, so the loop is built to
run at the speed of the model's forward pass:

* noise is drawn in place into one preallocated batch buffer (memory is
  bounded by ``batch_size`` whatever the number of samples);
* the clean input is added in place, one broadcast add per input in the batch;
* votes are accumulated on the device with ``index_add_`` -- no per-sample
  Python loop and no host synchronisation until the final counts are read;
* the samples of several inputs are packed into the same batches, so small
  models and small selection phases (``n0 = 100``) still fill the hardware;
* noise comes from an explicit ``torch.Generator``, so a seed fixes the result.

Sample ``j`` of input ``i`` has the flat index ``i * num_samples + j``; batches
cover consecutive flat indices.  The draws therefore depend on the seed,
``num_samples`` and ``batch_size``, not on wall-clock or thread scheduling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rsscale.noise import NoiseDistribution

#: Maps a batch of logits ``[m, num_classes]`` to integer vote ids ``[m]``.
VoteFunction = Callable[[torch.Tensor], torch.Tensor]


def argmax_vote(logits: torch.Tensor) -> torch.Tensor:
    """The base classifier's hard decision: the index of the largest logit."""
    return logits.argmax(dim=1)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when present, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator:
    """A generator that can draw on ``device``.

    A generator already on that device is used as is.  Otherwise (e.g. a CPU
    generator and a CUDA device) a device generator is seeded from one draw of
    the given generator, so the same seed still gives the same stream.
    ``None`` gives a generator seeded from fresh OS entropy.
    """
    if generator is None:
        fresh = torch.Generator(device=device)
        fresh.seed()
        return fresh
    if generator.device.type == device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


@functools.cache
def keep_freed_memory() -> bool:
    """Stop glibc from returning large freed blocks to the OS (CPU only, once per process).

    PyTorch's CPU allocator uses malloc, and glibc serves blocks above its
    mmap threshold (a few MB: one batch of activations) with fresh ``mmap``
    pages that are unmapped on free, so every forward pass page-faults its
    activations in again.  On the 2-core reference machine this made batches
    of 1,000 small-CNN samples up to 3x slower than batches of 250, with most
    of the time in the kernel.  Raising the mmap and trim thresholds to 1 GiB
    makes the memory reused instead.  Returns whether the setting was applied
    (False off glibc).
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


@dataclass
class Sampler:
    """Draws noisy copies of inputs through a model and counts the votes.

    Attributes:
        model: the base classifier; called on batches ``[m, *input_shape]``.
        noise: the smoothing distribution.
        num_votes: number of distinct vote ids (the number of classes for
            :func:`argmax_vote`).
        batch_size: samples per forward pass; bounds memory.
        device: where noise is drawn and the model runs.
        vote: turns logits into vote ids (default: argmax).
    """

    model: torch.nn.Module
    noise: NoiseDistribution
    num_votes: int
    batch_size: int = 1000
    device: torch.device = torch.device("cpu")
    vote: VoteFunction = argmax_vote

    def __post_init__(self):
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if int(self.num_votes) < 1:
            raise ValueError(f"num_votes must be >= 1, got {self.num_votes}")
        self.batch_size = int(self.batch_size)
        self.num_votes = int(self.num_votes)
        self.device = resolve_device(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()

    @torch.inference_mode()
    def counts(
        self,
        inputs: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> torch.Tensor:
        """Vote counts ``[num_inputs, num_votes]`` (int64, on the CPU).

        Args:
            inputs: a batch of clean inputs ``[num_inputs, *input_shape]``.
            num_samples: noisy copies drawn for each input.
            generator: source of the noise (see :func:`device_generator`).
            progress: called with the number of samples after each batch.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        inputs = inputs.to(self.device, torch.float32)
        num_inputs = inputs.shape[0]
        total = num_inputs * num_samples
        gen = device_generator(generator, self.device)
        width = min(self.batch_size, total)
        buffer = torch.empty((width, *inputs.shape[1:]), device=self.device)
        offsets = torch.arange(width, device=self.device)
        ones = torch.ones(width, dtype=torch.long, device=self.device)
        counts = torch.zeros(num_inputs * self.num_votes, dtype=torch.long, device=self.device)
        for start in range(0, total, width):
            stop = min(start + width, total)
            batch = self.noise.sample_(buffer[: stop - start], gen)
            self._add_inputs(batch, inputs, start, stop, num_samples)
            logits = self.model(batch)
            if logits.ndim != 2 or logits.shape[0] != stop - start:
                raise ValueError(
                    f"the model must return logits of shape [batch, classes], got {tuple(logits.shape)}"
                )
            votes = self.vote(logits)
            owners = torch.div(offsets[: stop - start] + start, num_samples, rounding_mode="floor")
            counts.index_add_(0, owners * self.num_votes + votes, ones[: stop - start])
            if progress is not None:
                progress(stop - start)
        return counts.view(num_inputs, self.num_votes).cpu()

    @staticmethod
    def _add_inputs(batch, inputs, start, stop, num_samples):
        """Add to each noise row of the flat range [start, stop) its clean input."""
        first, last = start // num_samples, (stop - 1) // num_samples
        for i in range(first, last + 1):
            lo = max(start, i * num_samples) - start
            hi = min(stop, (i + 1) * num_samples) - start
            batch[lo:hi].add_(inputs[i])
