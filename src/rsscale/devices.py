"""Which GPU a job runs on when several jobs share a multi-GPU node.

Snakemake runs at most N jobs declaring ``resources: gpu=1`` at once under
``--resources gpu=N``, but it assigns no device ids.  So a job asked for CUDA
without an index (``--device cuda``, or no ``--device`` on a machine with
CUDA) that sees several devices claims one itself: it takes an exclusive,
non-blocking ``flock`` on ``<lock dir>/rsscale-gpu-<id>.lock`` for the first
visible device whose lock is free, and holds it until the process exits (the
kernel drops the locks of a process that dies, so a killed job frees its
device).  With N no larger than the number of devices, the N jobs get N
different devices.  ``<id>`` is the device's entry in ``CUDA_VISIBLE_DEVICES``
when that is set (an index or a UUID), else its index, so jobs that see the
devices in another order still agree; the lock directory is
``$RSSCALE_GPU_LOCK_DIR``, default ``/tmp`` (one per node).

A job that finds every device taken (more jobs than devices, e.g. a run
without ``--resources gpu=N``) shares the first one, and says so on stderr.
A job that sees one device (SLURM's ``--gpus=1`` sets ``CUDA_VISIBLE_DEVICES``
to the job's own) takes it without a lock; an explicit ``cuda:<i>`` is used as
given.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import torch

from rsscale.sampling import resolve_device

#: The open lock files of the devices this process holds (kept open, and so locked, until it exits).
_HELD: dict[str, int] = {}


def device_ids(count: int, visible: str | None) -> list[str]:
    """The lock names of ``count`` visible CUDA devices: the entries of ``CUDA_VISIBLE_DEVICES`` when set."""
    entries = [e.strip() for e in (visible or "").split(",") if e.strip()]
    return entries[:count] if len(entries) >= count else [str(i) for i in range(count)]


def claim_gpu(count: int, lock_dir: str | Path | None = None, visible: str | None = None) -> int:
    """The index of the first of ``count`` visible devices whose lock this process holds or could take; 0 (shared,
    said on stderr) when all are taken by other processes.  ``lock_dir`` and ``visible`` default to the environment
    (module docstring)."""
    if count <= 1:
        return 0
    lock_dir = Path(lock_dir or os.environ.get("RSSCALE_GPU_LOCK_DIR", "/tmp"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    ids = device_ids(count, visible if visible is not None else os.environ.get("CUDA_VISIBLE_DEVICES"))
    for index, name in enumerate(ids):
        path = str(lock_dir / f"rsscale-gpu-{name.replace('/', '_')}.lock")
        if path in _HELD:
            return index
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[path] = fd
        return index
    print(f"rsscale: all {count} GPUs are held by other rsscale jobs (locks in {lock_dir}): sharing cuda:0",
          file=sys.stderr, flush=True)
    return 0


def pick_device(device: str | torch.device | None) -> torch.device:
    """:func:`rsscale.sampling.resolve_device`, except that CUDA without an index, with several devices visible,
    becomes the device this job claims (:func:`claim_gpu`)."""
    resolved = resolve_device(device)
    if resolved.type != "cuda" or resolved.index is not None:
        return resolved
    return torch.device("cuda", claim_gpu(torch.cuda.device_count()))
