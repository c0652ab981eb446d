"""Certify a dataset: the seeded, resumable loop behind every certification run.

The test inputs ``0, skip, 2 skip, ...`` (at most ``max_inputs``) are cut
into packs of ``pack`` consecutive inputs whose noisy samples share forward
passes.  The pack starting at position ``pos`` of that list draws from a
generator seeded with :func:`derived_seed` ``(seed, pos)``, so an input's
certificate depends on the run seed and its pack, never on what ran before:
a killed run restarted with the same arguments re-certifies only the packs
not yet on disk (:class:`rsscale.io.RowWriter` skips the rows already there)
and ends with the file an uninterrupted run writes, timings aside.  The
writer records the run's identity (:func:`run_identity`: the certifier and its
settings, seed, input selection, and the callers' file hashes) and refuses to
resume rows of another identity.  A run can be split into shards over whole packs, each pack keeping its
position and seed (:mod:`rsscale.shards`, whose gather merges them into the unsharded file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rsscale import methods
from rsscale.data import Dataset
from rsscale.io import CERTIFICATE_COLUMNS, RowWriter, Run, certificate_row, file_sha256, read_params_file, read_run
from rsscale.models import load_models, training_sigma
from rsscale.provenance import utc_now, write_sidecar
from rsscale.shards import Shard


def derived_seed(seed: int, *keys: int) -> int:
    """A seed for one unit of work (a pack, a training stage), derived from the run seed and the unit's position."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0] >> 1)


def input_indices(count: int, skip: int = 1, max_inputs: int | None = None) -> list[int]:
    """Every ``skip``-th of ``count`` test inputs, at most ``max_inputs`` of them."""
    return list(range(0, count, skip))[:max_inputs]


def certify_packs(indices: Sequence[int], certify_pack: Callable[[list[int], torch.Generator], Iterable[dict]],
                  writer: RowWriter, done: Callable[[int], bool], *, seed: int, pack: int = 10,
                  progress: bool = True, desc: str = "certify", positions: range | None = None) -> None:
    """Write the rows ``certify_pack(chunk, generator)`` of every pack holding an input not ``done`` yet.

    A pack is certified whole with its own generator (the same draws whatever
    is on disk); the writer keeps only the rows it does not have yet.
    ``positions`` (whole packs, e.g. a shard's) limits the run to those positions of ``indices``.
    """
    positions = positions if positions is not None else range(len(indices))
    mine = [indices[p] for p in positions]
    bar = tqdm(total=len(mine), initial=sum(map(done, mine)), desc=desc, unit="input", disable=not progress)
    for pos in range(positions.start, positions.stop, pack):
        chunk = list(indices[pos : min(pos + pack, positions.stop)])
        todo = sum(not done(i) for i in chunk)
        if not todo:
            continue
        writer.write_many(list(certify_pack(chunk, torch.Generator().manual_seed(derived_seed(seed, pos)))))
        bar.update(todo)
    bar.close()


@dataclass
class RunResult:
    """What :func:`certify_dataset` did: its file, the inputs it covers, and how many were on disk already."""

    path: Path
    indices: list[int]
    resumed: int
    record: dict | None = None


def run_identity(certifier, seed: int, skip: int, max_inputs: int | None, pack: int, **files) -> dict:
    """What makes two certification runs the same run: the method, its settings, the seed and the input selection,
    and ``files`` (e.g. checkpoint and data sha256) as the caller gives them."""
    return {"method": certifier.name, "settings": certifier.settings(), "seed": seed, "skip": skip,
            "max_inputs": max_inputs, "pack": pack, **files}


def certify_dataset(certifier, dataset: Dataset, out: str | Path, *, seed: int, skip: int = 1,
                    max_inputs: int | None = None, pack: int = 10, progress: bool = True,
                    identity: dict | None = None, writer: Mapping | None = None,
                    shard: Shard | None = None) -> RunResult:
    """Certify the test inputs of ``dataset`` with ``certifier`` (its ``certify_many``), one CSV row per input.

    Rows are :func:`rsscale.io.certificate_row` s, written as each pack
    finishes; inputs already in ``out`` are skipped (module docstring).
    ``identity`` (default: :func:`run_identity` without files) is what the
    file records and a resume must match; ``writer`` holds options of
    :class:`rsscale.io.RowWriter` (``inputs``, ``partial``, ``restart``,
    ``discard_stale``).  ``RunResult.record`` is the completed run's record.
    ``shard`` certifies only that shard's packs (:mod:`rsscale.shards`): the
    file records ``identity`` plus the shard, is written even when empty, and
    ``RunResult.indices`` are the shard's inputs.
    """
    indices = input_indices(len(dataset.x_test), skip, max_inputs)
    identity = identity if identity is not None else run_identity(certifier, seed, skip, max_inputs, pack)
    positions = shard.positions(len(indices), pack) if shard else range(len(indices))
    if shard:
        identity = {**identity, "shard": shard.identity()}

    def certify_pack(chunk: list[int], generator: torch.Generator) -> list[dict]:
        certs = certifier.certify_many(dataset.x_test[chunk], generator=generator)
        return [certificate_row(i, int(dataset.y_test[i]), cert) for i, cert in zip(chunk, certs, strict=True)]

    mine = [indices[p] for p in positions]
    with RowWriter(out, identity=identity, what="certification run", prefix=CERTIFICATE_COLUMNS,
                   allow_empty=shard is not None, **(writer or {})) as results:
        resumed = sum(i in results for i in mine)
        certify_packs(indices, certify_pack, results, results.__contains__, seed=seed, pack=pack, progress=progress,
                      desc=f"certify {certifier.name}", positions=positions)
    return RunResult(Path(out), mine, resumed, results.record)


