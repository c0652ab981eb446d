"""How a job picks its GPU on a multi-GPU node: a lock per device, tested without a GPU (device count mocked)."""

import fcntl
import multiprocessing
import os
import time

import pytest
import torch

from rsscale import devices


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No device held by this process; locks in a folder of the test's own."""
    held = {}
    monkeypatch.setattr(devices, "_HELD", held)
    monkeypatch.setenv("RSSCALE_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield tmp_path
    for fd in held.values():
        os.close(fd)


def hold(path):
    """Lock ``path`` as another job would (a separate open file: flock conflicts even within one process)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_job_takes_the_first_free_device_and_keeps_it(fresh):
    other = hold(fresh / "rsscale-gpu-0.lock")
    try:
        assert devices.claim_gpu(3) == 1
        assert devices.claim_gpu(3) == 1  # the same process asks again: its own device
        with pytest.raises(BlockingIOError):
            hold(fresh / "rsscale-gpu-1.lock")
    finally:
        os.close(other)


def test_every_device_taken_means_sharing_the_first_and_saying_so(fresh, capsys):
    others = [hold(fresh / f"rsscale-gpu-{i}.lock") for i in range(2)]
    try:
        assert devices.claim_gpu(2) == 0
        assert "all 2 GPUs are held" in capsys.readouterr().err
    finally:
        for fd in others:
            os.close(fd)


def test_locks_are_named_by_the_visible_devices_ids(fresh):
    assert devices.device_ids(2, "3,GPU-ab12") == ["3", "GPU-ab12"] and devices.device_ids(2, None) == ["0", "1"]
    other = hold(fresh / "rsscale-gpu-5.lock")
    try:
        assert devices.claim_gpu(2, visible="5,7") == 1 and (fresh / "rsscale-gpu-7.lock").exists()
    finally:
        os.close(other)


def _job(queue):
    queue.put((os.getpid(), devices.claim_gpu(4)))
    time.sleep(60)  # holds its device until it is ended


def test_concurrent_jobs_get_different_devices_and_a_dead_job_frees_its_own(fresh):
    fork = multiprocessing.get_context("fork")  # jobs as processes of their own, without re-importing torch
    queue = fork.Queue()
    jobs = [fork.Process(target=_job, args=(queue,)) for _ in range(4)]
    try:
        for job in jobs:
            job.start()
        picked = dict(queue.get(timeout=30) for _ in jobs)
        assert sorted(picked.values()) == [0, 1, 2, 3]
        jobs[2].kill()
        jobs[2].join()
        jobs.append(fork.Process(target=_job, args=(queue,)))
        jobs[-1].start()
        assert queue.get(timeout=30)[1] == picked[jobs[2].pid]
    finally:
        for job in jobs:
            job.kill()
            job.join()


def test_pick_device_claims_only_for_cuda_without_an_index(fresh, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    other = hold(fresh / "rsscale-gpu-0.lock")
    try:
        assert devices.pick_device("cuda") == torch.device("cuda", 1)
        assert devices.pick_device(None) == torch.device("cuda", 1)
        assert devices.pick_device("cuda:2") == torch.device("cuda", 2)
        assert devices.pick_device("cpu") == torch.device("cpu")
    finally:
        os.close(other)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(devices, "_HELD", {})
    monkeypatch.setenv("RSSCALE_GPU_LOCK_DIR", str(fresh / "one"))
    assert devices.pick_device("cuda") == torch.device("cuda", 0) and not (fresh / "one").exists()
