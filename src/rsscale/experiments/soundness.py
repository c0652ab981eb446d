"""Soundness: violation rates of every registered certifier on exact oracles (``rsscale harness``,
:mod:`rsscale.harness`), with Clopper-Pearson intervals.  The harness writes the ``soundness`` table itself and
fails when a method claimed sound violates its certificates significantly more often than alpha."""

from __future__ import annotations

from rsscale.experiments.base import Experiment, register

register(Experiment("soundness", "violation rates of every certifier on exact oracles"))
