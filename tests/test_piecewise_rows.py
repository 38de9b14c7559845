"""Prediction with the piecewise-linear view held as one bin and one fill per column."""

import numpy as np
import pytest
import torch

from skmoe import MoEClassifier, MoERegressor
from skmoe._torch import api as engine
from skmoe._torch.piecewise import PiecewiseLayout, PiecewiseRows, project
from skmoe._validation import validate_X


def _table(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[:, 3] = rng.integers(0, 3, n)  # few values: zero-width bins (steps)
    X[rng.random(n) < 0.05, 1] = np.nan
    y = X[:, 0] * np.nan_to_num(X[:, 1]) + X[:, 3] + 0.1 * rng.normal(size=n)
    return X, y


def _rows(model, X):
    codes = validate_X(model, X, reset=False)
    layout = PiecewiseLayout(*model.encoder_.piecewise_layout())
    arrays = model.encoder_.transform_piecewise(codes)
    return model.encoder_.transform(codes), PiecewiseRows(*(torch.from_numpy(a) for a in arrays), layout)


@pytest.fixture(scope="module")
def fitted():
    X, y = _table()
    model = MoERegressor(max_epochs=3, expert_members=2, expert_width=16, numeric_bins=8, random_state=0)
    return model.fit(X, y), X


def test_bins_and_fills_hold_the_dense_encoding_exactly(fitted):
    model, X = fitted
    X_new = np.vstack([X[:200], [[1e9, -1e9, 0.0, 2.0, np.nan]], [[-1e9, 1e9, 5.0, -1.0, 0.0]]])
    Z, rows = _rows(model, X_new)
    assert rows.dense.shape[1] < Z.shape[1]
    assert torch.equal(rows.densified(), torch.from_numpy(Z))


def test_row_operations_match_the_dense_rows(fitted):
    model, X = fitted
    Z, rows = _rows(model, X[:50])
    Z = torch.from_numpy(Z)
    index = torch.tensor([3, 1, 40])
    assert torch.equal(rows.index_select(0, index).densified(), Z[index])
    assert torch.equal(rows[5:9].densified(), Z[5:9])
    assert [len(p) for p in rows.split([20, 30])] == [20, 30]
    padded = rows.padded(64).densified()
    assert torch.equal(padded[:50], Z) and not padded[50:].any()
    W = torch.randn(Z.shape[1], 7, dtype=torch.float32)
    torch.testing.assert_close(project(rows, W), Z @ W, rtol=1e-5, atol=1e-5)


def _dense_predict(model, X):
    Z = model.encoder_.transform(validate_X(model, X, reset=False))
    return engine.predict_raw(model.network_, len(Z), lambda a, b: Z[a:b])


@pytest.mark.parametrize("params", [
    {},
    {"expert_members": 1},
    {"expert_depth": 0},
    {"router": "learned", "top_k": 2},
    {"voronoi_search": "tree", "n_experts": 6},
])
def test_predictions_equal_the_dense_path_within_rounding(params):
    X, y = _table()
    base = dict(max_epochs=3, expert_members=2, expert_width=16, numeric_bins=8, random_state=0)
    model = MoERegressor(**{**base, **params}).fit(X, y)
    raw = model._raw_predict(X)
    np.testing.assert_allclose(raw, _dense_predict(model, X), rtol=1e-5, atol=1e-5)
    # routing as the dense rows route them
    Z = model.encoder_.transform(validate_X(model, X, reset=False))
    experts, _ = engine.route_rows(model.network_, len(Z), lambda a, b: Z[a:b])
    assert (model.apply(X).reshape(len(X), -1) == experts).mean() > 0.999


def test_a_row_predicts_the_same_alone_and_in_a_batch(fitted):
    model, X = fitted
    batch = model.predict(X[:100])
    alone = np.array([model.predict(X[i : i + 1])[0] for i in range(0, 100, 7)])
    np.testing.assert_array_equal(alone, batch[::7])


def test_classifier_and_model_without_bins():
    X, y = _table()
    clf = MoEClassifier(max_epochs=2, expert_members=2, expert_width=16, numeric_bins=8, random_state=0)
    clf.fit(X, y > 0)
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1.0)
    plain = MoERegressor(max_epochs=2, numeric_bins=0, expert_width=16, random_state=0).fit(X, y)
    assert plain.encoder_.piecewise_layout() is None
    np.testing.assert_array_equal(plain._raw_predict(X), _dense_predict(plain, X))
