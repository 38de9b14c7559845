"""The experts of a job trained as one batched program equal the per-expert loop.

The batched program is the default on accelerators; these tests run it on
the CPU (``ExpertJob.batched=True``) against the loop on the same jobs,
captured from real fits.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_friedman1

from skmoe import MoEClassifier, MoERegressor
from skmoe._torch import training
from skmoe._torch.batched import StackedAdamW, padded_batches
from skmoe._torch.specialise import train_experts


def _assert_same_training(job):
    loop = train_experts(replace(job, batched=False))
    batched = train_experts(replace(job, batched=True))
    np.testing.assert_array_equal(loop.best_epoch, batched.best_epoch)
    assert loop.n_epochs == batched.n_epochs
    np.testing.assert_allclose(loop.val_loss, batched.val_loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(loop.train_loss_sum, batched.train_loss_sum, rtol=1e-4, atol=1e-5)
    # Adam divides a gradient by its own running size: a rounding difference
    # in a near-zero gradient can move that weight by a fraction of one step
    # (the learning rate, 1e-3), so weights agree to 1e-4, losses closer.
    for a, b in zip(loop.states, batched.states):
        for x, z in zip(a, b):
            np.testing.assert_allclose(x, z, rtol=1e-3, atol=1e-4)


# float32: the two programs agree to float32 rounding (bfloat16 products,
# autocast="auto" on CPUs that have them, would round each differently).
FAST = dict(expert_width=16, max_epochs=6, random_state=0, autocast=False)


@pytest.mark.parametrize(
    "params",
    [
        dict(n_experts=3),  # ensemble experts of PReLU MLPs, validation
        dict(n_experts=3, prelu=False, expert_members=1),  # plain ReLU MLPs
        dict(n_experts=3, expert_depth=0),  # linear ensemble members
        dict(n_experts=4, early_stopping=False, expert_depth=1),  # stopping on training loss
    ],
)
def test_batched_regression_experts_equal_the_loop(params, capture_expert_jobs):
    X, y = make_friedman1(n_samples=1200, random_state=0)
    (job,) = capture_expert_jobs(MoERegressor(**{**FAST, **params}), X, y)
    _assert_same_training(job)


def test_steps_without_rows_for_some_experts_leave_them_alone(capture_expert_jobs):
    """With more steps a pass than some cells have rows, those experts sit
    out steps: neither their weights nor their step counts may move."""
    X, y = make_friedman1(n_samples=1200, random_state=0)
    (job,) = capture_expert_jobs(MoERegressor(**FAST, n_experts=8), X, y)
    assert job.train.counts.min() < 150 < job.train.counts.max()
    _assert_same_training(replace(job, n_steps=150, epoch_steps=150, max_epochs=2))


def test_batched_classifier_experts_equal_the_loop(capture_expert_jobs):
    X, y = make_classification(n_samples=1200, n_classes=3, n_informative=5, random_state=0)
    (job,) = capture_expert_jobs(MoEClassifier(**FAST, n_experts=3), X, y)
    _assert_same_training(job)


def test_a_fit_with_batched_experts_predicts_as_the_loop(monkeypatch):
    X, y = make_friedman1(n_samples=1200, random_state=0)
    loop = MoERegressor(**FAST, n_experts=3).fit(X, y)
    real = training.train_experts
    monkeypatch.setattr(training, "train_experts", lambda job, on_epoch=None: real(replace(job, batched=True), on_epoch))
    batched = MoERegressor(**FAST, n_experts=3).fit(X, y)
    again = MoERegressor(**FAST, n_experts=3).fit(X, y)
    np.testing.assert_allclose(loop.predict(X), batched.predict(X), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(batched.predict(X), again.predict(X))  # deterministic


def test_stacked_adamw_is_torch_adamw_per_expert():
    """Experts stepped on different steps match their own torch AdamW."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 5, generator=gen)
    grads = torch.randn(6, 3, 4, 5, generator=gen)
    updates = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=torch.bool)
    stacked = start.clone().requires_grad_()
    opt = StackedAdamW([stacked], lr=1e-2, weight_decay=1e-2)
    own = [start[e].clone().requires_grad_() for e in range(3)]
    torch_opts = [torch.optim.AdamW([p], lr=1e-2, weight_decay=1e-2) for p in own]
    for g, update in zip(grads, updates):
        stacked.grad = g.clone()
        opt.step(update)
        for e in range(3):
            if update[e]:
                own[e].grad = g[e].clone()
                torch_opts[e].step()
    for e in range(3):
        torch.testing.assert_close(stacked.detach()[e], own[e].detach(), rtol=1e-6, atol=1e-7)


def test_padded_batches_mark_the_real_rows():
    rows, real = padded_batches([torch.tensor([5, 6, 7]), torch.tensor([9])])
    assert rows.tolist() == [[5, 6, 7], [9, 9, 9]]
    assert real.tolist() == [[True, True, True], [True, False, False]]
