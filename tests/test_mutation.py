"""The mutation suite (rsscale.mutation): every family claiming soundness declares its required mutants, each mutant
is killed by its harness case at its declared trials or flagged by the confidence-budget audit, and the correct
certifier is neither (the audit passes every family claiming soundness on every case)."""

import numpy as np
import pytest
import torch

from rsscale import harness, methods, mutation
from rsscale.experiments import mutation as mutation_experiment
from rsscale.io import read_rows
from rsscale.noise import Gaussian

SOUND = [name for name in methods.available() if methods.info(name).sound]

#: Families claiming soundness that select c_A with separate draws but declare no reused-selection mutant yet, and why.
NO_REUSE_MUTANT = {
    "adaptive": "Horvath's stages and the sequences' first checkpoints draw fewer samples than the selection",
    "dipole": "selection and estimation use different samplers (plain and antithetic)",
    "ensemble": "the ensemble's evaluation log expects n0 + n draws",
    "irs": "the cache draws its estimation votes per input (draw_votes), not through counts",
    "isrs": "the per-input noise levels are indexed by the draws of each call",
    "second_order": "selection and estimation use different samplers (plain and the gradient's)",
    "sween": "the ensemble's evaluation log expects n0 + n draws",
}

def _params(entries):
    """One parameter per mutant; a mutant declared surviving (its ``gap``) is expected to survive, strictly."""
    return [pytest.param(m, id=m.key, marks=[pytest.mark.xfail(strict=True, reason=m.gap)] if m.gap else [])
            for m in entries]


@pytest.mark.parametrize("method", SOUND)
def test_every_sound_family_declares_a_doubled_alpha_mutant(method):
    kinds = [m.kind for m in mutation.declared_mutants(method)]
    assert mutation.DOUBLED_ALPHA in kinds, f"{method} declares no doubled-alpha mutant"


@pytest.mark.parametrize("method", [
    pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=NO_REUSE_MUTANT[name])] if name in NO_REUSE_MUTANT
                 else []) for name in SOUND])
def test_every_sound_family_with_a_selection_step_declares_a_reused_selection_mutant(method):
    kinds = [m.kind for m in mutation.declared_mutants(method)]
    assert mutation.REUSED_SELECTION in kinds, f"{method} declares no reused-selection mutant"


def test_the_mutants_named_by_the_audit_are_declared():
    keys = {m.key for m in mutation.mutants()}
    assert {"cohen/reused-selection", "dsrs/intervals-at-2alpha", "adaptive/fixed-n-bounds", "adaptive/no-stage-split",
            "second_order/p_a-at-alpha", "second_order/gradient-at-alpha", "dipole/c_s-at-alpha",
            "aces/selector-at-alpha", "aces/f-at-alpha", "cohen/halved-norm-exponent"} <= keys


def test_declared_mutants_refuse_a_case_the_family_does_not_have(monkeypatch):
    cohen = methods.family("cohen")
    wrong = mutation.doubled_alpha(cohen, "no-such-case", 10)
    monkeypatch.setattr(cohen, "mutants", classmethod(lambda cls: [wrong]))
    with pytest.raises(ValueError, match="no-such-case"):
        mutation.declared_mutants("cohen")


class _Counter:
    """A stand-in sampler: counts of one class equal to the number of draws, one call after another."""

    def __init__(self):
        self.calls = []

    def counts(self, xs, num_samples, generator=None, progress=None):
        self.calls.append(num_samples)
        return torch.tensor([[len(self.calls), num_samples]] * len(xs))


def test_reused_draws_answer_selection_and_estimation_with_the_same_draws():
    inner = _Counter()
    reused = mutation.ReusedDraws(inner, 500)
    xs = torch.zeros(3, 2)
    selection, estimation = reused.counts(xs, 20), reused.counts(xs, 500)
    assert inner.calls == [500] and torch.equal(selection, estimation)
    reused.counts(xs, 20)  # the next pair draws afresh
    assert inner.calls == [500, 500]
    with pytest.raises(ValueError, match="expected 500"):
        reused.counts(xs, 499)


def test_halved_exponent_converts_as_in_dimension_sqrt_d():
    noise = Gaussian(0.5)
    wrong = mutation.HalvedExponent(noise).radii(0.9, 100)
    right = noise.radii(0.9, 100)
    assert wrong["l2"] == right["l2"] and wrong["linf"] == pytest.approx(right["linf"] * np.sqrt(10))


