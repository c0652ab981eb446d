"""The exact oracles live in the package (:mod:`rsscale.oracles`); re-exported here for the tests."""

from rsscale.oracles import *  # noqa: F403
from rsscale.oracles import __all__  # noqa: F401
