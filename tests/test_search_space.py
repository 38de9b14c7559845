"""The documented search space for users who tune."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, ParameterSampler, RandomizedSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skmoe import MoEClassifier, MoERegressor, search_space


@pytest.mark.parametrize("Estimator", [MoERegressor, MoEClassifier])
def test_every_candidate_is_a_valid_setting(Estimator):
    grid = search_space("grid")
    assert len(ParameterGrid(grid)) == 16
    defaults = Estimator().get_params()
    for name, values in grid.items():
        assert defaults[name] in values, name  # the defaults are a grid point
    candidates = list(ParameterGrid(grid)) + list(
        ParameterSampler(search_space("random"), n_iter=50, random_state=0)
    )
    for params in candidates:
        clone(Estimator()).set_params(**params)._validate_params()


def test_grid_search_and_randomized_search_run_in_a_pipeline():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X[:, 0] + np.abs(X[:, 1])
    pipe = make_pipeline(FunctionTransformer(), MoERegressor(max_epochs=2, random_state=0))
    grid = search_space(prefix="moeregressor__")
    # Two of the grid's parameters keep the test short; the others are
    # checked for validity above.
    small = {k: v for k, v in grid.items() if k.endswith(("n_experts", "numeric_bins"))}
    search = GridSearchCV(pipe, small, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    random = RandomizedSearchCV(
        pipe, search_space("random", prefix="moeregressor__"), n_iter=2, cv=2, random_state=0
    ).fit(X, y)
    assert np.isfinite(random.best_score_)


def test_results_are_fresh_and_bad_arguments_are_named():
    first = search_space()
    first["n_experts"].append(99)
    assert search_space()["n_experts"] == [4, 8]
    with pytest.raises(ValueError, match="kind must be 'grid' or 'random', got 'bayes'"):
        search_space("bayes")
    with pytest.raises(TypeError, match="prefix must be a str"):
        search_space(prefix=1)
