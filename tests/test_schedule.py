"""The learning-rate schedule: constant by default, or a cosine over each phase's budget."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_friedman1

from skmoe import MoERegressor
from skmoe._torch.schedule import scheduled_lr

FAST = dict(n_experts=3, expert_width=16, max_epochs=6, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_friedman1(n_samples=1500, random_state=0)


def test_cosine_decays_from_the_peak_to_zero():
    assert scheduled_lr(1e-3, "constant", 0.7) == 1e-3
    assert scheduled_lr(1e-3, "cosine", 0.0) == pytest.approx(1e-3)
    assert scheduled_lr(1e-3, "cosine", 0.5) == pytest.approx(5e-4)
    assert scheduled_lr(1e-3, "cosine", 1.0) == pytest.approx(0.0, abs=1e-18)
    rates = [scheduled_lr(1.0, "cosine", p) for p in np.linspace(0, 1, 50)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_every_phase_follows_the_schedule(data, monkeypatch):
    """Steps of the shared phase and of the expert jobs run at the scheduled
    rates, ending near zero at the last step of each phase's budget."""
    seen = []
    step = torch.optim.AdamW.step

    def record(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", record)
    model = MoERegressor(**FAST, lr_schedule="cosine", early_stopping=False, n_iter_no_change=100).fit(*data)
    assert model.n_iter_ == 2 * FAST["max_epochs"]  # the whole budget in both phases
    seen = np.array(seen)
    restarts = np.flatnonzero(np.diff(seen) > 0) + 1  # the specialisation starts again at the peak
    assert len(restarts) == 1
    for phase in np.split(seen, restarts):
        assert phase[0] == pytest.approx(1e-3)
        assert phase[-1] < 0.01 * 1e-3
        assert np.all(np.diff(phase) <= 0)


def test_cosine_fits_are_deterministic_and_independent_of_jobs(data):
    params = dict(FAST, lr_schedule="cosine")
    one = MoERegressor(**params).fit(*data)
    again = MoERegressor(**params, n_jobs=2).fit(*data)
    np.testing.assert_array_equal(one.predict(data[0]), again.predict(data[0]))
    constant = MoERegressor(**FAST).fit(*data)
    assert not np.array_equal(one.predict(data[0]), constant.predict(data[0]))
