"""``refit=True``: the mixture fitted again on all rows, for the epochs early
stopping kept (:class:`skmoe._torch.training.EpochPlan`)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_friedman1

import skmoe
from skmoe import MoEClassifier, MoERegressor
from skmoe._torch import api, training
from skmoe._torch.specialise import train_experts
from skmoe._torch.training import EpochPlan, History

FAST = dict(n_experts=3, expert_width=16, expert_members=2, max_epochs=8, random_state=0, n_threads=1)


def _phase_counts(model) -> dict[str, int]:
    phases = model.history_["phase"]
    return {name: phases.count(name) for name in set(phases)}


def test_the_plan_counts_the_epochs_each_phase_kept():
    history = History(phase=["shared"] * 7 + ["specialise"] * 5, best_epoch_shared=3)
    # Expert 0 kept specialisation epoch 2 (absolute 8), expert 1 its start
    # (the shared weights of epoch 3), expert 2 the last epoch (11).
    history.best_epoch = np.array([8, 3, 11])
    plan = EpochPlan.kept_by(history)
    assert plan.shared == 4
    np.testing.assert_array_equal(plan.experts, [2, 0, 5])


@pytest.mark.parametrize("batched", [False, True])
def test_planned_expert_epochs_reproduce_the_early_stopped_experts(capture_expert_jobs, batched):
    """An expert job that runs each expert for the epochs it kept, with no
    validation rows, ends on the weights early stopping kept."""
    X, y = make_friedman1(n_samples=1500, random_state=0)
    (job,) = capture_expert_jobs(MoERegressor(**{**FAST, "max_epochs": 12}), X, y)
    # A short patience: the experts keep different epochs (one its start).
    job = replace(job, batched=batched, max_epochs=60, n_iter_no_change=3)
    stopped = train_experts(job)
    assert len(set(stopped.best_epoch)) > 1  # experts kept different epochs
    planned = train_experts(replace(job, val=None, epochs=np.maximum(stopped.best_epoch, 0)))
    np.testing.assert_array_equal(planned.best_epoch, np.where(stopped.best_epoch > 0, stopped.best_epoch, -1))
    for a, b in zip(stopped.states, planned.states):
        for x, z in zip(a, b):
            if batched:
                np.testing.assert_allclose(x, z, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(x, z)


def test_a_single_expert_refit_on_its_training_rows_is_the_early_stopped_fit():
    """On the same rows the refit repeats the first fit up to the kept epoch:
    the same initial weights, the same minibatches, the same averaged weights."""
    X, y = make_friedman1(n_samples=1200, noise=5.0, random_state=0)  # noisy: it overfits early
    Z = X.astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)[:, None]
    w = np.ones(len(Z))
    train, val = (Z[:1000], y[:1000], w[:1000]), (Z[1000:], y[1000:], w[1000:])
    arch = api.Architecture(n_experts=1, depth=2, width=16, members=2, prelu=True,
                            router="voronoi", top_k=1, voronoi_search="auto")
    config = api.TrainConfig(learning_rate=2e-3, weight_decay=1e-4, batch_size=64, max_epochs=40,
                             n_iter_no_change=3, early_stopping=True, verbose=0, average_epochs=2.0)
    first = api.fit_new(arch, 1, train, val, config, 7, api.squared_error)
    kept = first.history.best_epoch_shared
    assert 0 < kept < len(first.history.phase) - 1  # it stopped early
    again = api.refit(arch, first, 1, train, config, 7, api.squared_error)
    assert again.history.phase[len(first.history.phase):] == ["refit shared"] * (kept + 1)
    for a, b in zip(first.network.state_dict().values(), again.network.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_refit_fits_again_on_all_rows_for_the_kept_epochs():
    X, y = make_friedman1(n_samples=1500, random_state=0)
    once = MoERegressor(**FAST, refit=False).fit(X, y)
    model = MoERegressor(**FAST).fit(X, y)  # refit="auto": 10% held out
    counts = _phase_counts(model)
    assert counts["shared"] == once.history_["phase"].count("shared")
    # The shared phase is refitted up to its best validation epoch.
    val = np.array(model.history_["validation_loss"][: counts["shared"]])
    assert counts["refit shared"] == int(np.argmin(val)) + 1
    refit_epochs = [i for i, p in enumerate(model.history_["phase"]) if p.startswith("refit")]
    assert np.isnan(np.array(model.history_["validation_loss"])[refit_epochs]).all()
    assert model.n_iter_ == len(model.history_["phase"])
    assert (model.best_epoch_ >= refit_epochs[0]).all()
    # Another model (the validation rows joined the training), the same routing.
    assert not np.array_equal(model.predict(X), once.predict(X))
    np.testing.assert_array_equal(model.apply(X), once.apply(X))
    assert model.score(X, y) > 0.8
    again = MoERegressor(**FAST, refit=True).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), again.predict(X))


def test_auto_refits_only_where_rows_were_held_out_from_x():
    X, y = make_friedman1(n_samples=1500, random_state=0)

    def refitted(model, **fit_params) -> bool:
        return any(p.startswith("refit") for p in model.fit(X, y, **fit_params).history_["phase"])

    assert not refitted(MoERegressor(**FAST), X_val=X[:100], y_val=y[:100])
    assert not refitted(MoERegressor(**FAST, validation_fraction=0.04))  # too few rows to give back
    assert refitted(MoERegressor(**FAST, refit=True, validation_fraction=0.04))
    assert not refitted(MoERegressor(**FAST, early_stopping=False))
    grown = MoERegressor(**{**FAST, "n_experts": 2}, warm_start=True).fit(X, y)
    n_epochs = grown.n_iter_
    grown.set_params(n_experts=4).fit(X, y)  # a growing warm start: no refit, no error
    assert grown.network_.bank.n_experts == 4
    assert not any(p.startswith("refit") for p in grown.history_["phase"][n_epochs:])


def test_refit_classifier_with_a_learned_router_saves_and_loads(tmp_path):
    X, y = make_classification(n_samples=1500, n_features=8, random_state=0)
    model = MoEClassifier(**FAST, router="learned", top_k=2, refit=True).fit(X, y)
    assert "refit shared" in model.history_["phase"]
    model.save(tmp_path / "m")
    loaded = skmoe.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.history_["phase"] == model.history_["phase"]


def test_refit_without_held_out_rows():
    X, y = make_friedman1(n_samples=1500, random_state=0)
    with pytest.raises(ValueError, match="early_stopping=False"):
        MoERegressor(**FAST, refit=True, early_stopping=False).fit(X, y)
    with pytest.raises(ValueError, match="no X_val"):
        MoERegressor(**FAST, refit=True).fit(X, y, X_val=X[:100], y_val=y[:100])
    # Too few rows for early_stopping="auto" to hold any out: one fit.
    small = MoERegressor(**FAST, refit=True).fit(X[:300], y[:300])
    assert not any(p.startswith("refit") for p in small.history_["phase"])


def test_refit_cannot_grow_a_warm_started_model():
    X, y = make_friedman1(n_samples=1500, random_state=0)
    model = MoERegressor(**{**FAST, "n_experts": 2}, refit=True, warm_start=True).fit(X, y)
    model.set_params(n_experts=4)
    with pytest.raises(ValueError, match="refit=True applies to a new fit"):
        model.fit(X, y)
    model.set_params(refit=False).fit(X, y)
    assert model.network_.bank.n_experts == 4


def _interrupt_the_refit(monkeypatch) -> None:
    """Ctrl-C at the refit's first epoch; the early-stopped fit runs as usual."""
    real = training.Trainer._global_epoch

    def interrupt_the_refit(self, *args, **kwargs):
        if self.phase_prefix:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "_global_epoch", interrupt_the_refit)