def test_doubled_alpha_builds_the_family_with_each_share_doubled():
    irs = next(m for m in mutation.declared_mutants("irs") if m.kind == mutation.DOUBLED_ALPHA)
    oracle = torch.nn.Linear(4, 2)
    certifier = irs.make(model=oracle, num_classes=2, sigma=0.5, original=oracle, n0=10, n=100, alpha=0.01,
                         alpha_zeta=0.02)
    assert certifier.alpha == 0.02 and certifier.alpha_zeta == 0.04


def test_a_cheap_mutant_is_killed_and_the_correct_certifier_is_not_at_the_same_trials():
    mutant = next(m for m in mutation.declared_mutants("cohen") if m.name == "halved-norm-exponent")
    row = mutation.run_mutant(mutant)
    assert row["verdict"] == "killed" and row["killed_at"] != "-"
    control = mutation.run_mutant(mutant, control=True)
    assert control["verdict"] == "survived" and control["mutant"] == "(correct)"


def test_the_experiment_writes_both_tables_and_resumes_without_rerunning(tmp_path, monkeypatch):
    runs = []

    def fake(mutant, seed, alpha):
        runs.append(mutant.key)
        return {"method": mutant.method, "mutant": mutant.name, "kind": mutant.kind, "case": mutant.case,
                "trials": mutant.trials, "positions": 5, "killed_at": "p=0.8", "worst_rate": 0.5, "alpha": alpha,
                "verdict": "killed", "audit": "flagged", "finding": "union bound", "caught_by": "harness+audit",
                "gap": "-", "seconds": 0.1}

    monkeypatch.setattr(mutation, "run_mutant", fake)
    out, score = tmp_path / "mutation", tmp_path / "mutation_score"
    mutation_experiment.run(out, score, ["cohen"])
    first = read_rows(f"{out}.csv")
    # drop the last row, as a killed run would have: the restart runs only that mutant
    lines = (tmp_path / "mutation.csv").read_text().splitlines(keepends=True)
    (tmp_path / "mutation.csv").write_text("".join(lines[:-1]))
    runs.clear()
    mutation_experiment.run(out, score, ["cohen"])
    assert runs == [mutation.declared_mutants("cohen")[-1].key]
    assert read_rows(f"{out}.csv") == first
    scores = read_rows(f"{score}.csv", text_columns=("score",))
    assert scores == [{"method": "cohen", "mutants": len(first), "killed": len(first), "flagged": len(first),
                       "caught": len(first), "score": f"{len(first)}/{len(first)}", "survivors": "-"}]


#: Mutants whose error spends no alpha and reuses no draw, so the confidence-budget audit cannot see them, and why.
NOT_AUDITABLE = {"cohen/halved-norm-exponent": "a wrong l_p -> l_q radius conversion: the harness kills it"}


@pytest.mark.parametrize("case", [c for name in SOUND for c in harness.declared_cases(name)], ids=lambda c: c.key)
def test_the_audit_passes_every_family_claiming_soundness_on_its_cases(case):
    assert mutation.audit_case(case) == []


@pytest.mark.parametrize("mutant", mutation.mutants(), ids=lambda m: m.key)
def test_the_audit_flags_every_mutant_that_spends_alpha_or_reuses_draws(mutant):
    findings = mutation.audit_case(mutation.case_of(mutant), mutation.injecting(mutant))
    assert bool(findings) == (mutant.key not in NOT_AUDITABLE), findings
    if mutant.kind == mutation.REUSED_SELECTION:
        assert any(f.startswith("independence") for f in findings)
    elif findings:
        assert all(f.startswith("union bound") for f in findings)


def test_every_mutant_is_caught_by_the_harness_or_the_audit():
    """A mutant neither the audit flags nor a kill test covers (not declared surviving) would be a survivor."""
    for mutant in mutation.mutants():
        assert mutant.key not in NOT_AUDITABLE or not mutant.gap, mutant.key


@pytest.mark.slow
@pytest.mark.parametrize("mutant", _params(mutation.mutants()))
def test_every_mutant_is_killed_by_its_case(mutant):
    row = mutation.run_mutant(mutant)
    assert row["verdict"] == "killed", row
    assert row["gap"] == "-"


@pytest.mark.slow
@pytest.mark.parametrize("mutant", [m for m in mutation.mutants() if not m.gap], ids=lambda m: m.key)
def test_the_correct_certifier_passes_each_mutants_case_at_the_same_trials(mutant):
    row = mutation.run_mutant(mutant, control=True)
    assert row["verdict"] == "survived", row
