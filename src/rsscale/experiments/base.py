"""The registry of experiments: one section of the study each, found by name.

An experiment module builds one :class:`Experiment` and passes it to :func:`register`.
``rsscale table <name>`` and ``rsscale figure <name>`` call its ``table`` and ``figure``;
its rule file (``workflow/rules/<module>.smk``) calls its ``runs`` with the study's
:class:`~rsscale.experiments.plan.Plan` to learn which result files it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rsscale.experiments.plan import Plan


@dataclass(frozen=True)
class TableOptions:
    """What ``rsscale table`` passes on: the radii of the certified-accuracy columns and published numbers."""

    radii: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)
    linf_radii: Sequence[float] = (0.001, 0.01)
    reference: dict | None = None


@dataclass(frozen=True)
class FigureOptions:
    title: str = ""


def no_runs(plan: Plan) -> list[str]:
    """The runs of an experiment that certifies nothing through the shared ``certify`` rule."""
    return []


@dataclass(frozen=True)
class Experiment:
    """One section of the study.

    ``runs(plan)`` registers the result files its config section asks for (``plan.certify``) and returns their
    paths (none when the section is absent); ``table(inputs, out, options)`` writes ``out.csv/.md/.tex`` from them;
    ``figure(inputs, out, options)`` writes ``out.pdf/.png``.  An experiment whose table a command of its own writes
    (the harness, the violation search, ...) has no ``table``.
    """

    name: str
    summary: str
    runs: Callable[[Plan], list[str]] = no_runs
    table: Callable[[Sequence[str], str, TableOptions], None] | None = None
    figure: Callable[[Sequence[str], str, FigureOptions], None] | None = None


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to the registry under its name."""
    if experiment.name in _REGISTRY and _REGISTRY[experiment.name] != experiment:
        raise ValueError(f"experiment name {experiment.name!r} is registered twice")
    _REGISTRY[experiment.name] = experiment
    return experiment


def available() -> list[str]:
    """Names of all registered experiments, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    if name not in _REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def with_table() -> list[str]:
    """Experiments that ``rsscale table`` writes."""
    return [name for name in available() if _REGISTRY[name].table]


def with_figure() -> list[str]:
    """Experiments that ``rsscale figure`` draws."""
    return [name for name in available() if _REGISTRY[name].figure]
