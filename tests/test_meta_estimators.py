"""skmoe inside scikit-learn's meta-estimators and inspection tools, on a small
real table with a string column and missing values."""

import numpy as np
import pytest
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import BaggingRegressor, StackingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, TunedThresholdClassifierCV, cross_validate
from sklearn.pipeline import make_pipeline

from skmoe import MoEClassifier, MoERegressor
from skmoe.datasets import load_california_housing

FAST = dict(n_experts=2, expert_depth=1, expert_width=16, expert_members=2, max_epochs=4, random_state=0)


@pytest.fixture(scope="module")
def table():
    X, y = load_california_housing()
    X, y = X.iloc[:600].reset_index(drop=True), y.iloc[:600].to_numpy()
    return X, y, (y > np.median(y)).astype(int)


def test_bagging_regressor(table):
    X, y, _ = table
    bag = BaggingRegressor(MoERegressor(**FAST), n_estimators=3, max_samples=0.8, random_state=0).fit(X, y)
    assert bag.score(X, y) > 0.3


def test_stacking_classifier(table):
    X, _, labels = table
    numeric = X.select_dtypes("number").fillna(0)
    stack = StackingClassifier(
        [("moe", MoEClassifier(**FAST)), ("moe2", MoEClassifier(**{**FAST, "n_experts": 3}))],
        final_estimator=LogisticRegression(), cv=3,
    ).fit(numeric, labels)
    assert stack.predict_proba(numeric).shape == (len(X), 2)
    assert stack.score(numeric, labels) > 0.6


def test_calibrated_and_tuned_threshold_classifiers(table):
    X, _, labels = table
    calibrated = CalibratedClassifierCV(MoEClassifier(**FAST), cv=3).fit(X, labels)
    proba = calibrated.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    tuned = TunedThresholdClassifierCV(MoEClassifier(**FAST), cv=3, scoring="balanced_accuracy").fit(X, labels)
    assert 0.0 < tuned.best_threshold_ < 1.0
    assert set(np.unique(tuned.predict(X))) <= {0, 1}


def test_frozen_estimator_is_not_refitted(table):
    X, _, labels = table
    model = MoEClassifier(**FAST).fit(X, labels)
    before = model.predict_proba(X)
    calibrated = CalibratedClassifierCV(FrozenEstimator(model)).fit(X[:300], labels[:300])
    np.testing.assert_array_equal(model.predict_proba(X), before)  # untouched
    assert calibrated.predict_proba(X).shape == (len(X), 2)


def test_permutation_importance_tells_signal_from_noise(table):
    X, y, _ = table
    X = X.assign(noise=np.random.default_rng(0).normal(size=len(X)))
    model = MoERegressor(**{**FAST, "max_epochs": 20}).fit(X[:450], y[:450])
    result = permutation_importance(model, X[450:], y[450:], n_repeats=5, random_state=0)
    importance = dict(zip(X.columns, result.importances_mean))
    assert result.importances.shape == (X.shape[1], 5)
    assert importance["median_income"] > 0.1 > abs(importance["noise"])


def test_partial_dependence_numeric_and_categorical(table):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.inspection import PartialDependenceDisplay

    X, y, _ = table
    model = MoERegressor(**FAST).fit(X, y)
    display = PartialDependenceDisplay.from_estimator(
        model, X, features=["median_income", "ocean_proximity"],
        categorical_features=["ocean_proximity"], grid_resolution=10,
    )
    numeric, categorical = display.pd_results
    assert len(numeric["grid_values"][0]) == 10
    assert set(categorical["grid_values"][0]) == set(X["ocean_proximity"].dropna().unique())
    assert np.isfinite(categorical["average"]).all()
    plt.close("all")


@pytest.fixture
def metadata_routing():
    sklearn.set_config(enable_metadata_routing=True)
    yield
    sklearn.set_config(enable_metadata_routing=False)


def test_sample_weight_routed_through_pipeline_search_and_cross_validate(table, metadata_routing):
    X, y, _ = table
    weights = np.where(X["ocean_proximity"] == "INLAND", 5.0, 1.0)
    direct = MoERegressor(**FAST).fit(X, y, sample_weight=weights).predict(X)
    unweighted = MoERegressor(**FAST).fit(X, y).predict(X)
    assert not np.allclose(direct, unweighted)

    moe = MoERegressor(**FAST).set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
    pipe = make_pipeline(moe)
    np.testing.assert_array_equal(pipe.fit(X, y, sample_weight=weights).predict(X), direct)

    search = GridSearchCV(pipe, {"moeregressor__n_experts": [2]}, cv=2, refit=True)
    search.fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(search.predict(X), direct)

    scores = cross_validate(pipe, X, y, cv=2, params={"sample_weight": weights}, return_estimator=True)
    first = scores["estimator"][0][-1]
    expected = MoERegressor(**FAST).fit(X.iloc[300:], y[300:], sample_weight=weights[300:])
    np.testing.assert_array_equal(first.predict(X), expected.predict(X))
