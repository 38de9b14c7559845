"""What the estimators promise beyond scikit-learn's generic checks."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_classification, make_friedman1, make_regression

from skmoe import MoEClassifier, MoERegressor

FAST = dict(expert_width=32, max_epochs=40, random_state=0)


@pytest.fixture(scope="module")
def friedman():
    return make_friedman1(n_samples=600, n_features=6, noise=0.1, random_state=0)


@pytest.fixture(scope="module")
def fitted16(friedman):
    X, y = friedman
    return MoERegressor(n_experts=16, expert_width=16, max_epochs=20, random_state=0).fit(X, y)


def test_each_row_is_served_by_exactly_one_expert(friedman, fitted16):
    X, _ = friedman
    model = fitted16
    experts = model.apply(X)
    assert len(np.unique(experts)) > 1
    target = int(np.bincount(experts).argmax())
    rows, others = experts == target, experts != target
    before = model.predict(X)
    with torch.no_grad():
        for param in model.network_.bank.parameters():
            param[target].add_(torch.randn_like(param[target]))
    after = model.predict(X)
    # Rows of every other expert are untouched; the perturbed expert's rows move.
    np.testing.assert_array_equal(before[others], after[others])
    assert np.abs(before[rows] - after[rows]).min() > 0


def test_apply_matches_nearest_prototype(friedman, fitted16):
    X, _ = friedman
    model = fitted16
    Z = model.encoder_.transform(X).astype(np.float64)
    prototypes = model.network_.router.prototypes.numpy().astype(np.float64)
    nearest = ((Z[:, None, :] - prototypes[None]) ** 2).sum(-1).argmin(1)
    assert (model.apply(X) == nearest).mean() > 0.999


def test_history_attributes(friedman, fitted16):
    model = fitted16
    assert model.n_iter_ == len(model.loss_curve_) == len(model.validation_scores_)
    assert model.best_epoch_.shape == (16,)
    assert set(model.history_["phase"]) == {"shared", "specialise"}
    assert all(len(load) in (1, 16) for load in model.history_["expert_load"])
    np.testing.assert_allclose(model.history_["expert_load"][-1].sum(), 1.0)


def test_regression_target_is_returned_in_original_units(friedman):
    X, y = friedman
    base = MoERegressor(n_experts=2, **FAST).fit(X, y)
    shifted = MoERegressor(n_experts=2, **FAST).fit(X, 1e6 * y + 5e7)
    np.testing.assert_allclose(shifted.predict(X), 1e6 * base.predict(X) + 5e7, rtol=1e-4)
    assert shifted.predict(X).dtype == np.float64


def test_multi_output_regression():
    X, y = make_regression(n_samples=300, n_features=5, n_targets=3, random_state=0)
    y[:, 1] *= 1000.0
    model = MoERegressor(n_experts=2, **FAST).fit(X, y)
    assert model.predict(X).shape == (300, 3)
    assert model.score(X, y) > 0.8
    single = MoERegressor(n_experts=2, **FAST).fit(X, y[:, :1])
    assert single.predict(X).shape == (300, 1)


@pytest.mark.parametrize(
    "labels", [np.array(["no", "yes"]), np.array([False, True]), np.array([3, 7])]
)
def test_binary_labels_of_any_type(labels):
    X, y = make_classification(n_samples=300, n_features=5, random_state=0)
    y_labels = labels[y]
    model = MoEClassifier(n_experts=2, **FAST).fit(X, y_labels)
    np.testing.assert_array_equal(model.classes_, labels)
    assert set(np.unique(model.predict(X))) <= set(labels)
    assert model.predict(X).dtype == labels.dtype
    assert model.score(X, y_labels) > 0.8


def test_multiclass_probabilities():
    X, y = make_classification(
        n_samples=400, n_features=6, n_informative=4, n_classes=4, random_state=0
    )
    names = np.array(["a", "b", "c", "d"])[y]
    model = MoEClassifier(n_experts=3, **FAST).fit(X, names)
    proba = model.predict_proba(X)
    assert proba.shape == (400, 4) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.log(proba), model.predict_log_proba(X), atol=1e-10)
    np.testing.assert_array_equal(model.classes_[proba.argmax(1)], model.predict(X))


def test_class_weight_balanced_favours_the_minority_class():
    X, y = make_classification(
        n_samples=600, n_features=5, weights=[0.9, 0.1], flip_y=0.05, random_state=0
    )
    plain = MoEClassifier(n_experts=2, **FAST).fit(X, y)
    balanced = MoEClassifier(n_experts=2, class_weight="balanced", **FAST).fit(X, y)
    assert (balanced.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()
    by_dict = MoEClassifier(n_experts=2, class_weight={0: 1.0, 1: 9.0}, **FAST).fit(X, y)
    assert (by_dict.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()


def test_integer_sample_weight_equals_repetition(friedman):
    X, y = friedman
    w = np.random.RandomState(0).randint(0, 4, size=len(X))
    weighted = MoERegressor(n_experts=3, **FAST).fit(X, y, sample_weight=w)
    repeated = MoERegressor(n_experts=3, **FAST).fit(np.repeat(X, w, 0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-6)


def test_same_random_state_gives_identical_models(friedman):
    X, y = friedman
    a = MoERegressor(n_experts=4, router="learned", top_k=2, **FAST).fit(X, y)
    b = MoERegressor(n_experts=4, router="learned", top_k=2, **FAST).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = MoERegressor(n_experts=4, router="learned", top_k=2, **{**FAST, "random_state": 1})
    assert not np.array_equal(a.predict(X), c.fit(X, y).predict(X))


def test_fit_does_not_touch_the_global_torch_seed(friedman):
    X, y = friedman
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MoERegressor(n_experts=2, **FAST).fit(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_input_dtypes(dtype, friedman):
    X, y = friedman
    model = MoERegressor(n_experts=2, **FAST).fit((X * 10).astype(dtype), y)
    assert model.predict((X * 10).astype(dtype)).dtype == np.float64


def test_dataframe_feature_names(friedman):
    X, y = friedman
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = MoERegressor(n_experts=2, **FAST).fit(df, y)
    np.testing.assert_array_equal(model.feature_names_in_, df.columns)
    with pytest.warns(UserWarning, match="feature names"):
        from_numpy = model.predict(df.to_numpy())
    np.testing.assert_allclose(model.predict(df), from_numpy)


def test_learned_router_keeps_every_expert_busy(friedman):
    X, y = friedman
    for top_k in (1, 2):
        model = MoERegressor(n_experts=4, router="learned", top_k=top_k, **FAST).fit(X, y)
        experts = model.apply(X)
        assert experts.shape == ((len(X),) if top_k == 1 else (len(X), 2))
        load = np.bincount(experts.ravel(), minlength=4) / experts.size
        assert load.min() > 0.05, load
        assert model.score(X, y) > 0.8


def test_explicit_validation_set_drives_early_stopping(friedman):
    X, y = friedman
    y = y + np.random.RandomState(0).normal(scale=5.0, size=len(y))  # easy to overfit
    model = MoERegressor(n_experts=2, **{**FAST, "max_epochs": 200})
    model.fit(X[:500], y[:500], X_val=X[500:], y_val=y[500:])
    assert np.isfinite(model.validation_scores_).all()
    assert model.n_iter_ < 400
    # Training stopped n_iter_no_change epochs after the last improvement.
    assert model.n_iter_ - 1 - model.best_epoch_.max() >= model.n_iter_no_change
    unset = MoERegressor(n_experts=2, **FAST).fit(X[:500], y[:500])
    assert np.isnan(unset.validation_scores_).all()  # 500 rows: "auto" is off


def test_early_stopping_keeps_shared_weights_when_specialising_does_not_help():
    # A linear target: the shared MLP is already right everywhere.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(2000, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.5 * rng.normal(size=2000)
    model = MoERegressor(n_experts=8, **{**FAST, "max_epochs": 200}).fit(X, y)
    shared_best = max(
        i for i, phase in enumerate(model.history_["phase"]) if phase.endswith("shared")  # the refit's too
    )
    assert (model.best_epoch_ <= shared_best).any()
    assert model.score(X, y) > 0.95


def test_verbose_prints_one_line_per_epoch(friedman, capsys):
    X, y = friedman
    model = MoERegressor(n_experts=2, verbose=1, **FAST).fit(X, y)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert len(lines) == model.n_iter_
    assert "train loss" in lines[0] and "expert load" in lines[0]


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(n_experts=2, top_k=3), "top_k"),
        (dict(n_experts=1, router="learned", top_k=2), "top_k=2 must be <= n_experts=1"),
        (dict(n_experts=4, top_k=2), "router='voronoi'"),
        (dict(router="tree"), "router"),
        (dict(device="tpu"), "device"),
        (dict(device="gpu:0"), "device"),
    ],
)
def test_invalid_parameters_are_named(params, message, friedman):
    X, y = friedman
    with pytest.raises(ValueError, match=message):
        MoERegressor(**params).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error(friedman):
    X, y = friedman
    with pytest.raises(ValueError, match="CUDA is not available"):
        MoERegressor(device="cuda").fit(X, y)


def test_too_many_experts_for_the_data_is_a_clear_error():
    X, y = make_regression(n_samples=5, n_features=3, random_state=0)
    with pytest.raises(ValueError, match="n_experts=8 .*n_samples=5"):
        MoERegressor(n_experts=8).fit(X, y)


def test_single_class_is_a_clear_error():
    with pytest.raises(ValueError, match="one class"):
        MoEClassifier().fit(np.zeros((10, 2)), np.ones(10))


def test_validation_set_arguments_are_checked(friedman):
    X, y = friedman
    with pytest.raises(ValueError, match="together"):
        MoERegressor(**FAST).fit(X, y, X_val=X[:10])
    with pytest.raises(ValueError, match="early_stopping=False"):
        MoERegressor(early_stopping=False, **FAST).fit(X, y, X_val=X[:10], y_val=y[:10])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MoERegressor(**FAST).fit(X, y, X_val=X[:10], y_val=y[:9])


def test_verbose_2_shows_progress_bars(friedman, capsys):
    pytest.importorskip("tqdm")
    X, y = friedman
    MoERegressor(n_experts=2, verbose=2, **{**FAST, "max_epochs": 2}).fit(X, y)
    captured = capsys.readouterr()
    assert "epoch" in captured.out
    assert "shared" in captured.err  # tqdm writes its bars to stderr


def test_learned_top1_gate_weight_is_exactly_one(friedman):
    X, y = friedman
    model = MoERegressor(n_experts=3, router="learned", **FAST).fit(X, y)
    Z = torch.from_numpy(model.encoder_.transform(X[:50]))
    with torch.no_grad():
        model.network_.router.gate.weight.mul_(1e4)  # extreme logits: no underflow
        assert model.network_.router(Z)[1] is None  # inference: one expert, weight one
    experts, gates = model.network_.router(Z)  # training carries the gate's gradient
    assert torch.equal(gates, torch.ones_like(gates))
    assert np.isfinite(model.predict(X)).all()


class _FaultyRegressor(MoERegressor):
    """Its training fails after a set number of steps: the loss turns
    non-finite (``fault="nan"``) or the user presses Ctrl-C (``"interrupt"``)."""

    def __init__(self, *, fault="nan", steps_before_fault=40, **params):
        super().__init__(**params)
        self.fault = fault
        self.steps_before_fault = steps_before_fault

    def _loss(self, out, y):
        self._calls = getattr(self, "_calls", 0) + 1
        loss = super()._loss(out, y)
        if self._calls <= self.steps_before_fault:
            return loss
        if self.fault == "interrupt":
            raise KeyboardInterrupt
        return loss * float("nan")


@pytest.mark.parametrize("phase, steps", [("shared", 60), ("specialise", 1000)])
@pytest.mark.parametrize("router", ["voronoi", "learned"])
@pytest.mark.parametrize("early_stopping", [True, False])
def test_divergence_keeps_the_last_good_weights_and_warns(
    friedman, router, early_stopping, phase, steps
):
    from sklearn.exceptions import ConvergenceWarning

    X, y = friedman
    # The phases of one early-stopped fit (a refit's failures: test_refit.py).
    model = _FaultyRegressor(
        steps_before_fault=steps, n_experts=2, router=router, early_stopping=early_stopping,
        refit=False, **FAST,
    )
    with pytest.warns(ConvergenceWarning, match=f"non-finite in epoch .* \\({phase} phase\\)"):
        model.fit(X, y)
    assert np.isfinite(model.predict(X)).all()
    assert model.score(X, y) > 0.3
    assert (model.best_epoch_ < model.n_iter_).all()


def test_divergence_before_any_good_epoch_is_a_clear_error(friedman):
    X, y = friedman
    model = _FaultyRegressor(steps_before_fault=0, n_experts=2, **FAST)
    with pytest.raises(ValueError, match="diverged.*lower learning_rate"):
        model.fit(X, y)


@pytest.mark.parametrize("phase, steps", [("shared", 60), ("specialise", 1000)])
@pytest.mark.parametrize("router", ["voronoi", "learned"])
@pytest.mark.parametrize("early_stopping", [True, False])
def test_keyboard_interrupt_leaves_a_usable_model_and_says_so(
    friedman, router, early_stopping, phase, steps
):
    X, y = friedman
    model = _FaultyRegressor(  # one early-stopped fit, as above
        fault="interrupt", steps_before_fault=steps, n_experts=2, router=router,
        early_stopping=early_stopping, refit=False, **FAST,
    )
    with pytest.warns(UserWarning, match=f"interrupted .* in the {phase} phase"):
        model.fit(X, y)
    assert model.n_iter_ >= 1 and model.n_experts_ == 2
    assert np.isfinite(model.predict(X)).all()
    assert model.score(X, y) > 0.3
    model.steps_before_fault = 10**9  # the model can be trained again
    model._calls = 0
    assert model.fit(X, y).n_iter_ > 1


def test_keyboard_interrupt_before_any_epoch_propagates(friedman):
    X, y = friedman
    model = _FaultyRegressor(fault="interrupt", steps_before_fault=0, n_experts=2, **FAST)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    assert not hasattr(model, "network_")


@pytest.mark.parametrize("router, top_k", [("voronoi", 1), ("learned", 1), ("learned", 2)])
def test_parameter_counts_and_expert_usage(friedman, router, top_k):
    X, y = friedman
    model = MoERegressor(
        n_experts=4, router=router, top_k=top_k, expert_depth=2, expert_width=16, expert_members=1,
        numeric_bins=16, **{
            k: v for k, v in FAST.items() if k != "expert_width"
        }
    ).fit(X, y)
    d = model.encoder_.n_outputs  # 6 columns: robust, quantile and 16 bins each
    assert d == 6 * (2 + 16)
    per_expert = (d * 16 + 16) + (16 * 16 + 16) + (16 + 1) + 2 * 16  # layers + PReLU slopes (one MLP)
    router_params = 4 * d + (4 if router == "learned" else 0)
    assert model.n_params_total_ == 4 * per_expert + router_params
    assert model.n_params_active_ == top_k * per_expert + router_params
    assert model.expert_usage_.shape == (4,)
    np.testing.assert_allclose(model.expert_usage_.sum(), 1.0)
    if top_k == 1:
        # 600 rows: no validation split, so the training rows are X and the
        # usage is what apply() reports (up to float32 / float64 ties).
        usage = np.bincount(model.apply(X), minlength=4) / len(X)
        assert np.abs(usage - model.expert_usage_).max() < 0.01


def test_an_interrupt_during_an_expert_s_validation_leaves_a_usable_model(friedman, monkeypatch):
    """Ctrl-C between an epoch's training and its validation: the epochs so
    far are kept, each with both losses (the half-recorded epoch once made
    the history's arrays disagree and the fit crash)."""
    from skmoe._torch import specialise

    real, calls = specialise._Run._val_losses, []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 4:  # the start, two epochs, then Ctrl-C
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(specialise._Run, "_val_losses", interrupted)
    X, y = friedman
    with pytest.warns(UserWarning, match="interrupted .* in the specialise phase"):
        model = MoERegressor(n_experts=2, refit=False, **FAST).fit(X, y)
    assert model.history_["phase"].count("specialise") == 2
    assert np.isfinite(model.predict(X)).all()
