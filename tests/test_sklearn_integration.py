"""skmoe inside scikit-learn's tooling: pipelines, searches, calibration, pickle."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import MoEClassifier, MoERegressor

FAST = dict(expert_width=32, max_epochs=30, random_state=0)


@pytest.fixture(scope="module")
def regression_data():
    return make_regression(n_samples=300, n_features=6, noise=5.0, random_state=0)


@pytest.fixture(scope="module")
def classification_data():
    return make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0
    )


def test_pipeline_and_cross_val_score(regression_data):
    X, y = regression_data
    pipe = make_pipeline(StandardScaler(), MoERegressor(n_experts=2, **FAST))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.mean() > 0.8


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search(classification_data, n_jobs):
    X, y = classification_data
    search = GridSearchCV(
        MoEClassifier(**FAST),
        {"n_experts": [1, 2], "expert_depth": [1, 2]},
        cv=2,
        n_jobs=n_jobs,
    )
    search.fit(X, y)
    assert set(search.best_params_) == {"n_experts", "expert_depth"}
    assert search.best_score_ > 0.6


def test_grid_search_results_do_not_depend_on_n_jobs(classification_data):
    X, y = classification_data
    grid = {"n_experts": [1, 2]}
    serial = GridSearchCV(MoEClassifier(**FAST), grid, cv=2, n_jobs=1).fit(X, y)
    parallel = GridSearchCV(MoEClassifier(**FAST), grid, cv=2, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(
        serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"]
    )


def test_clone_keeps_parameters_and_drops_fit():
    model = MoERegressor(n_experts=3, expert_width=17, prelu=False, router="learned", top_k=2)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "network_")


def test_calibrated_classifier(classification_data):
    X, y = classification_data
    calibrated = CalibratedClassifierCV(MoEClassifier(n_experts=2, **FAST), cv=2)
    calibrated.fit(X, y)
    proba = calibrated.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert calibrated.score(X, y) > 0.6


@pytest.mark.parametrize("Estimator", [MoERegressor, MoEClassifier])
@pytest.mark.parametrize("router", ["voronoi", "learned"])
def test_pickle_round_trip_predicts_identically(
    Estimator, router, regression_data, classification_data
):
    X, y = regression_data if Estimator is MoERegressor else classification_data
    model = Estimator(n_experts=3, router=router, **FAST).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(model.predict(X), restored.predict(X))
    if Estimator is MoEClassifier:
        np.testing.assert_array_equal(model.predict_proba(X), restored.predict_proba(X))


def test_pickled_state_holds_arrays_only_and_no_training_state(regression_data):
    X, y = regression_data
    model = MoERegressor(n_experts=2, **FAST).fit(X, y)
    state = model.__getstate__()
    network = state["network_"]["arrays"]
    assert network and all(isinstance(a, np.ndarray) for a in network.values())
    # No tensors, no optimizer, no training data anywhere in the state.
    for key, value in state.items():
        assert not isinstance(value, (torch.Tensor, torch.nn.Module, torch.optim.Optimizer)), key
    assert all(not isinstance(v, np.ndarray) or v.size < X.size for v in state.values())
