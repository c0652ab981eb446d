"""The study's experiments, one module each, found through a registry.

An experiment module (e.g. :mod:`rsscale.experiments.dimension`) says which result
files its config section asks for (``runs``), turns them into its table and figure,
and registers the claim tests of its tables; it ends with
``register(Experiment(...))``.  Importing this package imports every module of it,
so a new file is enough to appear in ``rsscale table``/``figure`` and the claims
ledger.  The shared modules: :mod:`~rsscale.experiments.base` (the registry),
:mod:`~rsscale.experiments.plan` (models and runs of a config),
:mod:`~rsscale.experiments.tables`, :mod:`~rsscale.experiments.figures` and
:mod:`~rsscale.experiments.claims` (the ledger).
"""

from __future__ import annotations

import importlib
import pkgutil

from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, available, get, register

SHARED = {"base", "plan", "tables", "figures", "claims"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in SHARED:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Experiment", "FigureOptions", "TableOptions", "available", "get", "register"]
