"""Mutation suite: deliberately wrong certifiers that the soundness harness must catch.

A *mutant* is a variant of a registered family with one deliberate error that
breaks its guarantee (alpha doubled, the class selected from the estimation
draws, one confidence statement at the full alpha, a wrong norm conversion,
...).  Each family declares its mutants next to itself, in its class's
:meth:`~rsscale.methods.base.Certifier.mutants`, built with the tools here: a
subclass overriding one step (:func:`overriding`, :func:`full_level`), a
certifier built with a wrong parameter (:func:`doubled_alpha`), or the
selection draws reused for estimation (:func:`reused_selection`).

Each mutant names the harness case of its family that catches it and the
trials per position that catch it with probability >= 95 % (its violation
rate, measured at its most sensitive position, at least the case's power
:func:`rsscale.harness.detects_at` at those trials).  A mutant the harness
does not catch at affordable trials is declared :meth:`Mutant.surviving`,
with the reason: where the harness lacks power, and what would catch it.  :func:`run_mutant` runs that case with
the mutant injected through the harness's ``factory`` hook: the mutant is
KILLED when the case fails (:func:`rsscale.harness.case_fails`: some position
rejects ``rate <= alpha`` after Holm's correction), and SURVIVES otherwise --
then the harness lacks power where that error lives.  The *mutation score*
of a family is ``killed / total`` over its mutants.

Next to the statistical verdict runs a deterministic one, the *confidence-budget audit* (:func:`audit_case`): the
mutant's case, a few inputs per position, each certification recorded in a :mod:`rsscale.ledger`; the mutant is
FLAGGED when some certification relies on statements whose alphas sum to more than the case's alpha (the union
bound) or uses one draw both to select and to estimate (independence).  An alpha mistake in a family whose bounds
are conservative leaves no statistical trace at affordable trials, but it always leaves this one.  A mutant is
*caught* when it is killed or flagged; the score counts both.  A mutant neither catches stays a survivor with its
reason (``gap``).

Every family that claims soundness declares at least a doubled-alpha mutant
(:data:`DOUBLED_ALPHA`: every share of its alpha doubled), and one that reuses
its selection draws for estimation (:data:`REUSED_SELECTION`) where it has a
separate selection step (:attr:`~rsscale.methods.base.Certifier.selects`);
``tests/test_mutation.py`` checks both.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rsscale import harness, ledger, methods
from rsscale.methods.base import Certifier

#: The kind of the mutant every family claiming soundness declares: each share of its alpha doubled.
DOUBLED_ALPHA = "doubled alpha"
#: The kind of the mutant every family with a selection step declares: c_A chosen on the estimation draws.
REUSED_SELECTION = "reused selection"
#: Columns of the ``mutation`` table (one row per mutant) and of the ``mutation_score`` table (one row per family).
COLUMNS = ["method", "mutant", "kind", "case", "trials", "positions", "killed_at", "worst_rate", "alpha", "verdict",
           "audit", "finding", "caught_by", "gap", "seconds"]
SCORE_COLUMNS = ["method", "mutants", "killed", "flagged", "caught", "score", "survivors"]
#: Inputs per position of the confidence-budget audit (each certified alone, in its own ledger).
AUDIT_TRIALS = 2
REUSED_DESCRIPTION = "c_A selected from the estimation draws (no separate selection samples)"


@dataclass(frozen=True)
class Mutant:
    """A deliberately wrong variant of the family ``method``: ``make(**kwargs)`` builds it from the keyword arguments
    the harness passes to :func:`rsscale.methods.build`; ``case`` (one of the family's harness cases) run at ``trials``
    per position catches it -- or, when ``gap`` says why, does not (:meth:`surviving`)."""

    method: str
    name: str
    description: str
    make: Callable[..., Certifier]
    case: str
    trials: int
    kind: str = ""
    gap: str = ""

    @property
    def key(self) -> str:
        return f"{self.method}/{self.name}"

    def surviving(self, gap: str) -> Mutant:
        """This mutant, declared as one the harness does not catch at its trials, and why (``gap``: where the harness
        lacks power for it, and what would catch it)."""
        return dataclasses.replace(self, gap=gap)


def overriding(cls: type[Certifier], name: str, description: str, case: str, trials: int, kind: str = "",
               **steps) -> Mutant:
    """The mutant ``cls`` with the methods (or attributes) ``steps`` replaced: a subclass of ``cls``, unregistered."""
    mutated = type(f"{cls.__name__}_{name.replace('-', '_')}", (cls,), {**steps, "__doc__": description})
    return Mutant(cls.name, name, description, mutated, case, trials, kind)


def full_level(cls: type[Certifier], statement: str, name: str, description: str, case: str, trials: int) -> Mutant:
    """The mutant ``cls`` whose confidence statement ``statement`` holds at the full alpha instead of its share
    (:meth:`~rsscale.methods.base.Certifier.level`)."""

    def level(self, which: str) -> float:
        return self.alpha if which == statement else cls.level(self, which)

    return overriding(cls, name, description, case, trials, level=level)


def doubled_alpha(cls: type[Certifier], case: str, trials: int, shares: Sequence[str] = ("alpha",)) -> Mutant:
    """The mutant ``cls`` built with each of its alpha parameters ``shares`` doubled (:data:`DOUBLED_ALPHA`)."""

    def make(**kwargs) -> Certifier:
        return cls(**{**kwargs, **{share: 2 * kwargs[share] for share in shares if share in kwargs}})

    return Mutant(cls.name, "doubled-alpha", f"{' and '.join(shares)} doubled", make, case, trials, DOUBLED_ALPHA)


def replaced(certifier: Certifier, path: str, wrap: Callable) -> Certifier:
    """``certifier`` with its part at the attribute path ``path`` (e.g. ``"smoothed.sampler"``) replaced by
    ``wrap(part)``."""
    *owner_path, attribute = path.split(".")
    owner = functools.reduce(getattr, owner_path, certifier)
    setattr(owner, attribute, wrap(getattr(owner, attribute)))
    return certifier


class ReusedDraws:
    """A sampler whose calls come in pairs on the same inputs, SELECT's then ESTIMATE's: the first is answered with the
    counts of ``n`` draws, the second with the same counts, so c_A is the top class of the very samples that then
    bound p_A (about 2 alpha as p_A -> 1/2: the top of two even classes always holds at least half the votes)."""

    def __init__(self, sampler, n: int):
        self.sampler, self.n, self.pending = sampler, n, None

    def counts(self, xs, num_samples: int, generator=None, progress=None):
        if self.pending is None:
            self.pending = self.sampler.counts(xs, self.n, generator, progress)
            return self.pending
        if num_samples != self.n:
            raise ValueError(f"ReusedDraws: an estimation of {num_samples} draws, expected {self.n}")
        counts, self.pending = self.pending, None
        return counts

    def __getattr__(self, name: str):
        return getattr(self.sampler, name)


def reused_selection(cls: type[Certifier], sampler: str, case: str, trials: int) -> Mutant:
    """The mutant ``cls`` whose sampler at the attribute path ``sampler`` (e.g. ``"smoothed.sampler"``) selects c_A
    from its estimation draws (:class:`ReusedDraws` of ``n`` draws, :data:`REUSED_SELECTION`)."""

    def make(**kwargs) -> Certifier:
        certifier = cls(**kwargs)
        return replaced(certifier, sampler, lambda part: ReusedDraws(part, certifier.n))

    return Mutant(cls.name, "reused-selection", REUSED_DESCRIPTION, make, case, trials, REUSED_SELECTION)


def reused_selection_sampler(cls: type[Certifier], case: str, trials: int) -> Mutant:
    """:func:`reused_selection` for a family that makes its sampler at certification time (``new_sampler``)."""

    def new_sampler(self, *args, **kwargs):
        return ReusedDraws(cls.new_sampler(self, *args, **kwargs), self.n)

    return overriding(cls, "reused-selection", REUSED_DESCRIPTION, case, trials, REUSED_SELECTION,
                      new_sampler=new_sampler)


class HalvedExponent:
    """A smoothing distribution whose radii in other norms use half the exponent of the l_p -> l_q conversion:
    ``r / d^((1/p - 1/q) / 2)`` (that is, the conversion in dimension sqrt(d)) instead of ``r / d^(1/p - 1/q)``."""

    def __init__(self, noise):
        self.noise = noise

    def radii(self, p_lower: float, dim: int) -> dict[str, float]:
        return self.noise.radii(p_lower, math.sqrt(dim))

    def __getattr__(self, name: str):
        return getattr(self.noise, name)


def halved_exponent(cls: type[Certifier], noise: str, case: str, trials: int) -> Mutant:
    """The mutant ``cls`` whose noise at the attribute path ``noise`` converts radii with a halved exponent
    (:class:`HalvedExponent`)."""
    return Mutant(cls.name, "halved-norm-exponent", "radii in other norms: l_p -> l_q conversion with exponent "
                  "(1/p - 1/q) / 2", lambda **kwargs: replaced(cls(**kwargs), noise, HalvedExponent), case, trials)


# ---- the suite ---------------------------------------------------------------------------------------------


def declared_mutants(method: str) -> list[Mutant]:
    """The mutants a registered family declares itself (its own class's ``mutants()``), checked: each named once, each
    of this family, each caught by one of its harness cases."""
    cls = methods.family(method)
    found = cls.mutants() if "mutants" in vars(cls) else []
    names = [m.name for m in found]
    case_names = {c.name for c in harness.declared_cases(method)}
    if len(set(names)) != len(names) or any(m.method != method for m in found):
        raise ValueError(f"the mutants of {method!r} must be its own, each named once; got {[m.key for m in found]}")
    for m in found:
        if m.case not in case_names:
            raise ValueError(f"mutant {m.key}: {m.case!r} is not a harness case of {method!r} ({sorted(case_names)})")
    return found


def mutants(names: Sequence[str] | None = None) -> list[Mutant]:
    """The mutants of the given methods (default: all registered), method by method."""
    return [m for method in (methods.available() if names is None else names) for m in declared_mutants(method)]


def injecting(mutant: Mutant) -> harness.Factory:
    """The harness factory that builds ``mutant`` for its family and every other family as registered."""

    def factory(name: str, **kwargs) -> Certifier:
        return mutant.make(**kwargs) if name == mutant.method else methods.build(name, **kwargs)

    return factory


def case_of(mutant: Mutant) -> harness.Case:
    return next(c for c in harness.declared_cases(mutant.method) if c.name == mutant.case)


class _Audited:
    """A certifier whose every certification (one input at a time) is recorded in its own ledger and audited at the
    level ``alpha``; the findings accumulate in ``findings``."""

    def __init__(self, certifier: Certifier, alpha: float, findings: list[str]):
        self.certifier, self.alpha, self.findings = certifier, alpha, findings

    def certify_many(self, xs, generator=None):
        certs = []
        for x in xs:
            with ledger.recording() as book:
                certs += self.certifier.certify_many(x[None], generator=generator)
            self.findings += [f for f in ledger.audit(book, self.alpha) if f not in self.findings]
        return certs

    def __getattr__(self, name: str):
        return getattr(self.certifier, name)


def audit_case(entry: harness.Case, factory: harness.Factory | None = None, alpha: float = 0.05, seed: int = 0,
               trials: int = AUDIT_TRIALS) -> list[str]:
    """The confidence-budget audit of ``entry``'s family as ``factory`` builds it (default: as registered): the case
    at ``trials`` inputs per position, each certification audited (:func:`rsscale.ledger.audit`) against the case's
    ``alpha``; the distinct findings (empty: it passes).  The verdicts of the case itself are not used."""
    build = factory or methods.build
    findings: list[str] = []

    def audited(name: str, **kwargs) -> Certifier:
        certifier = build(name, **kwargs)
        return _Audited(certifier, alpha, findings) if name == entry.method else certifier

    harness.run_case(entry, trials, seed, alpha, audited)
    return findings


def run_mutant(mutant: Mutant, seed: int = 0, alpha: float = 0.05, trials: int | None = None,
               control: bool = False) -> dict:
    """Run the mutant's case with the mutant injected (or, with ``control``, the correct certifier) at its trials per
    position (or ``trials``), and its confidence-budget audit (:func:`audit_case`); a row of :data:`COLUMNS`: verdict
    ``killed`` when the case fails, else ``survived``; audit ``flagged`` when the audit finds a fault, else
    ``passed``; ``caught_by`` harness, audit, both or none."""
    entry = case_of(mutant)
    count = mutant.trials if trials is None else int(trials)
    factory = None if control else injecting(mutant)
    tic = time.perf_counter()
    outcome = harness.run_case(entry, count, seed, alpha, factory)
    rows = harness.summarize(entry, outcome, alpha, sound=True)
    failed = [row["position"] for row in rows if row["verdict"] == "FAIL"]
    findings = audit_case(entry, factory, alpha, seed)
    killed = harness.case_fails(rows)
    caught = [who for who, hit in (("harness", killed), ("audit", bool(findings))) if hit]
    return {"method": mutant.method, "mutant": "(correct)" if control else mutant.name, "kind": mutant.kind,
            "case": mutant.case, "trials": count, "positions": len(rows), "killed_at": " ".join(failed) or "-",
            "worst_rate": max(row["rate"] for row in rows), "alpha": alpha,
            "verdict": "killed" if killed else "survived", "audit": "flagged" if findings else "passed",
            "finding": "; ".join(findings) or "-", "caught_by": "+".join(caught) or "none", "gap": mutant.gap or "-",
            "seconds": time.perf_counter() - tic}


def run_mutations(names: Sequence[str] | None = None, seed: int = 0, alpha: float = 0.05,
                  report: Callable[[dict], object] | None = None,
                  recorded: Mapping[tuple[str, str], Mapping] | None = None) -> list[dict]:
    """Every declared mutant of the given methods (default: all registered); ``report`` gets each row.  ``recorded``
    maps ``(method, mutant)`` to the rows of an earlier, interrupted run with the same seed and alpha: those mutants
    are not run again (their rows are checked and taken as they are)."""
    recorded = recorded or {}
    rows = []
    for mutant in mutants(names):
        row = recorded.get((mutant.method, mutant.name))
        if row is None:
            row = run_mutant(mutant, seed, alpha)
        elif int(row["trials"]) != mutant.trials or float(row["alpha"]) != alpha:
            raise ValueError(f"{mutant.key}: the recorded row comes from another run (trials {row['trials']}, alpha "
                             f"{row['alpha']}; this run: trials {mutant.trials}, alpha {alpha}); remove it to start "
                             f"over")
        rows.append(dict(row))
        if report:
            report(rows[-1])
    return rows


def scores(rows: Sequence[Mapping]) -> list[dict]:
    """The mutation score per family of the mutant rows: mutants, killed by the harness, flagged by the audit, caught
    by either, the score ``caught / total`` and the survivors (caught by neither)."""
    by_method: dict[str, list[Mapping]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    rows = []
    for method, found in by_method.items():
        caught = [r["caught_by"] != "none" for r in found]
        rows.append({"method": method, "mutants": len(found), "killed": sum(r["verdict"] == "killed" for r in found),
                     "flagged": sum(r["audit"] == "flagged" for r in found), "caught": sum(caught),
                     "score": f"{sum(caught)}/{len(found)}",
                     "survivors": " ".join(r["mutant"] for r, c in zip(found, caught, strict=True) if not c) or "-"})
    return rows


def format_row(row: Mapping) -> str:
    """The one-line summary of a mutant's row."""
    return (f"{row['method']}/{row['mutant']} on {row['case']} ({row['trials']} trials x {row['positions']} "
            f"positions): {row['verdict']} (failed at: {row['killed_at']}; worst rate {row['worst_rate']:.4f}, alpha "
            f"{row['alpha']:g}); audit {row['audit']} ({row['finding']}); caught by {row['caught_by']} "
            f"({row['seconds']:.1f} s)")
