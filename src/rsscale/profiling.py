"""Wall-clock throughput of certification next to the model's forward-only ceiling.

The ceiling is the rate at which the same model, on the same device and with
the same batch size, runs forward passes on a preallocated batch; certification
cannot beat it since every noisy sample costs one forward pass.  The ratio
``certify / forward`` is the fraction of the ceiling the sampling engine
reaches (noise generation, the clean-input add, argmax and counting are the
overhead).  Timing follows the usual benchmark shape: warm-up runs, then timed
repeats with the device synchronised around each, reporting the median; the
two measurements are interleaved so that drift in machine load hits both, and
the ratio is the median over repeats of the ratio within each adjacent pair
(on a shared, loaded machine the paired ratio is far steadier than the ratio of
the two medians).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch

from rsscale.noise import NoiseDistribution
from rsscale.sampling import Sampler, resolve_device


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device: torch.device) -> float:
    """Seconds taken by ``fn()``, with the device synchronised before and after."""
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - start


@dataclass
class ThroughputProfile:
    batch_size: int
    samples_per_repeat: int
    forward_samples_per_s: float
    certify_samples_per_s: float
    ratio: float
    forward_spread: float
    certify_spread: float
    autocast: str | None = None
    channels_last: bool = False
    compile: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def profile_throughput(model: torch.nn.Module, input_shape, noise: NoiseDistribution, num_classes: int,
                       batch_size: int, device="cpu", batches: int = 20, repeats: int = 7, warmup: int = 2,
                       seed: int = 0, **engine) -> ThroughputProfile:
    """Median samples/s of forward-only passes and of vote counting, same model, batch and device.

    Each repeat runs ``batches`` forward passes of ``batch_size`` samples; the
    spreads are (max - min) / median of the repeats; ``ratio`` is the median of
    the per-repeat ratios forward time / certify time.  ``engine`` holds the
    :class:`~rsscale.sampling.Sampler` options (``autocast``,
    ``channels_last``, ``compile``); the forward-only ceiling runs the model
    the same way (:meth:`~rsscale.sampling.Sampler.forward`, same layout).
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    sampler = Sampler(model, noise, num_classes, batch_size, device, **engine)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((1, *input_shape), generator=gen).to(device)
    batch = torch.rand((batch_size, *input_shape), generator=gen).to(device)
    if sampler.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    samples = batch_size * batches

    @torch.inference_mode()
    def forward_only():
        for _ in range(batches):
            sampler.forward(batch)

    def certify():
        sampler.counts(x, samples, gen)

    for _ in range(warmup):
        forward_only()
        certify()
    forward_times, certify_times = [], []
    for _ in range(repeats):
        forward_times.append(time_call(forward_only, device))
        certify_times.append(time_call(certify, device))

    def spread(times):
        return (max(times) - min(times)) / statistics.median(times)

    forward_rate = samples / statistics.median(forward_times)
    certify_rate = samples / statistics.median(certify_times)
    paired = statistics.median(f / c for f, c in zip(forward_times, certify_times, strict=True))
    return ThroughputProfile(batch_size, samples, forward_rate, certify_rate, paired,
                             spread(forward_times), spread(certify_times), **sampler.settings())