def certifier_from_files(dataset: Dataset, data: str, checkpoints: Sequence[str], method: str,
                         sigma: float | None = None, params: dict | None = None, params_file: str | None = None,
                         device: str = "cpu", trust_checkpoint: bool = False) -> tuple[object, list[dict], dict]:
    """The certifier of a run given by files: ``(certifier, checkpoint metadata, parameters)``.

    ``sigma`` defaults to the first checkpoint's training sigma; ``params_file`` (a record written by a fitting
    command) is merged over ``params``; several checkpoints make one model list (ensembles).
    """
    loaded = load_models(checkpoints, dataset, data, trust_checkpoint)
    models_, metas = [m for m, _ in loaded], [meta for _, meta in loaded]
    sigma = training_sigma(metas[0], sigma, checkpoints[0])
    params = {**(params or {}), **read_params_file(params_file)}
    certifier = methods.build(method, model=models_[0] if len(models_) == 1 else models_,
                              num_classes=dataset.num_classes, sigma=sigma, device=device, **params)
    return certifier, metas, params


def certify_checkpoints(data: str, checkpoints: Sequence[str], out: str | Path, *, method: str = "cohen",
                        sigma: float | None = None, params: dict | None = None, params_file: str | None = None,
                        seed: int = 0, skip: int = 1, max_inputs: int | None = None, pack: int = 10,
                        device: str = "cpu", progress: bool = True, trust_checkpoint: bool = False,
                        writer: Mapping | None = None, shard: Shard | None = None) -> Run | None:
    """A certification run from files: the dataset file, the checkpoint(s), the method and its parameters.

    ``sigma`` defaults to the first checkpoint's training sigma; ``params_file``
    (a record written by a fitting command) is merged over ``params``.  Several
    checkpoints make one model list, for the families whose base classifier
    combines models (ensembles); ``trust_checkpoint`` loads checkpoints without
    a sha256 file.  Writes ``out`` (:func:`certify_dataset`) and
    its provenance sidecar ``out.json``; returns the run read back.  The run's
    identity holds the sha256 of the data, checkpoint(s) and parameter file;
    ``writer``: options of :class:`rsscale.io.RowWriter` (``partial``,
    ``restart``, ``discard_stale``).  ``shard``: certify that shard only
    (:func:`certify_dataset`); its sidecar adds the ``shard`` block, and has a
    summary only when the shard holds inputs; returns None for an empty shard.
    """
    started = utc_now()
    dataset = Dataset.load(data)
    certifier, metas, params = certifier_from_files(dataset, data, checkpoints, method, sigma, params, params_file,
                                                    device, trust_checkpoint)
    sigma = training_sigma(metas[0], sigma, checkpoints[0])
    out = Path(out)
    inputs = [data, *checkpoints, *([params_file] if params_file else [])]
    identity = run_identity(certifier, seed, skip, max_inputs, pack, command="certify", method_params=params,
                            data_sha256=file_sha256(data), checkpoint_sha256=[m["sha256"] for m in metas],
                            params_file_sha256=file_sha256(params_file) if params_file else None)
    result = certify_dataset(certifier, dataset, out, seed=seed, skip=skip, max_inputs=max_inputs, pack=pack,
                             progress=progress, identity=identity, writer={**(writer or {}), "inputs": inputs},
                             shard=shard)
    parameters = {"method": method, "sigma": sigma, "seed": seed, "skip": skip, "max_inputs": max_inputs,
                  "pack": pack, "data": data,
                  "checkpoint": checkpoints[0] if len(checkpoints) == 1 else list(checkpoints),
                  **certifier.settings(), "method_params": params, "params_file": params_file}
    run = read_run(out) if result.indices or not shard else None
    info = methods.info(method)
    inputs_of_run = len(input_indices(len(dataset.x_test), skip, max_inputs))
    placement = {"shard": shard.record(inputs_of_run, pack)} if shard else {}
    record = write_sidecar(out.with_suffix(".json"), parameters, started, device,
                           checkpoint_sha256=metas[0]["sha256"] if len(metas) == 1 else [m["sha256"] for m in metas],
                           dataset=dataset.name, dataset_meta=dataset.meta,
                           dim=dataset.dim, input_shape=list(dataset.input_shape),
                           sound=info.sound, unsound_reason=info.unsound_reason, run=result.record,
                           **({"summary": run.summary()} if run else {}), **placement)
    return replace(run, sidecar=record) if run else None