def test_an_interrupted_refit_keeps_the_early_stopped_fit(monkeypatch):
    X, y = make_friedman1(n_samples=1500, random_state=0)
    once = MoERegressor(**FAST, refit=False).fit(X, y)
    _interrupt_the_refit(monkeypatch)
    with pytest.warns(UserWarning, match="refit on all rows was interrupted"):
        model = MoERegressor(**FAST, refit=True).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), once.predict(X))
    assert model.history_["phase"] == once.history_["phase"]


def test_a_refit_that_diverges_keeps_the_early_stopped_fit(monkeypatch):
    from sklearn.exceptions import ConvergenceWarning

    X, y = make_friedman1(n_samples=1500, random_state=0)
    once = MoERegressor(**FAST, refit=False).fit(X, y)
    real = training.Trainer._global_epoch

    def diverge_in_the_refit(self, *args, **kwargs):
        loss = real(self, *args, **kwargs)
        return float("nan") if self.phase_prefix and len(self.history.phase) == 2 else loss

    monkeypatch.setattr(training.Trainer, "_global_epoch", diverge_in_the_refit)
    with pytest.warns(ConvergenceWarning, match="refit on all rows diverged .*non-finite in epoch"):
        model = MoERegressor(**FAST).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), once.predict(X))
    assert model.history_["phase"] == once.history_["phase"]


