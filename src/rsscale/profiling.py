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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rsscale.data import Dataset
from rsscale.experiments.tables import write_table
from rsscale.models import build_model, fit_to_dataset, load_models, training_sigma
from rsscale.noise import Gaussian, NoiseDistribution
from rsscale.provenance import device_name, utc_now, write_sidecar
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
    shared_noise: bool = False
    pack: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


def profile_throughput(model: torch.nn.Module, input_shape, noise: NoiseDistribution, num_classes: int,
                       batch_size: int, device="cpu", batches: int = 20, repeats: int = 7, warmup: int = 2,
                       seed: int = 0, pack: int = 1, **engine) -> ThroughputProfile:
    """Median samples/s of forward-only passes and of vote counting, same model, batch and device.

    Each repeat runs ``batches`` forward passes of ``batch_size`` samples; the
    spreads are (max - min) / median of the repeats; ``ratio`` is the median of
    the per-repeat ratios forward time / certify time.  Vote counting draws the
    samples of ``pack`` inputs in one call, as certification does for a pack.
    ``engine`` holds the :class:`~rsscale.sampling.Sampler` options
    (``autocast``, ``channels_last``, ``compile``, ``shared_noise``); the
    forward-only ceiling runs the model the same way
    (:meth:`~rsscale.sampling.Sampler.forward`, same layout).
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    sampler = Sampler(model, noise, num_classes, batch_size, device, **engine)
    gen = torch.Generator().manual_seed(seed)
    if not 1 <= int(pack) <= batch_size * batches:
        raise ValueError(f"pack must lie in [1, batch_size * batches = {batch_size * batches}], got {pack}")
    x = torch.rand((int(pack), *input_shape), generator=gen).to(device)
    batch = torch.rand((batch_size, *input_shape), generator=gen).to(device)
    if sampler.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    samples = batch_size * batches // int(pack) * int(pack)

    @torch.inference_mode()
    def forward_only():
        for _ in range(batches):
            sampler.forward(batch)

    def certify():
        sampler.counts(x, samples // len(x), gen)

    for _ in range(warmup):
        forward_only()
        certify()
    forward_times, certify_times = [], []
    for _ in range(repeats):
        forward_times.append(time_call(forward_only, device))
        certify_times.append(time_call(certify, device))

    def spread(times):
        return (max(times) - min(times)) / statistics.median(times)

    certify_rate = samples / statistics.median(certify_times)
    forward_rate = batch_size * batches / statistics.median(forward_times)
    paired = statistics.median(f / (batch_size * batches) / (c / samples)
                               for f, c in zip(forward_times, certify_times, strict=True))
    return ThroughputProfile(batch_size, samples, forward_rate, certify_rate, paired,
                             spread(forward_times), spread(certify_times), **sampler.settings(), pack=int(pack))


def profile_checkpoint(data: str, checkpoint: str, out: str | Path, *, sigma: float | None = None,
                       batch_sizes: Sequence[int] = (100, 1000), batches: int = 20, repeats: int = 7,
                       engine: dict | None = None, seed: int = 0, device: str = "cpu",
                       parameters: dict | None = None, trust_checkpoint: bool = False) -> list[dict]:
    """:func:`profile_throughput` of a checkpoint at each batch size: the table ``out`` (.csv, .md, .tex) and its
    sidecar (recording ``parameters``); returns the rows.  ``trust_checkpoint``: load it without a sha256 file."""
    started = utc_now()
    dataset = Dataset.load(data)
    [(model, meta)] = load_models([checkpoint], dataset, data, trust_checkpoint)
    sigma = training_sigma(meta, sigma, checkpoint)
    rows = []
    for batch_size in batch_sizes:
        profile = profile_throughput(model, dataset.input_shape, Gaussian(sigma), dataset.num_classes, batch_size,
                                     device, batches=batches, repeats=repeats, seed=seed, **(engine or {}))
        rows.append({"model": Path(checkpoint).stem, "device": device_name(device),
                     "threads": torch.get_num_threads(), **profile.as_dict()})
    write_table(rows, list(rows[0]), str(out).removesuffix(".csv"))
    write_sidecar(Path(out).with_suffix(".json"), parameters or {}, started, device, checkpoint_sha256=meta["sha256"])
    return rows


#: Columns of the profile-per-model-size table.
SIZE_COLUMNS = ["model", "arch", "parameters", "weights", "batch_size", "pack", "forward_samples_per_s",
                "certify_samples_per_s", "ratio", "forward_spread", "certify_spread", "autocast", "channels_last",
                "compile", "shared_noise", "device", "threads"]


def profile_model_sizes(data: str, models: dict[str, dict], out: str | Path, *, sigma: float = 0.25,
                        batch_sizes: Sequence[int] = (100, 1000), batches: int = 5, repeats: int = 5,
                        engine: dict | None = None, variants: Sequence[dict] = ({},), pack: int = 1, seed: int = 0,
                        device: str = "cpu", parameters: dict | None = None) -> list[dict]:
    """The engine profile per model size: untrained models (throughput does not depend on the weights) built from
    ``models`` (label -> ``{"arch": ..., "params": {...}}``) for the dataset's inputs, each measured with the engine
    options ``engine`` updated by each of ``variants`` (e.g. ``[{}, {"shared_noise": True}]``: both in one run),
    counting the samples of ``pack`` inputs per call; writes the table ``out`` and its sidecar, returns the rows."""
    started = utc_now()
    dataset = Dataset.load(data)
    rows = []
    for label, spec in models.items():
        torch.manual_seed(seed)  # parameter initialisation
        model = build_model(spec["arch"], **fit_to_dataset(spec["arch"], dict(spec.get("params", {})), dataset))
        for variant in variants:
            for batch_size in batch_sizes:
                profile = profile_throughput(model, dataset.input_shape, Gaussian(sigma), dataset.num_classes,
                                             batch_size, device, batches=batches, repeats=repeats, seed=seed,
                                             pack=pack, **{**(engine or {}), **variant})
                rows.append({"model": label, "arch": spec["arch"],
                             "parameters": sum(p.numel() for p in model.parameters()), "weights": "untrained",
                             "device": device_name(device), "threads": torch.get_num_threads(), **profile.as_dict()})
    write_table(rows, SIZE_COLUMNS, str(out).removesuffix(".csv"),
                caption="Certification vs forward-only throughput per model size (untrained models)")
    write_sidecar(Path(out).with_suffix(".json"), parameters or {}, started, device)
    return rows
