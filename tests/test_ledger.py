"""The confidence ledger (rsscale.ledger): what it counts in the union bound, what it leaves out, the draws it
follows, and that nothing is recorded when it is off."""

import numpy as np
import pytest
import torch

from rsscale import ledger
from rsscale.bounds import betting_cs_lower, clopper_pearson_interval, clopper_pearson_lower, clopper_pearson_upper
from rsscale.smooth import estimate, select


def test_off_by_default_and_the_bounds_unchanged():
    assert ledger._ACTIVE is None
    from scipy.stats import beta

    assert clopper_pearson_lower(90, 100, 0.01) == pytest.approx(beta.ppf(0.01, 90, 11))
    assert clopper_pearson_lower.__name__ == "clopper_pearson_lower" and ledger._ACTIVE is None


def test_counts_each_statement_a_sequence_once_and_no_auxiliary_bound():
    with ledger.recording() as book:
        clopper_pearson_lower(90, 100, 0.01)
        clopper_pearson_interval(np.array([40, 60]), 100, 0.02)  # one statement: its two ends are part of it
        for t in (10, 20, 40):
            betting_cs_lower(t, t, 0.005)  # one anytime-valid sequence, looked at three times
        with ledger.auxiliary():
            clopper_pearson_upper(5, 100, 0.5)
    assert [s.bound for s in book.counted()] == ["clopper_pearson_lower", "clopper_pearson_interval",
                                                "betting_cs_lower"]
    assert book.relied_alpha() == pytest.approx(0.035)
    assert ledger.audit(book, 0.035) == [] and ledger.audit(book, 0.03)[0].startswith("union bound")
    assert ledger._ACTIVE is None
    with ledger.recording(), pytest.raises(RuntimeError, match="already recording"), ledger.recording():
        pass


class _Fixed:
    """A sampler that answers every call with a fresh tensor, or (``reuse``) the same one."""

    def __init__(self, reuse):
        self.reuse, self.last = reuse, None

    def counts(self, xs, num_samples, generator=None, progress=None):
        if self.last is None or not self.reuse:
            self.last = torch.tensor([[num_samples, 0]] * len(xs))
        return self.last


@pytest.mark.parametrize("reuse", [False, True])
def test_a_draw_used_to_select_and_to_estimate_is_found(reuse):
    xs = torch.zeros(1, 2)
    with ledger.recording() as book:
        sampler = _Fixed(reuse)
        top = select(sampler, xs, 10)
        estimate(sampler, xs, 100, top)
    assert book.shared_draws() == ([0] if reuse else [])
    assert bool(ledger.audit(book, 0.1)) == reuse
