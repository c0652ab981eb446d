"""The confidence ledger: what one certification states, at which level, from which draws.

A certificate that holds with probability >= 1 - alpha rests on two facts a reviewer can check without running a
single trial (the union bound and independence, Cohen, Rosenfeld & Kolter 2019, Sec. 3.2 and Thm. 2's proof):

* **the union bound**: the confidence statements the certificate relies on fail with probabilities whose sum is at
  most alpha -- every call into :mod:`rsscale.bounds` (and a family's own bound, e.g. second-order smoothing's
  gradient bound) is one statement at its level;
* **independence**: the samples that select the class are not the samples that bound its probability -- every draw
  of vote counts is used either for selection or for estimation, never both.

While :func:`recording` is active, the decorated bounds (:func:`statement`) and the samplers' users
(:func:`use`) write into a :class:`Ledger`; with no ledger active each hook is one global read (zero cost when off).
Two refinements keep the sum honest: an anytime-valid confidence sequence (betting, union-bound sequence) is ONE
statement however often it is looked at (its guarantee is uniform over time), and a bound inside :func:`auxiliary`
(one that only steers the procedure: a pilot that sizes the sample, an upper bound that stops early to abstain) is
recorded but not counted, since the certificate does not rely on it.  A bound called inside another recorded bound
(an interval from its two one-sided ends) is part of the outer statement.  :func:`audit` gives the verdict.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: The ledger being written (None: recording is off).
_ACTIVE: Ledger | None = None


@dataclass(frozen=True)
class Statement:
    """One confidence statement: the bound that made it, its level, and whether the certificate relies on it."""

    bound: str
    alpha: float
    anytime: bool
    relied_on: bool


@dataclass
class Ledger:
    """The statements and draws of one certification."""

    statements: list[Statement] = field(default_factory=list)
    #: ``(role, draw)``: each use of a draw of vote counts ("selection" or "estimation"), draws numbered in order
    uses: list[tuple[str, int]] = field(default_factory=list)
    _draws: list[object] = field(default_factory=list)  # the count objects, kept alive so identities stay unique
    _depth: int = 0
    _auxiliary: int = 0

    def counted(self) -> list[Statement]:
        """The statements the certificate relies on, each anytime-valid sequence (same bound, same level) once."""
        seen: set[tuple[str, float]] = set()
        out = []
        for s in self.statements:
            if s.relied_on and not (s.anytime and (s.bound, s.alpha) in seen):
                seen.add((s.bound, s.alpha))
                out.append(s)
        return out

    def relied_alpha(self) -> float:
        """The union bound's total: the sum of the levels of the :meth:`counted` statements."""
        return sum(s.alpha for s in self.counted())

    def shared_draws(self) -> list[int]:
        """The draws used both for selection and for estimation."""
        roles: dict[int, set[str]] = {}
        for role, draw in self.uses:
            roles.setdefault(draw, set()).add(role)
        return sorted(d for d, r in roles.items() if {"selection", "estimation"} <= r)

    def draw_of(self, counts) -> int:
        """The identity of the draw ``counts`` (numbered at its first use)."""
        for i, known in enumerate(self._draws):
            if known is counts:
                return i
        self._draws.append(counts)
        return len(self._draws) - 1


@contextmanager
def recording() -> Iterator[Ledger]:
    """Record the statements and draws made inside the block into a fresh :class:`Ledger` (not nested)."""
    global _ACTIVE
    if _ACTIVE is not None:
        raise RuntimeError("a confidence ledger is already recording")
    _ACTIVE = Ledger()
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = None


@contextmanager
def auxiliary() -> Iterator[None]:
    """Statements made inside the block steer the procedure only (sample size, early abstention): recorded, not
    counted in the union bound."""
    book = _ACTIVE
    if book is None:
        yield
        return
    book._auxiliary += 1
    try:
        yield
    finally:
        book._auxiliary -= 1


def use(role: str, counts) -> None:
    """The vote counts ``counts`` (the object a sampler returned) are used for ``role``: "selection" or
    "estimation"."""
    if _ACTIVE is not None:
        _ACTIVE.uses.append((role, _ACTIVE.draw_of(counts)))


def statement(anytime: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: each call of the bound is a confidence statement at its argument ``alpha`` (``anytime``: a
    time-uniform confidence sequence, one statement however often it is evaluated)."""

    def wrap(bound: Callable) -> Callable:
        signature = inspect.signature(bound)

        @functools.wraps(bound)
        def recorded(*args, **kwargs):
            book = _ACTIVE
            if book is None or book._depth:
                return bound(*args, **kwargs)
            book._depth += 1
            try:
                result = bound(*args, **kwargs)
            finally:
                book._depth -= 1
            alpha = float(signature.bind(*args, **kwargs).arguments["alpha"])
            book.statements.append(Statement(bound.__name__, alpha, anytime, relied_on=not book._auxiliary))
            return result

        return recorded

    return wrap


def audit(book: Ledger, alpha: float, tolerance: float = 1e-12) -> list[str]:
    """The audit's findings for one certification claimed at level ``alpha`` (empty: it passes): the union bound
    exceeded, and draws used for both selection and estimation."""
    findings = []
    total = book.relied_alpha()
    if total > alpha * (1 + tolerance):
        counted = ", ".join(f"{s.bound}@{s.alpha:g}" for s in book.counted())
        findings.append(f"union bound: statements sum to {total:g} > alpha {alpha:g} ({counted})")
    shared = book.shared_draws()
    if shared:
        findings.append(f"independence: draw(s) {shared} feed both the selection and an estimation bound")
    return findings
