"""Result files: the one resumable row writer, the one reader, atomic writes and sha256.

* :class:`RowWriter` appends one CSV row per finished unit of work (a test
  input, an (input, theta) pair, a model modification) and flushes it, so a
  killed run loses nothing: restarted with the same arguments, it skips the
  rows already on disk and ends with the file an uninterrupted run writes.
  Certificates become rows through :func:`certificate_row`.
* :func:`read_rows` is the one reader of result and table CSVs: every cell is
  typed by :func:`parse_cell` (a float when it reads as a number, else text).
  :func:`read_run` reads a certification run (columns and sidecar) with it.
* :func:`atomic_path`, :func:`write_text_atomic` and :func:`write_csv_atomic`
  replace a file in one rename: readers see the old file or the new one.
* :func:`file_sha256` identifies checkpoints and artifacts; :func:`read_weights_only`
  reads a ``torch.save`` file without running pickled code.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsscale.certificate import Certificate
from rsscale.metrics import average_certified_radius, certified_accuracy

#: The columns every certificate row starts with, then ``radius_<norm>`` per norm, then the method's own numbers.
CERTIFICATE_COLUMNS = ["idx", "label", "prediction", "correct", "radius", "p_lower", "forward_passes", "seconds"]


def format_cell(value) -> str:
    """Shortest text that round-trips (``repr`` of floats, bools as 0/1): the same value always gives the same bytes."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(float(value))
    return str(value)


