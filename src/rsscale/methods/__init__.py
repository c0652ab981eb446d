"""Registry of certification method families.

Each family lives in one module of this package, subclasses
:class:`~rsscale.methods.base.Certifier` and registers itself with
:func:`~rsscale.methods.base.register`; importing this package imports every
module, so a new file is enough to appear in :func:`available`, the CLI and
every table.
"""

from __future__ import annotations

import importlib
import pkgutil

from rsscale.methods.base import Certifier, available, build, info, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Certifier", "available", "build", "info", "register"]
