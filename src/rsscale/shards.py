"""Shards: one certification run split into K jobs over disjoint ranges of packs, and the gather that merges them.

A run certifies the positions ``0 .. N-1`` of its input selection in packs of
``pack`` positions, the pack at position ``p`` drawing from a generator seeded
with ``derived_seed(seed, p)`` (:mod:`rsscale.run`).  Shard ``i`` of ``K``
holds the packs ``floor(i P / K) .. floor((i + 1) P / K) - 1`` of the
``P = ceil(N / pack)`` packs: the K shards are contiguous, disjoint, cover
the run, and differ by at most one pack (a shard holds none when K > P).
Every pack keeps its position and seed, so a shard's rows are the unsharded
run's rows at those positions, and :func:`gather_shards`, concatenating the K
shard files in order, writes the unsharded run's file (wall-clock columns
aside, which each job measures for itself).

A shard is a resumable run of its own: its file records the run's identity
plus ``shard`` (so one shard's rows are never resumed as another's), and its
sidecar the positions it covers.  How many shards is a runtime choice: the
merged file's identity and parameters hold no trace of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rsscale.io import (
    CERTIFICATE_COLUMNS,
    RowWriter,
    identity_differences,
    read_rows,
    read_run,
    read_sidecar,
    run_record_path,
    write_text_atomic,
)

#: Sidecar fields that describe the job that wrote a file, not the run: the gathered sidecar keeps each shard's.
JOB_FIELDS = ("started", "finished", "device", "threads", "git_commit", "versions", "command", "hostname",
              "environment")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self):
        if not (isinstance(self.count, int) and isinstance(self.index, int) and 0 <= self.index < self.count):
            raise ValueError(f"a shard is i/K with 0 <= i < K, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/K"`` (e.g. ``"0/4"`` .. ``"3/4"``) as a shard."""
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not found:
            raise ValueError(f"--shard expects i/K (shard i of K, 0 <= i < K), got {text!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    def positions(self, inputs: int, pack: int) -> range:
        """The positions of a run's ``inputs``-long selection this shard certifies: whole packs, contiguous."""
        packs = -(-inputs // pack)
        first, stop = self.index * packs // self.count, (self.index + 1) * packs // self.count
        return range(first * pack, min(stop * pack, inputs))

    def identity(self) -> dict:
        """What a shard file adds to its run's identity."""
        return {"index": self.index, "count": self.count}

    def record(self, inputs: int, pack: int) -> dict:
        """The sidecar's ``shard`` block: which shard, and the positions it covers of the run's ``inputs``."""
        span = self.positions(inputs, pack)
        return {**self.identity(), "positions": [span.start, span.stop], "inputs": inputs}


@dataclass
class _ShardFile:
    path: Path
    rows: list[dict[str, str]]
    sidecar: dict

    @property
    def shard(self) -> Shard:
        return Shard(self.sidecar["shard"]["index"], self.sidecar["shard"]["count"])


def _read_shard(path: Path) -> _ShardFile:
    """A complete shard file: rows as text (bytes preserved), sidecar with a ``shard`` and a complete ``run`` block."""
    sidecar = read_sidecar(path)
    if not path.is_file() or not sidecar:
        raise ValueError(f"{path}: no shard file with its sidecar {path.with_suffix('.json')}")
    if not isinstance(sidecar.get("shard"), dict):
        raise ValueError(f"{path} is not a shard (its sidecar has no shard block): written without --shard")
    run = sidecar.get("run")
    if run_record_path(path).exists() or not isinstance(run, dict) or run.get("status") != "complete":
        raise ValueError(f"{path} is an incomplete shard: rerun its job to finish it")
    rows = read_rows(path, as_text=True)
    if len(rows) != run.get("rows"):
        raise ValueError(f"{path} holds {len(rows)} rows where its sidecar records {run.get('rows')}")
    return _ShardFile(path, rows, sidecar)


def _run_identity(shard: _ShardFile) -> dict:
    return {k: v for k, v in shard.sidecar["run"]["identity"].items() if k != "shard"}


def _check(shards: list[_ShardFile]) -> None:
    """The files are exactly the K shards of one run: same identity, indices 0..K-1 once each, each covering the
    positions its index gives, every row's input once, one header."""
    count = shards[0].shard.count
    first = shards[0]
    for s in shards:
        differences = identity_differences(_run_identity(first), _run_identity(s))
        if differences:
            raise ValueError(f"{s.path} is a shard of another run than {first.path}: {'; '.join(differences[:6])}")
        if s.shard.count != count:
            raise ValueError(f"{s.path} is shard {s.shard.index}/{s.shard.count}, {first.path} one of {count}")
    indices = sorted(s.shard.index for s in shards)
    if indices != list(range(count)):
        twice = sorted({i for i in indices if indices.count(i) > 1})
        missing = sorted(set(range(count)) - set(indices))
        raise ValueError(f"expected the {count} shards 0..{count - 1} of one run once each: "
                         + (f"missing {missing}" if missing else "") + (f" twice {twice}" if twice else ""))
    inputs, pack = first.sidecar["shard"]["inputs"], _run_identity(first)["pack"]
    for s in shards:
        span = s.shard.positions(inputs, pack)
        recorded = s.sidecar["shard"]
        if recorded.get("inputs") != inputs or recorded.get("positions") != [span.start, span.stop] \
                or len(s.rows) != len(span):
            raise ValueError(f"{s.path} does not cover positions {span.start}..{span.stop - 1} of {inputs} inputs as "
                             f"shard {s.shard.index}/{count} must (its record: {recorded}, {len(s.rows)} rows)")
    headers = {s.path: list(s.rows[0]) for s in shards if s.rows}
    if len({tuple(h) for h in headers.values()}) > 1:
        raise ValueError(f"the shards' columns differ: {headers}")
    keys = [row["idx"] for s in shards for row in s.rows]
    if len(set(keys)) != len(keys) or len(keys) != inputs:
        raise ValueError(f"the shards hold {len(keys)} rows for {len(set(keys))} inputs; the run has {inputs}")


def _merged(values: list):
    """One job field for the whole run: the shards' value when they agree; else the distinct strings joined by
    '; ', or the per-shard values."""
    if all(v == values[0] for v in values):
        return values[0]
    if all(isinstance(v, str) for v in values):
        return "; ".join(dict.fromkeys(values))
    return values


def gather_shards(paths: Sequence[str | Path], out: str | Path) -> dict:
    """Merge the K shard files of one certification run into ``out`` and its sidecar; return the sidecar.

    Refuses (ValueError, before writing) unless ``paths`` are exactly the K
    complete shards of one run identity covering the run (:func:`_check`).
    ``out`` gets the rows in position order, through
    :class:`rsscale.io.RowWriter` (its lock, and refusal of foreign files),
    and a sidecar like the unsharded run's: the shards' parameters and
    dataset fields, the run block of the whole run (rows, resumed rows and
    forward passes summed over the shards), the summary recomputed from the
    merged rows, started/finished spanning the jobs, and under ``shards``
    each job's own fields (:data:`JOB_FIELDS`, its positions and run block).
    """
    if not paths:
        raise ValueError("no shard files to gather")
    shards = sorted((_read_shard(Path(p)) for p in paths), key=lambda s: s.shard.index)
    _check(shards)
    out = Path(out)
    identity = _run_identity(shards[0])
    with RowWriter(out, identity=identity, what="certification run", prefix=CERTIFICATE_COLUMNS, inputs=paths,
                   restart=True) as writer:
        for s in shards:
            writer.write_many(s.rows)
    run_blocks = [s.sidecar["run"] for s in shards]
    record = {k: v for k, v in shards[0].sidecar.items() if k not in ("shard", "summary", *JOB_FIELDS)}
    record.update({k: _merged([s.sidecar.get(k) for s in shards]) for k in JOB_FIELDS})
    record["started"] = min(s.sidecar["started"] for s in shards)
    record["finished"] = max(s.sidecar["finished"] for s in shards)
    record["run"] = {"identity": identity, "status": "complete", "rows": sum(len(s.rows) for s in shards),
                     "resumed_rows": sum(b["resumed_rows"] for b in run_blocks),
                     "forward_passes_spent": sum(b["forward_passes_spent"] for b in run_blocks)}
    record["summary"] = read_run(out).summary()
    record["shards"] = [{**{k: s.sidecar.get(k) for k in JOB_FIELDS}, **s.sidecar["shard"],
                         "run": {k: v for k, v in s.sidecar["run"].items() if k != "identity"}} for s in shards]
    write_text_atomic(out.with_suffix(".json"), json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