def parse_cell(text: str) -> float | str:
    """A CSV cell as a float when it reads as a number (``nan`` and ``inf`` included), else the text as written."""
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(path: str | Path, text_columns: Sequence[str] = (), int_columns: Sequence[str] = ()) -> list[dict]:
    """A CSV's rows as dicts of typed cells: :func:`parse_cell`, except that ``text_columns`` stay text (e.g. model
    names that look like numbers) and ``int_columns`` are read as integers (counts a table prints as such)."""

    def typed(column: str, text: str):
        return text if column in text_columns else int(text) if column in int_columns else parse_cell(text)

    with open(path, newline="") as handle:
        return [{k: typed(k, v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _as_columns(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}


def read_columns(path: str | Path) -> dict[str, np.ndarray]:
    """A result CSV as one array per column (float arrays for numeric columns); ValueError when it has no rows."""
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} has no rows")
    return _as_columns(rows)


def read_sidecar(path: str | Path) -> dict:
    """The JSON provenance sidecar beside a result file (``<path>.json``), or {} when there is none."""
    sidecar = Path(path).with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.exists() else {}


def read_params_file(path: str | Path | None) -> dict:
    """The ``params`` object of a JSON record written by a fitting command (e.g. ``fit-sween``); {} without a file."""
    if path is None:
        return {}
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not text at all
        raise ValueError(f"cannot read method parameters from {path}: {err}") from err
    if not isinstance(content, dict) or not isinstance(content.get("params"), dict):
        raise ValueError(f"{path} must hold a JSON object with a 'params' object, e.g. {{\"params\": {{...}}}}")
    return content["params"]


@dataclass
class Run:
    """One certification run: its per-input columns and its provenance sidecar."""

    path: Path
    columns: dict[str, np.ndarray]
    sidecar: dict

    @property
    def parameters(self) -> dict:
        return self.sidecar.get("parameters", {})

    def __len__(self) -> int:
        return len(self.columns["idx"])

    def radius(self, norm: str | None = None) -> np.ndarray:
        return self.columns["radius" if norm is None else f"radius_{norm}"]

    @property
    def correct(self) -> np.ndarray:
        return self.columns["correct"].astype(bool)

    def certified_accuracy(self, r: float, norm: str | None = None) -> float:
        return certified_accuracy(self.radius(norm), self.correct, r)

    def acr(self, norm: str | None = None) -> float:
        return average_certified_radius(self.radius(norm), self.correct)


def read_run(path: str | Path) -> Run:
    """Read a certification CSV and its ``.json`` sidecar (if present)."""
    path = Path(path)
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} has no certificates")
    return Run(path, _as_columns(rows), read_sidecar(path))


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    The temporary file lives in the same folder (so :func:`os.replace` is an
    atomic rename) and is removed when the block raises.  Readers see the old
    file or the whole new one, never a half-written one; a process killed
    before the rename leaves at most a hidden ``.<name>.*.tmp`` beside it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the permissions a plain open() would have given
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv_atomic(path: str | Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Write ``rows`` (their ``columns``; other keys ignored) as a CSV through :func:`atomic_path`."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refused_object(message: str) -> str | None:
    """What a weights-only refusal says it found, e.g. ``"the global posix.system"``; None when it names nothing."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        return f"it tried to load the global {found.group(1)}"
    found = re.search(r"Unsupported (global|class)[^\n]*?(?= was not|\.\s|\.?$)", message, re.MULTILINE)
    return found.group(0) if found else None


def read_weights_only(path: str | Path, what: str, map_location: str | torch.device = "cpu"):
    """``torch.load(path, weights_only=True)`` whose failures are one-line errors naming ``path``.

    Raises FileNotFoundError when there is no file, and ValueError when the
    file carries pickled objects (refused, never run) or is not a readable
    PyTorch file at all (random bytes, truncated, empty).  ``what`` names the
    expected content in the messages, e.g. ``"checkpoint"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    unreadable = f"{path} is not a readable {what} (not written by torch.save, or truncated or corrupted)"
    try:
        with warnings.catch_warnings():  # e.g. about the pickle protocol of foreign files
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _refused_object(str(err))
        with open(path, "rb") as handle:
            head = handle.read(2)
        if found is None and not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            raise ValueError(unreadable) from err
        detail = found or "a bare pickle stream, not a torch.save file"
        raise ValueError(f"refusing {path}: it carries pickled objects that weights_only loading does not allow "
                         f"({detail}); nothing in it was run") from err
    except (PermissionError, FileNotFoundError):
        raise
    except (RuntimeError, EOFError, KeyError, IndexError, ValueError, OSError) as err:  # OSError: torch's zip reader
        raise ValueError(unreadable) from err


def certificate_row(idx: int, label: int, cert: Certificate) -> dict:
    """The CSV row of one certified test input: :data:`CERTIFICATE_COLUMNS`, ``radius_<norm>``, ``cert.extra``."""
    row = dict(zip(CERTIFICATE_COLUMNS, (idx, label, cert.prediction, int(cert.prediction == label), cert.radius,
                                         cert.p_lower, cert.forward_passes, cert.seconds), strict=True))
    row.update({f"radius_{norm}": value for norm, value in sorted(cert.radii.items())})
    row.update(cert.extra)
    return row


class RowWriter:
    """Appends rows to a CSV, one flushed line per row, resumable; use as a context manager.

    A row is identified by its ``key`` columns.  On open, the rows already in
    the file (from an interrupted run) are read: ``key in writer`` tells the
    caller which units of work to skip, and :meth:`write` ignores a row whose
    key is on disk.  A partial last line left by a killed process is cut off
    first (a truncation in place: a kill during recovery cannot lose complete
    rows).  The header is ``columns``, or the first row's keys; the file is
    created only when the first row is written, so a run that fails before any
    result leaves nothing behind.
    """

    def __init__(self, path: str | Path, key: Sequence[str] = ("idx",), columns: Sequence[str] | None = None):
        self.path = Path(path)
        self.key = tuple(key)
        self.columns = list(columns) if columns is not None else None
        self.done: set[tuple[str, ...]] = set()
        self._header_on_disk = False
        self._file = None
        if self.path.exists():
            self._recover()

    def _recover(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            os.truncate(self.path, len(complete))
        lines = list(csv.reader(complete.decode().splitlines()))
        if not lines:
            return
        if self.columns is not None and lines[0] != self.columns:
            raise ValueError(f"{self.path} has the header {lines[0]}, expected {self.columns}")
        self.columns, self._header_on_disk = lines[0], True
        positions = [self.columns.index(k) for k in self.key]
        self.done = {tuple(line[p] for p in positions) for line in lines[1:]}

    def __contains__(self, key_values) -> bool:
        """Whether a row with these key values (one per key column; a bare value for one key) is on disk."""
        values = key_values if isinstance(key_values, tuple) else (key_values,)
        return tuple(format_cell(v) for v in values) in self.done

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, row: dict) -> bool:
        """Append ``row`` unless a row with its key is on disk; return whether it was written."""
        key = tuple(format_cell(row[k]) for k in self.key)
        if key in self.done:
            return False
        if self.columns is None:
            self.columns = list(row)
        differ = set(self.columns) ^ set(row)
        if differ:
            raise ValueError(f"row columns {sorted(differ)} differ from the file's header {self.columns}")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", newline="")
            self._csv = csv.writer(self._file, lineterminator="\n")
            if not self._header_on_disk:
                self._csv.writerow(self.columns)
                self._header_on_disk = True
        self._csv.writerow([format_cell(row[c]) for c in self.columns])
        self._file.flush()
        self.done.add(key)
        return True
