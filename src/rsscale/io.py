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
import fcntl
import hashlib
import json
import math
import os
import pickle
import re
import shutil
import sys
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


def read_rows(path: str | Path, text_columns: Sequence[str] = (), int_columns: Sequence[str] = (),
              as_text: bool = False) -> list[dict]:
    """A CSV's rows as dicts of typed cells: :func:`parse_cell`, except that ``text_columns`` stay text (e.g. model
    names that look like numbers) and ``int_columns`` are read as integers (counts a table prints as such); every
    cell as written with ``as_text`` (rows to copy byte for byte)."""

    def typed(column: str, text: str):
        return text if as_text or column in text_columns else int(text) if column in int_columns else parse_cell(text)

    with open(path, newline="") as handle:
        return [{k: typed(k, v) for k, v in row.items()} for row in csv.DictReader(handle)]


def as_columns(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Rows (dicts with the same keys) as one array per column."""
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}


def read_columns(path: str | Path) -> dict[str, np.ndarray]:
    """A CSV as one array per column (float arrays for numeric columns); ValueError when it has no rows."""
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} has no rows")
    return as_columns(rows)


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

    def summary(self) -> dict:
        """The sidecar's summary of a run: inputs, ACR, clean accuracy and the median seconds per input."""
        return {"inputs": len(self), "ACR": self.acr(), "clean_accuracy": float(self.correct.mean()),
                "seconds_median": float(np.median(self.columns["seconds"]))}


def read_run(path: str | Path) -> Run:
    """Read a complete certification CSV and its ``.json`` sidecar (:func:`read_result`)."""
    path = Path(path)
    rows, sidecar = read_result(path, "certificates")
    return Run(path, as_columns(rows), sidecar)


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


def run_record_path(rows: str | Path) -> Path:
    """The hidden run record beside a rows file while its run is going: ``.<name>.run.json``."""
    rows = Path(rows)
    return rows.with_name(f".{rows.name}.run.json")


def lock_path(result: str | Path) -> Path:
    """The hidden lock file of a result file: ``.<name>.lock``."""
    result = Path(result)
    return result.with_name(f".{result.name}.lock")


def _canonical(value):
    """``value`` as JSON gives it back (tuples as lists, keys as text): what a run record compares."""
    return json.loads(json.dumps(value, sort_keys=True))


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    return {prefix[:-1]: value}


def identity_differences(on_disk: dict, here: dict) -> list[str]:
    """``field: <on disk> on disk, <here> here`` per field (nested ones dotted) where two run identities differ."""
    old, new = _flat(on_disk), _flat(here)
    return [f"{k}: {json.dumps(old.get(k))} on disk, {json.dumps(new.get(k))} here"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def read_result(path: str | Path, noun: str = "rows") -> tuple[list[dict], dict]:
    """The rows and sidecar of a COMPLETE result file (what every table reads); ValueError otherwise.

    Complete means: at least one row (``noun`` names them in the error), no run record of a run still going beside
    it, a sidecar whose ``run`` block says ``complete``, and as many rows as that block records.
    """
    path = Path(path)
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} has no {noun}")
    if run_record_path(path).exists():
        raise ValueError(f"{path} is incomplete: its run is still going or was stopped (rerun the same command to "
                         f"resume it, or the workflow with --rerun-incomplete)")
    sidecar = read_sidecar(path)
    run = sidecar.get("run")
    if not isinstance(run, dict) or run.get("status") != "complete":
        state = "is missing" if not sidecar else "records no completed run"
        raise ValueError(f"{path} is not a complete result: its sidecar {path.with_suffix('.json')} {state}")
    if len(rows) != run.get("rows"):
        raise ValueError(f"{path} holds {len(rows)} rows where its sidecar records {run.get('rows')}: it was changed "
                         f"after its run finished")
    return rows, sidecar


class ResultFileBusy(OSError):
    """Another process holds the lock of a result file."""


class _Lock:
    """An exclusive, non-blocking ``flock`` on the hidden lock file of a result file; removed on release."""

    def __init__(self, path: Path, result: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ResultFileBusy(f"another process is writing {result} (it holds {path}): two writers on one "
                                     f"file would mix their rows; wait for it or choose another output") from None
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    self.fd = fd
                    return
            os.close(fd)  # the file was removed by its last holder between our open and our lock: take the new one

    def release(self) -> None:
        os.remove(self.path)
        os.close(self.fd)


def _note(message: str) -> None:
    print(f"rsscale: {message}", file=sys.stderr, flush=True)


class RowWriter:
    """Appends rows to a result CSV, one flushed line per row, resumable, never touching another file; a context
    manager.

    Safety, in the order it is checked, before any byte is written, truncated or removed:

    * the result, its sidecar (``.json``) and the rows file may not be any of ``inputs`` or their sidecars;
    * an exclusive lock (``.<name>.lock``): a second writer of the same result fails at once (:class:`ResultFileBusy`);
    * a file already there must be this writer's own: a CSV with this writer's header (``columns``, or the key
      columns, starting with ``prefix``; a file without a whole line when a completed run's sidecar is beside it);
      anything else is refused, ``restart`` or not;
    * the run ``identity`` recorded beside it (the hidden run record ``.<rows>.run.json`` while the run goes, the
      sidecar's ``run`` block once complete) must equal this one: otherwise the rows are refused, naming the fields
      that differ, or discarded (and said so on stderr) with ``restart`` or ``discard_stale``; ``restart`` discards
      rows of this same identity too.  A CSV with this header and no record at all (from before run records) is
      resumed as this run's.

    Then a partial last line left by a killed process is cut off, and the rows on disk are read: ``key in writer``
    tells the caller which units of work to skip, and :meth:`write` ignores a row whose key is on disk.  The run
    record is written before the first row; the file is created only when the first row is written.

    Rows go to ``partial`` when given (a file the workflow never deletes), else to ``path`` itself.  When the block
    ends without an exception the run is complete: the rows are copied onto ``path`` atomically, the sidecar gets
    the ``run`` block (:attr:`record`: identity, status ``complete``, rows, rows resumed and forward passes spent in
    this invocation), and the run record, partial file and lock are removed.  A run with no rows at all (a shard of
    a run holding no pack) completes as an empty file when ``allow_empty``; otherwise it leaves no file.
    """

    def __init__(self, path: str | Path, key: Sequence[str] = ("idx",), columns: Sequence[str] | None = None, *,
                 identity: dict | None = None, what: str = "run", inputs: Sequence[str | Path] = (),
                 partial: str | Path | None = None, restart: bool = False, discard_stale: bool = False,
                 prefix: Sequence[str] = (), allow_empty: bool = False):
        self.path = Path(path)
        self.allow_empty = allow_empty
        self.rows_path = Path(partial) if partial is not None else self.path
        self.sidecar = self.path.with_suffix(".json")
        self.key = tuple(key)
        self.columns = list(columns) if columns is not None else None
        self.prefix = list(prefix)
        self.identity = _canonical(identity or {})
        self.what = what
        self.done: set[tuple[str, ...]] = set()
        self.resumed = 0
        self.forward_passes = 0
        self.record: dict | None = None
        self._header_on_disk = False
        self._file = None
        self._refuse_inputs(inputs)
        self._lock = _Lock(lock_path(self.path), self.path)
        try:
            self._open(restart, discard_stale)
        except BaseException:
            self._lock.release()
            raise

    def _refuse_inputs(self, inputs: Sequence[str | Path]) -> None:
        written = {p.resolve(): p for p in (self.path, self.sidecar, self.rows_path, run_record_path(self.rows_path))}
        if self.rows_path != self.path and self.rows_path.resolve() in (self.path.resolve(), self.sidecar.resolve()):
            raise ValueError(f"the partial file {self.rows_path} must differ from the result {self.path} and its "
                             f"sidecar")
        for source in map(Path, inputs):
            for used in (source, source.with_suffix(".json"), Path(f"{source}.sha256")):
                if used.resolve() in written:
                    raise ValueError(f"{written[used.resolve()]} would overwrite {used}, an input of this run "
                                     f"({source}): choose another output path")

    def _header_of(self, path: Path) -> list[str] | None:
        """The file's first complete line as CSV cells, or None when it has none or it is not text."""
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
        if b"\n" not in head:
            return None
        try:
            return next(csv.reader([head.split(b"\n", 1)[0].decode()]), [])
        except (UnicodeDecodeError, csv.Error):
            return None

    def _foreign(self, path: Path, recorded: bool) -> str | None:
        """Why ``path`` is not a rows file of this writer's kind, or None when it is one (a file without a whole line:
        when its run is recorded)."""
        header = self._header_of(path)
        if header is None:
            if recorded and b"\n" not in path.read_bytes():
                return None
            return "it has no line of text"
        if self.columns is not None:
            expected = f"the header {self.columns}"
            own = header == self.columns
        else:
            expected = f"a header with the columns {list(self.key)}" + (f" after {self.prefix}" if self.prefix else "")
            own = header[: len(self.prefix)] == self.prefix and all(k in header for k in self.key)
        return None if own else f"its first line is {header[:12]}, expected {expected}"

    def _refuse_foreign(self, path: Path, why: str, what: str = "a result file of this command") -> None:
        raise ValueError(f"{path} exists and is not {what} ({why}): refusing to write to it or remove it (--restart "
                         f"included); move it away or choose another output path")

    def _open(self, restart: bool, discard_stale: bool) -> None:
        record_path = run_record_path(self.rows_path)
        running = None
        if record_path.exists():
            try:
                running = json.loads(record_path.read_text())["identity"]
            except (OSError, ValueError, KeyError, TypeError):
                if not restart:
                    raise ValueError(f"the run record {record_path} is unreadable: pass --restart to discard "
                                     f"{self.rows_path} and start afresh") from None
                record_path.unlink()
        sidecar = None
        if self.sidecar.exists():
            try:
                sidecar = json.loads(self.sidecar.read_text())
            except (OSError, ValueError):
                sidecar = None
            if not isinstance(sidecar, dict):
                self._refuse_foreign(self.sidecar, "not a JSON object", "a result's sidecar")
            if "run" not in sidecar and not (self.path.exists() and self._foreign(self.path, False) is None):
                self._refuse_foreign(self.sidecar, "no run block, and no result of this command beside it",
                                     "a result's sidecar")
        if self.rows_path != self.path and self.path.exists():
            why = self._foreign(self.path, bool(sidecar and "run" in sidecar))
            if why:
                self._refuse_foreign(self.path, why)
        completed = sidecar.get("run", {}).get("identity") if sidecar and self.rows_path == self.path else None
        recorded = running if running is not None else completed
        if not self.rows_path.exists():
            self._discard(quiet=True)
            return
        why = self._foreign(self.rows_path, running is not None or completed is not None)
        if why:
            self._refuse_foreign(self.rows_path, why)
        differences = identity_differences(recorded, self.identity) if recorded is not None else []
        if differences and not (restart or discard_stale):
            raise ValueError(f"{self.rows_path} holds the rows of another {self.what} ({'; '.join(differences[:6])}):"
                             f" choose another output path, or pass --restart to discard them")
        if differences or restart:
            reason = f"rows of another {self.what} ({'; '.join(differences[:6])})" if differences else "--restart"
            _note(f"discarding {self.rows_path}: {reason}")
            self._discard()
            return
        if recorded is None:
            _note(f"{self.rows_path} has no run record (written before run records existed): resuming its rows as "
                  f"this {self.what}'s, unchecked")
        self._recover()

    def _discard(self, quiet: bool = False) -> None:
        """Remove this writer's own rows file, run record and (when it describes them) sidecar."""
        for path in (self.rows_path, run_record_path(self.rows_path)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self.rows_path == self.path and not quiet:
            with contextlib.suppress(FileNotFoundError):
                self.sidecar.unlink()

    def _recover(self) -> None:
        data = self.rows_path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            os.truncate(self.rows_path, len(complete))
        lines = list(csv.reader(complete.decode().splitlines()))
        if not lines:
            return
        self.columns, self._header_on_disk = lines[0], True
        positions = [self.columns.index(k) for k in self.key]
        self.done = {tuple(line[p] for p in positions) for line in lines[1:]}
        self.resumed = len(self.done)

    def __contains__(self, key_values) -> bool:
        """Whether a row with these key values (one per key column; a bare value for one key) is on disk."""
        values = key_values if isinstance(key_values, tuple) else (key_values,)
        return tuple(format_cell(v) for v in values) in self.done

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            if exc_type is None and (self.rows_path.exists() or self.allow_empty):
                self._complete()
        finally:
            self._lock.release()

    def _start(self) -> None:
        """The run record, then the rows file: before the first row."""
        write_text_atomic(run_record_path(self.rows_path), json.dumps(
            {"identity": self.identity, "status": "running", "result": str(self.path), "what": self.what},
            indent=2, sort_keys=True) + "\n")
        self._file = self.rows_path.open("a", newline="")
        self._csv = csv.writer(self._file, lineterminator="\n")
        if not self._header_on_disk:
            self._csv.writerow(self.columns)
            self._header_on_disk = True

    def _complete(self) -> None:
        self.record = {"identity": self.identity, "status": "complete", "rows": len(self.done),
                       "resumed_rows": self.resumed, "forward_passes_spent": self.forward_passes}
        if not self.rows_path.exists():  # an empty run (allow_empty): an empty file, no header
            write_text_atomic(self.path, "")
        elif self.rows_path != self.path:
            with atomic_path(self.path) as tmp:
                shutil.copyfile(self.rows_path, tmp)
        sidecar = read_sidecar(self.path) if self.sidecar.exists() else {}
        same_run = sidecar.get("run", {}).get("identity") == self.identity
        write_text_atomic(self.sidecar, json.dumps({**(sidecar if same_run else {}), "run": self.record},
                                                   indent=2, sort_keys=True) + "\n")
        if self.rows_path != self.path and self.rows_path.exists():
            self.rows_path.unlink()
        with contextlib.suppress(FileNotFoundError):
            run_record_path(self.rows_path).unlink()

    def write(self, row: dict) -> bool:
        """Append ``row`` unless a row with its key is on disk; return whether it was written."""
        return self.write_many([row]) == 1

    def write_many(self, rows: Sequence[dict]) -> int:
        """Append the ``rows`` whose keys are not on disk, flushed once; return how many were written.  The forward
        passes of every row offered (a ``forward_passes`` column) count as spent by this invocation."""
        self.forward_passes += sum(int(row["forward_passes"]) for row in rows if "forward_passes" in row)
        fresh = []
        for row in rows:
            key = tuple(format_cell(row[k]) for k in self.key)
            if key in self.done:
                continue
            if self.columns is None:
                self.columns = list(row)
            differ = set(self.columns) ^ set(row)
            if differ:
                raise ValueError(f"row columns {sorted(differ)} differ from the file's header {self.columns}")
            fresh.append((key, row))
        if not fresh:
            return 0
        if self._file is None:
            self._start()
        for key, row in fresh:
            self._csv.writerow([format_cell(row[c]) for c in self.columns])
            self.done.add(key)
        self._file.flush()
        return len(fresh)
