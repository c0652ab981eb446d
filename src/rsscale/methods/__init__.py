"""Registry of certification method families.

Each family lives in one module (or package) of this package, subclasses
:class:`~rsscale.methods.base.Certifier` and registers itself with
:func:`~rsscale.methods.base.register`; importing this package imports every
module, so a new file is enough to appear in :func:`available`, the CLI, the
harness and every table.

Families from outside the repository are plug-ins, loaded after the built-in
ones: the modules named by the entry points of the group ``rsscale.methods``
(``[project.entry-points."rsscale.methods"]`` of an installed package), and the
entries of the environment variable ``RSSCALE_PLUGINS``, separated by
``os.pathsep``: each an importable module name or the path of a ``.py`` file.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

from rsscale.methods.base import Certifier, available, build, family, info, register

#: The entry-point group whose modules are loaded as plug-in method families.
ENTRY_POINT_GROUP = "rsscale.methods"
#: The environment variable listing plug-in modules or .py files (separated by ``os.pathsep``).
PLUGINS_VARIABLE = "RSSCALE_PLUGINS"


def _load_file(path: Path) -> None:
    if not path.is_file():
        raise ImportError(f"{PLUGINS_VARIABLE}: no such plug-in file {str(path)!r}")
    name = f"rsscale_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def load_plugins() -> None:
    """Import the plug-in families of the entry-point group and of ``RSSCALE_PLUGINS`` (module docstring)."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry.load()
    for item in filter(None, os.environ.get(PLUGINS_VARIABLE, "").split(os.pathsep)):
        if item.endswith(".py"):
            _load_file(Path(item))
        else:
            importlib.import_module(item)


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
load_plugins()

__all__ = ["Certifier", "available", "build", "family", "info", "load_plugins", "register"]
