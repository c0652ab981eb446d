"""The certificate record shared by every method family, and its CSV form.

One certification of one input gives one :class:`Certificate`.  A run writes
one CSV row per test input with :class:`CertificateWriter`: the fixed columns
``idx,label,prediction,correct,radius,p_lower,forward_passes,seconds``, then
the radius in each norm (``radius_l1, radius_l2, radius_linf``), then the
method's own numbers (``cert.extra``).  Rows are flushed as they finish, and a
run that is restarted skips the indices already on disk.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

#: The class returned by a smoothed classifier that declines to decide.
ABSTAIN = -1

BASE_COLUMNS = ["idx", "label", "prediction", "correct", "radius", "p_lower", "forward_passes", "seconds"]


@dataclass
class Certificate:
    """What a certifier says about one input.

    Attributes:
        prediction: the class of the smoothed classifier, or :data:`ABSTAIN`.
        radius: certified l2 radius (a noise certifying another norm reports
            the largest l2 ball inside its ball); 0.0 when abstaining.
        p_lower: the lower confidence bound on p_A the radius came from.
        forward_passes: noisy forward passes of the base model spent.
        seconds: wall-clock of this certification.
        radii: radius per norm, e.g. ``{"l1": .., "l2": .., "linf": ..}``.
        extra: method-specific numbers (written as extra CSV columns).
    """

    prediction: int
    radius: float
    p_lower: float
    forward_passes: int
    seconds: float
    radii: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def abstained(self) -> bool:
        return self.prediction == ABSTAIN


def _format(value) -> str:
    """Shortest text that round-trips (``repr`` of floats); the same value always gives the same bytes."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


class CertificateWriter:
    """Appends certificates to a CSV, one flushed row per input, resumable.

    Use as a context manager.  ``done`` holds the indices already in the file
    (from an interrupted run); the caller skips them.  A partial last line left
    by a killed process is cut off on open (a truncation in place: a kill
    during recovery cannot lose complete rows).  The file is created only when
    the first row is written, so a run that fails before any certificate
    leaves nothing behind.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.columns = None
        self.done: set[int] = set()
        self._file = None
        if self.path.exists():
            self._recover()

    def _recover(self):
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            os.truncate(self.path, len(complete))
        lines = complete.decode().splitlines()
        if not lines:
            return
        self.columns = lines[0].split(",")
        self.done = {int(line.split(",", 1)[0]) for line in lines[1:]}

    def __enter__(self):
        return self

    def _open(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", newline="")
        self._csv = csv.writer(self._file, lineterminator="\n")

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, idx: int, label: int, cert: Certificate) -> None:
        row = {
            "idx": idx,
            "label": label,
            "prediction": cert.prediction,
            "correct": int(cert.prediction == label),
            "radius": cert.radius,
            "p_lower": cert.p_lower,
            "forward_passes": cert.forward_passes,
            "seconds": cert.seconds,
        }
        row.update({f"radius_{norm}": value for norm, value in sorted(cert.radii.items())})
        row.update(cert.extra)
        if self._file is None:
            self._open()
        if self.columns is None:
            self.columns = list(row)
            self._csv.writerow(self.columns)
        missing = set(self.columns) ^ set(row)
        if missing:
            raise ValueError(f"certificate columns {sorted(missing)} differ from the file's header {self.columns}")
        self._csv.writerow([_format(row[c]) for c in self.columns])
        self._file.flush()
        self.done.add(idx)