def _first_fit_losses(model) -> list[float]:
    phases = model.history_["phase"]
    first = [i for i, p in enumerate(phases) if not p.startswith("refit")]
    return [model.history_["validation_loss"][i] for i in first]


def test_the_fit_a_refit_follows_is_a_probe_of_fewer_members():
    """With a refit to follow, early stopping runs ``probe_members`` members
    per expert: the same fit as ``expert_members=probe_members,
    refit=False``; the refit runs them all."""
    X, y = make_friedman1(n_samples=1500, random_state=0)
    wide = {**FAST, "expert_members": 4}
    model = MoERegressor(**wide).fit(X, y)
    probe = MoERegressor(**FAST, refit=False).fit(X, y)  # FAST: 2 members, the default probe
    assert _first_fit_losses(model) == probe.history_["validation_loss"]
    assert api.architecture(model.network_)["expert_members"] == 4
    full = MoERegressor(**wide, probe_members=None).fit(X, y)
    alone = MoERegressor(**wide, refit=False).fit(X, y)
    assert _first_fit_losses(full) == alone.history_["validation_loss"]
    assert not np.array_equal(full.predict(X), model.predict(X))
    # No refit, no probe: the fit runs all members.
    assert api.architecture(alone.network_)["expert_members"] == 4
    # A probe wider than the experts runs as many members as they have.
    narrow = MoERegressor(**{**FAST, "expert_members": 1}, probe_members=3).fit(X, y)
    assert _first_fit_losses(narrow) == MoERegressor(
        **{**FAST, "expert_members": 1}, refit=False).fit(X, y).history_["validation_loss"]


def test_checkpoints_of_a_refitted_fit_are_models_of_all_members(tmp_path):
    """A checkpoint must be a model a warm start can resume, so with
    ``checkpoint_dir`` the early-stopped fit runs all members."""
    X, y = make_friedman1(n_samples=1500, random_state=0)
    wide = {**FAST, "expert_members": 4}
    model = MoERegressor(**wide, checkpoint_dir=tmp_path / "ckpt").fit(X, y)
    alone = MoERegressor(**wide, refit=False).fit(X, y)
    assert _first_fit_losses(model) == alone.history_["validation_loss"]
    resumed = MoERegressor(**wide, refit=False, warm_start=True, checkpoint_dir=tmp_path / "ckpt")
    resumed.fit(X, y)  # the final model's architecture: it resumes without error
    assert api.architecture(resumed.network_)["expert_members"] == 4


def test_a_failed_refit_keeps_the_probe_and_says_so(monkeypatch, tmp_path):
    X, y = make_friedman1(n_samples=1500, random_state=0)
    probe = MoERegressor(**FAST, refit=False).fit(X, y)
    _interrupt_the_refit(monkeypatch)
    with pytest.warns(UserWarning, match=r"\(2 members per expert\), as with refit=False and expert_members=2"):
        model = MoERegressor(**{**FAST, "expert_members": 4}).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), probe.predict(X))
    assert api.architecture(model.network_)["expert_members"] == 2
    model.save(tmp_path / "m")  # a model like any other
    np.testing.assert_array_equal(skmoe.load(tmp_path / "m").predict(X), probe.predict(X))


def test_the_refit_trains_on_the_fit_s_encoded_rows_without_a_copy(monkeypatch):
    """The encoded training and validation rows are one array: the fit sees
    two views of it and the refit all of it, so the refit holds no second
    copy of the encoded table."""
    seen = {}
    real_fit, real_refit = api.fit_new, api.refit

    def fit_new(arch, n_outputs, train, val, *args, **kwargs):
        seen["train"], seen["val"] = train[0], val[0]
        return real_fit(arch, n_outputs, train, val, *args, **kwargs)

    def refit(arch, first, n_outputs, rows, *args, **kwargs):
        seen["rows"] = rows[0]
        return real_refit(arch, first, n_outputs, rows, *args, **kwargs)

    monkeypatch.setattr(api, "fit_new", fit_new)
    monkeypatch.setattr(api, "refit", refit)
    X, y = make_friedman1(n_samples=1500, random_state=0)
    MoERegressor(**FAST).fit(X, y)
    rows, train, val = seen["rows"], seen["train"], seen["val"]
    assert len(rows) == len(train) + len(val) == 1500
    assert np.shares_memory(rows, train) and np.shares_memory(rows, val)
    np.testing.assert_array_equal(rows, np.concatenate([train, val]))
