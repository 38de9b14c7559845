"""The learning-rate schedule: constant by default, or a cosine over each phase's budget."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_friedman1

from skmoe import MoERegressor
from skmoe._torch import training
from skmoe._torch.schedule import BatchStream, epoch_budget, scheduled_lr

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
    model = MoERegressor(
        **FAST, learning_rate=1e-3, lr_schedule="cosine", early_stopping=False, n_iter_no_change=100
    ).fit(*data)
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


# -- epochs of EPOCH_ROWS rows on large tables --------------------------------


def test_a_stream_covers_every_row_once_a_pass_across_epochs():
    generator = torch.Generator().manual_seed(0)
    stream = BatchStream(lambda: torch.randperm(10, generator=generator).split(4))  # 3 steps a pass
    epochs = [torch.cat(stream.take(2)) for _ in range(3)]  # 6 steps: two passes
    rows = torch.cat(epochs)
    assert [len(e) for e in epochs] == [8, 6, 6]  # 4+4, 2+4, 4+2
    assert sorted(rows[:10].tolist()) == list(range(10))
    assert sorted(rows[10:].tolist()) == list(range(10))


def test_an_epoch_of_a_whole_pass_is_a_plain_shuffled_pass():
    stream_gen, plain_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    stream = BatchStream(lambda: torch.randperm(50, generator=stream_gen).split(16))
    for _ in range(3):
        plain = torch.randperm(50, generator=plain_gen).split(16)
        assert all(torch.equal(a, b) for a, b in zip(stream.take(len(plain)), plain))


def test_epoch_budget_counts_passes():
    assert epoch_budget(200, 24, 24) == 200
    assert epoch_budget(6, 24, 4) == 36
    assert epoch_budget(3, 3907, 256) == 46  # 3 passes of 1M rows, epochs of 65,536


@pytest.fixture
def short_epochs(monkeypatch):
    """Epochs of 256 rows, as a table of more than EPOCH_ROWS rows has epochs
    shorter than a pass."""
    monkeypatch.setattr(training, "EPOCH_ROWS", 256)


def test_large_tables_check_every_epoch_rows_and_still_run_max_epochs_passes(data, short_epochs, monkeypatch):
    steps = []
    step = torch.optim.AdamW.step

    def count(self, *args, **kwargs):
        steps.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", count)
    model = MoERegressor(**FAST, early_stopping=False, n_iter_no_change=100).fit(*data)
    # 1,500 rows in batches of 64: 24 steps a pass, 4 (256 rows) an epoch: 36
    # shared epochs; 3 experts at 64 rows each a step: 8 steps a pass over
    # the cells, 1 an epoch: 48 specialisation epochs.
    phases = model.history_["phase"]
    assert phases.count("shared") == 36 and phases.count("specialise") == 48
    assert len(steps) == 6 * 24 + 6 * 8  # max_epochs passes in each phase


def test_short_epochs_are_deterministic_and_independent_of_jobs(data, short_epochs):
    params = dict(FAST, max_epochs=2)
    one = MoERegressor(**params).fit(*data)
    again = MoERegressor(**params).fit(*data)
    parallel = MoERegressor(**params, n_jobs=2).fit(*data)
    assert len(one.history_["phase"]) > 2 * params["max_epochs"]
    np.testing.assert_array_equal(one.predict(data[0]), again.predict(data[0]))
    np.testing.assert_array_equal(one.predict(data[0]), parallel.predict(data[0]))
    np.testing.assert_array_equal(one.best_epoch_, parallel.best_epoch_)


def test_early_stopping_keeps_the_best_short_epoch(data, short_epochs):
    model = MoERegressor(**dict(FAST, max_epochs=20), n_iter_no_change=3, early_stopping=True).fit(*data)
    shared = [v for v, p in zip(model.history_["validation_loss"], model.history_["phase"]) if p == "shared"]
    # Stopped on patience (3 epochs without a better validation loss) before
    # the 20 passes' 20 * 24 / 4 = 120 epochs.
    assert len(shared) < 120
    assert int(np.argmin(shared)) == len(shared) - 4


# -- validation_fraction="auto": 10% of the rows, at most 32,768 ------------------


def _validation_rows(capture_expert_jobs, model, X, y) -> int:
    """Validation rows the expert jobs of ``model.fit(X, y)`` received."""
    return int(sum(job.val.counts.sum() for job in capture_expert_jobs(model, X, y)))


def test_auto_validation_is_ten_percent_then_capped(data, monkeypatch, capture_expert_jobs):
    import skmoe._estimators as front

    X, y = data
    params = dict(FAST, max_epochs=2)
    auto = MoERegressor(**params)
    assert _validation_rows(capture_expert_jobs, auto, X, y) == 150
    share = MoERegressor(**params, validation_fraction=0.1).fit(X, y)
    np.testing.assert_array_equal(auto.predict(X), share.predict(X))  # the same split below the cap
    monkeypatch.setattr(front, "_AUTO_VALIDATION_MAX_ROWS", 100)
    assert _validation_rows(capture_expert_jobs, MoERegressor(**params), X, y) == 100
    # An explicit share is kept as it is.
    assert _validation_rows(capture_expert_jobs, MoERegressor(**params, validation_fraction=0.2), X, y) == 300
