"""The engine profile: certification throughput next to the forward-only ceiling of the same model, batch size and
device (``rsscale profile`` per model, :mod:`rsscale.profiling`), gathered into the ``profile`` table; and per model
size (``rsscale profile-sizes``, which writes the ``profile_sizes`` table itself)."""

from __future__ import annotations

from collections.abc import Sequence

from rsscale.experiments.base import Experiment, TableOptions, register
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_table
from rsscale.io import read_rows

COLUMNS = ["model", "batch_size", "forward_samples_per_s", "certify_samples_per_s", "ratio", "device"]


def profile_path(model: str) -> str:
    """The profile of a checkpoint (``results/models/<d>/<name>.pt`` -> ``results/profile/<d>/<name>.csv``)."""
    return model.replace("results/models/", "results/profile/").removesuffix(".pt") + ".csv"


def runs(plan: Plan) -> list[str]:
    """One profile per model of the main dataset at each sigma of the ``profile`` section."""
    return [profile_path(plan.model(plan.config["cohen"]["dataset"], sigma))
            for sigma in plan.config["profile"]["sigmas"]]


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    rows = [row for path in inputs for row in read_rows(path, text_columns=("model", "device"))]
    write_table(rows, COLUMNS, out, caption="Certification vs forward-only throughput")


register(Experiment("profile", "certification throughput against the forward-only ceiling", runs, table))
