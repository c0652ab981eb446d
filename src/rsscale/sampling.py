"""The Monte Carlo hot loop: noisy forward passes turned into vote counts.

Every certifier spends almost all of its time here, so the loop is built to
run at the speed of the model's forward pass:

* noise is drawn in place into one preallocated batch buffer (memory is
  bounded by ``batch_size`` whatever the number of samples);
* the clean input is added in place, one broadcast add per input in the batch;
* votes are accumulated on the device with ``index_add_`` (into the one
  input's row when a batch belongs to one input, the usual case) -- no
  per-sample Python loop and no host synchronisation until the counts are read;
* the samples of several inputs are packed into the same batches, so small
  models and small selection phases (``n0 = 100``) still fill the hardware;
* noise comes from an explicit ``torch.Generator``, so a seed fixes the result;
* on CUDA the inputs travel through pinned memory without blocking, noise is
  drawn on the device and the counts are read back once per call;
* engine options (:class:`Sampler`): ``autocast`` (bf16/fp16), ``channels_last``
  and ``compile`` (``torch.compile``); they change how the model runs, never
  which noise is drawn;
* the ``shared_noise`` option (off by default) draws each noise row once for all
  the inputs of a call, which removes most of the drawing cost on small models
  (see :meth:`Sampler.shared_counts` for what it does to the certificates).

Sample ``j`` of input ``i`` has the flat index ``i * num_samples + j``; batches
cover consecutive flat indices.  The draws therefore depend on the seed,
``num_samples`` and ``batch_size``, not on wall-clock or thread scheduling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
import warnings
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
    """The device to run on, checked to exist here; ``None`` means CUDA when present, else CPU.

    Raises a ValueError naming the device for a malformed name (``"banana"``), a
    CUDA device without a usable GPU, and a CUDA index beyond the GPUs present.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}; expected cpu, cuda or cuda:<index>") from err
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ValueError(f"device {device!r} asked for, but PyTorch sees no CUDA GPU here (none present, or a "
                             f"CPU-only PyTorch build); use --device cpu")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {device!r} does not exist: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
    elif resolved.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; expected cpu, cuda or cuda:<index>")
    return resolved


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


