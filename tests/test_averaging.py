"""Weight averaging (``weight_averaging``): validation, early stopping and the
fitted model use a moving average of the weights."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.datasets import make_friedman1

from skmoe import MoERegressor
from skmoe._torch.averaging import WeightAverage, average_rate, warm_up_rate
from skmoe._torch.specialise import train_experts

# float32: the loop and the batched program agree to float32 rounding
# (bfloat16 products, autocast="auto" on CPUs that have them, round each
# differently).
FAST = dict(n_experts=3, expert_width=16, max_epochs=6, random_state=0, autocast=False)


def test_average_follows_each_step_and_swaps_in_for_evaluation():
    p = torch.nn.Parameter(torch.zeros(3))
    average = WeightAverage([p], rate=0.25)
    for value in (4.0, 8.0):
        with torch.no_grad():
            p.fill_(value)
        average.update()
    # 0 -> 1 (a quarter of the way to 4) -> 2.75 (a quarter of the way to 8)
    np.testing.assert_allclose(average.averages[0].numpy(), 2.75)
    with average.swapped():
        np.testing.assert_allclose(p.detach().numpy(), 2.75)
    np.testing.assert_allclose(p.detach().numpy(), 8.0)
    assert average_rate(0, 50) == 0.0 and average_rate(2, 50) == 0.01 and average_rate(1e-9, 50) == 1.0


def test_an_average_from_a_random_start_warms_up():
    """From a random start the rate is at least 9 / (10 + step): the start is
    forgotten within a few steps, then the set rate takes over."""
    p = torch.nn.Parameter(torch.zeros(1))
    average = WeightAverage([p], rate=0.01, warm_up=True)
    with torch.no_grad():
        p.fill_(1.0)
    average.update()  # rate 0.9
    np.testing.assert_allclose(average.averages[0].numpy(), 0.9, rtol=1e-6)
    for _ in range(2000):
        average.update()
    assert average.steps == 2001 and warm_up_rate(2000) < 0.01  # the set rate by now
    cold = WeightAverage([torch.nn.Parameter(torch.zeros(1))], rate=0.01)
    assert cold.steps is None


def test_a_full_rate_average_is_the_weights_themselves():
    """At rate 1 the average is the trained weights, exactly: the fit equals
    one without averaging, bit for bit (every phase reads the average)."""
    X, y = make_friedman1(n_samples=1200, random_state=0)
    plain = MoERegressor(**FAST, weight_averaging=0.0).fit(X, y)
    full = MoERegressor(**FAST, weight_averaging=1e-9).fit(X, y)
    np.testing.assert_array_equal(plain.predict(X), full.predict(X))
    np.testing.assert_array_equal(plain.best_epoch_, full.best_epoch_)


def test_an_average_that_never_moves_keeps_the_start(capture_expert_jobs):
    """With a time constant far beyond the fit, the kept weights are the
    ones training started from, although training moved the weights."""
    X, y = make_friedman1(n_samples=1200, random_state=0)
    (job,) = capture_expert_jobs(MoERegressor(**FAST, weight_averaging=0.0), X, y)
    for batched in (False, True):
        frozen = train_experts(replace(job, average_epochs=1e12, batched=batched, n_iter_no_change=50))
        moved = train_experts(replace(job, batched=batched, n_iter_no_change=50, val=None))
        for start, kept, trained in zip(job.states, frozen.states, moved.states):
            for a, b, c in zip(start, kept, trained):
                np.testing.assert_allclose(b, a, atol=1e-6)
            assert max(np.abs(c - a).max() for a, c in zip(start, trained)) > 1e-3


@pytest.mark.parametrize("val", [True, False])
def test_batched_experts_average_as_the_loop(capture_expert_jobs, val):
    X, y = make_friedman1(n_samples=1200, random_state=0)
    (job,) = capture_expert_jobs(MoERegressor(**{**FAST, "n_experts": 8}), X, y)
    # More steps than some cells have rows: experts sit out steps, and their
    # averages must not move then.
    job = replace(job, average_epochs=0.5, n_steps=150, epoch_steps=150, max_epochs=3,
                  val=job.val if val else None)
    loop = train_experts(replace(job, batched=False))
    batched = train_experts(replace(job, batched=True))
    np.testing.assert_array_equal(loop.best_epoch, batched.best_epoch)
    np.testing.assert_allclose(loop.val_loss, batched.val_loss, rtol=1e-4, atol=1e-6)
    for a, b in zip(loop.states, batched.states):
        for x, z in zip(a, b):
            np.testing.assert_allclose(x, z, rtol=1e-3, atol=1e-4)


def test_weight_averaging_fits_are_deterministic_and_validated():
    X, y = make_friedman1(n_samples=1200, random_state=0)
    a = MoERegressor(**FAST, weight_averaging=1.0).fit(X, y)
    b = MoERegressor(**FAST, weight_averaging=1.0).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert not np.array_equal(a.predict(X), MoERegressor(**FAST, weight_averaging=0.0).fit(X, y).predict(X))
    with pytest.raises(ValueError, match="weight_averaging"):
        MoERegressor(weight_averaging=-1.0).fit(X, y)