class SamplingClock:
    """Wall-clock spent inside :meth:`Sampler.counts` and :meth:`Sampler.draw_votes` in this process (noise draws,
    forward passes, votes; each call ends with its results on the host, so device work is included).  A caller reads
    :attr:`seconds` before and after a certification: the difference is its sampling time, the rest of its wall-clock
    is the method's own computation (radius search, sigma optimisation, ...)."""

    def __init__(self):
        self.seconds = 0.0

    def timed(self, method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return wrapper


#: The process's sampling clock (:class:`SamplingClock`).
SAMPLING_CLOCK = SamplingClock()

#: ``autocast`` option -> autocast dtype.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_engine_options(autocast, channels_last, compile, device: torch.device,
                         shared_noise: bool = False) -> torch.dtype | None:
    """Validate the engine options of :class:`Sampler`; return the autocast dtype (None: float32)."""
    if autocast is not None and autocast not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be None, 'bf16' or 'fp16', got {autocast!r}")
    if autocast == "fp16" and device.type != "cuda":
        raise ValueError(f"autocast='fp16' needs a CUDA device, got {device.type!r}; use autocast='bf16' on CPU")
    for name, value in (("channels_last", channels_last), ("compile", compile), ("shared_noise", shared_noise)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    if compile and not hasattr(torch, "compile"):
        raise ValueError(f"compile=True needs torch.compile (PyTorch >= 2.0), this is torch {torch.__version__}")
    return AUTOCAST_DTYPES.get(autocast)


def to_device(inputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``inputs`` as float32 on ``device``; host-to-GPU copies go through pinned memory, without blocking."""
    inputs = inputs.to(torch.float32)
    if device.type == "cuda" and inputs.device.type == "cpu":
        return inputs.pin_memory().to(device, non_blocking=True)
    return inputs.to(device)


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
        autocast: ``None`` (float32), ``"bf16"`` or ``"fp16"`` (CUDA only):
            the model runs under :func:`torch.autocast` at that precision; the
            noise and the clean-input add stay in float32 and the logits are
            cast back to float32 before voting.
        channels_last: run the model on channels-last batches (4-D inputs
            only); the model's 4-D weights are converted in place.  The noise
            is still drawn in the standard layout, so the draws do not change.
        compile: run ``torch.compile(model)``; if compilation fails (no
            compiler, unsupported platform) a warning is issued, the model
            runs eagerly and ``compile`` is set to False.
        shared_noise: draw each noise row once for all the inputs of a
            :meth:`counts` call (:meth:`shared_counts`); only for noise whose
            rows are alike (:attr:`~rsscale.noise.NoiseDistribution.shareable_across_inputs`).
    """

    model: torch.nn.Module
    noise: NoiseDistribution
    num_votes: int
    batch_size: int = 1000
    device: torch.device = torch.device("cpu")
    vote: VoteFunction = argmax_vote
    autocast: str | None = None
    channels_last: bool = False
    compile: bool = False
    shared_noise: bool = False

    def __post_init__(self):
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if int(self.num_votes) < 1:
            raise ValueError(f"num_votes must be >= 1, got {self.num_votes}")
        self.batch_size = int(self.batch_size)
        self.num_votes = int(self.num_votes)
        self.device = resolve_device(self.device)
        self._precision = check_engine_options(self.autocast, self.channels_last, self.compile, self.device,
                                               self.shared_noise)
        if self.shared_noise and not self.noise.shareable_across_inputs:
            raise ValueError(f"shared_noise needs noise whose rows are alike; {self.noise!r} ties each row to its "
                             f"position or input")
        if self.device.type == "cpu":
            keep_freed_memory()
        self.model = self.model.to(self.device)  # the engine runs the model where it draws the noise
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._run = torch.compile(self.model, dynamic=False) if self.compile else self.model

    def settings(self) -> dict:
        """The engine options, for provenance (``compile`` is False after a fallback)."""
        return {"autocast": self.autocast, "channels_last": self.channels_last, "compile": self.compile,
                "shared_noise": self.shared_noise}

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of the model on ``batch`` with the engine options applied (float32)."""
        if self.channels_last:
            if batch.ndim != 4:
                raise ValueError(f"channels_last needs 4-D batches [m, C, H, W], got shape {tuple(batch.shape)}")
            batch = batch.contiguous(memory_format=torch.channels_last)
        try:
            return self._call(batch)
        except Exception as err:  # compilation errors surface at the first call; eager reruns re-raise real ones
            if self._run is self.model:
                raise
            reason = (str(err).splitlines() or [""])[0]
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {reason}); running the model eagerly",
                          RuntimeWarning, stacklevel=2)
            self._run, self.compile = self.model, False
            return self._call(batch)

    def _call(self, batch: torch.Tensor) -> torch.Tensor:
        if self._precision is None:
            return self._run(batch)
        with torch.autocast(self.device.type, dtype=self._precision):
            logits = self._run(batch)
        return logits.float()

    @SAMPLING_CLOCK.timed
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
        if self.channels_last and inputs.ndim != 4:
            raise ValueError(f"channels_last needs 4-D inputs [num_inputs, C, H, W], got shape {tuple(inputs.shape)}")
        inputs = to_device(inputs, self.device)
        num_inputs = inputs.shape[0]
        total = num_inputs * num_samples
        gen = device_generator(generator, self.device)
        if self.shared_noise and num_inputs > 1:
            return self.shared_counts(inputs, num_samples, gen, progress)
        width = min(self.batch_size, total)
        noise = torch.empty((width, *inputs.shape[1:]), device=self.device)
        buffer = torch.empty_like(noise, memory_format=torch.channels_last) if self.channels_last else noise
        offsets = torch.arange(width, device=self.device)
        ones = torch.ones(width, dtype=torch.long, device=self.device)
        counts = torch.zeros((num_inputs, self.num_votes), dtype=torch.long, device=self.device)
        for start in range(0, total, width):
            stop = min(start + width, total)
            segments = self._segments(start, stop, num_samples)
            drawn = self.noise.sample_(noise[: stop - start], gen)
            batch = buffer[: stop - start]
            for i, lo, hi in segments:
                if self.channels_last:  # the add also writes the channels-last copy
                    torch.add(drawn[lo:hi], inputs[i], out=batch[lo:hi])
                else:
                    batch[lo:hi].add_(inputs[i])
            logits = self.forward(batch)
            if logits.ndim != 2 or logits.shape[0] != stop - start:
                raise ValueError(
                    f"the model must return logits of shape [batch, classes], got {tuple(logits.shape)}"
                )
            votes = self.vote(logits)
            if len(segments) == 1:  # the usual case: the whole batch belongs to one input
                counts[segments[0][0]].index_add_(0, votes, ones[: stop - start])
            else:
                owners = torch.div(offsets[: stop - start] + start, num_samples, rounding_mode="floor")
                counts.view(-1).index_add_(0, owners * self.num_votes + votes, ones[: stop - start])
            if progress is not None:
                progress(stop - start)
        return counts.cpu()  # the only host synchronisation of the call

    def shared_counts(self, inputs: torch.Tensor, num_samples: int, generator: torch.Generator,
                      progress: Callable[[int], object] | None = None) -> torch.Tensor:
        """:meth:`counts` with each noise row drawn once and added to every input (``shared_noise``).

        Noise rows are drawn in chunks of ``max(1, batch_size // num_inputs)``; a forward pass holds one chunk added
        to each of up to ``batch_size`` inputs.  Row ``j`` of every input is the same draw ``e_j``, so for each input
        the ``num_samples`` copies are still i.i.d. from the noise, independent of any other call's draws (the
        selection and the estimation of a certificate stay independent): every certificate keeps its guarantee.
        What changes is the joint law of the certificates of one call: they are no longer independent, so an
        average over the inputs of a pack (certified accuracy, ACR) is unbiased but its variance may differ from
        the independent-draws one -- treat a pack, not an input, as the unit when resampling such a table.
        """
        num_inputs, shape = inputs.shape[0], inputs.shape[1:]
        chunk = min(num_samples, max(1, self.batch_size // num_inputs))
        group = min(num_inputs, max(1, self.batch_size // chunk))
        noise = torch.empty((chunk, *shape), device=self.device)
        batch = torch.empty((group * chunk, *shape), device=self.device)
        ones = torch.ones((group, chunk), dtype=torch.long, device=self.device)
        counts = torch.zeros((num_inputs, self.num_votes), dtype=torch.long, device=self.device)
        for start in range(0, num_samples, chunk):
            rows = min(chunk, num_samples - start)
            drawn = self.noise.sample_(noise[:rows], generator)
            for first in range(0, num_inputs, group):
                size = min(group, num_inputs - first)
                filled = batch[: size * rows]
                torch.add(drawn.unsqueeze(0), inputs[first: first + size].unsqueeze(1),
                          out=filled.view(size, rows, *shape))
                logits = self.forward(filled)
                if logits.ndim != 2 or logits.shape[0] != size * rows:
                    raise ValueError(
                        f"the model must return logits of shape [batch, classes], got {tuple(logits.shape)}"
                    )
                votes = self.vote(logits).view(size, rows)
                counts[first: first + size].scatter_add_(1, votes, ones[:size, :rows])
                if progress is not None:
                    progress(size * rows)
        return counts.cpu()

    @staticmethod
    def _segments(start: int, stop: int, num_samples: int) -> list[tuple[int, int, int]]:
        """``(input, lo, hi)``: rows ``[lo, hi)`` of the batch covering the flat range [start, stop) are input's."""
        first, last = start // num_samples, (stop - 1) // num_samples
        return [(i, max(start, i * num_samples) - start, min(stop, (i + 1) * num_samples) - start)
                for i in range(first, last + 1)]

    @SAMPLING_CLOCK.timed
    @torch.inference_mode()
    def draw_votes(self, x: torch.Tensor, num_samples: int, generator: torch.Generator | None = None,
                   limit: int | None = None) -> torch.Tensor:
        """The vote of every noisy copy of one input ``x`` (no batch dimension), in draw order (int64, CPU).

        The noise is drawn exactly as :meth:`counts` draws it for ``x[None]``
        and ``num_samples`` (same chunks of ``min(batch_size, num_samples)``
        rows), so ``bincount`` of the result equals those counts for the same
        generator state.  ``limit`` keeps only the first ``limit`` copies: their
        noise is regenerated identically and the model runs on those rows only
        (the rest of the last chunk is drawn and discarded).  Incremental
        certification uses this to replay the first draws of a cached seed.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        limit = num_samples if limit is None else int(limit)
        if not 1 <= limit <= num_samples:
            raise ValueError(f"limit must lie in [1, num_samples = {num_samples}], got {limit}")
        x = x.to(self.device, torch.float32)
        gen = device_generator(generator, self.device)
        width = min(self.batch_size, num_samples)
        buffer = torch.empty((width, *x.shape), device=self.device)
        votes = []
        for start in range(0, limit, width):
            rows = min(width, num_samples - start)
            used = min(rows, limit - start)
            batch = self.noise.sample_(buffer[:rows], gen)[:used].add_(x)
            logits = self.forward(batch)
            if logits.ndim != 2 or logits.shape[0] != used:
                raise ValueError(
                    f"the model must return logits of shape [batch, classes], got {tuple(logits.shape)}"
                )
            votes.append(self.vote(logits))
        return torch.cat(votes).cpu()


def reparameterized_probs(model: torch.nn.Module, xs: torch.Tensor, scales: torch.Tensor,
                          eps: torch.Tensor) -> torch.Tensor:
    """``psi_i = mean_j softmax(f(x_i + scales_i * eps_ij))`` ``[inputs, classes]``, differentiable in ``scales``.

    ``eps`` is ``[inputs, m, *shape]`` standard normal, ``scales`` ``[inputs, *shape]`` (anisotropic) or broadcastable
    to it.  The reparameterisation trick of the sigma-optimising families (ANCER); the certificates themselves never
    use it: their counts come from :class:`Sampler`.
    """
    b, m = eps.shape[:2]
    scales = scales.expand(b, *xs.shape[1:])[:, None]
    logits = model((xs[:, None] + scales * eps).reshape(b * m, *xs.shape[1:]))
    return torch.softmax(logits, dim=1).view(b, m, -1).mean(dim=1)
