"""Prediction's fast paths give the numbers of the general ones, bit for bit."""

import warnings

import numpy as np
import pandas as pd
import pytest

import skmoe._validation as validation
from skmoe import MoEClassifier, MoERegressor
from skmoe._torch import experts


def _table(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[rng.random(n) < 0.05, 2] = np.nan
    y = X[:, 0] - 2 * np.nan_to_num(X[:, 2]) + 0.1 * rng.normal(size=n)
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = _table()
    model = MoERegressor(max_epochs=2, expert_members=2, expert_width=16, numeric_bins=8, random_state=0)
    return model.fit(X, y), X


def _general_path(monkeypatch):
    monkeypatch.setattr(validation, "_plain_numbers", lambda est, X: None)


@pytest.mark.parametrize("cast", [np.float64, np.float32, np.asfortranarray])
def test_a_numeric_array_predicts_as_through_the_full_checks(fitted, monkeypatch, cast):
    model, X = fitted
    X_new = cast(X[:300])
    fast = model.predict(X_new)
    _general_path(monkeypatch)
    assert np.array_equal(fast, model.predict(X_new))


def test_integer_and_boolean_arrays_take_the_fast_path_with_the_same_numbers(fitted, monkeypatch):
    model, _ = fitted
    X_int = np.arange(40).reshape(10, 4) - 20
    X_bool = X_int % 3 == 0
    assert validation._plain_numbers(model, X_int) is not None
    fast = [model.predict(X_int), model.predict(X_bool)]
    _general_path(monkeypatch)
    assert all(np.array_equal(a, model.predict(b)) for a, b in zip(fast, [X_int, X_bool]))


def test_the_fast_path_copies_and_leaves_the_array_alone(fitted):
    model, X = fitted
    X_new = X[:50].copy()
    codes = validation._plain_numbers(model, X_new)
    assert codes is not None and not np.shares_memory(codes, X_new)
    model.predict(X_new)
    assert np.array_equal(X_new, X[:50], equal_nan=True)


def test_what_the_fast_path_does_not_take_gets_the_full_checks(fitted):
    model, X = fitted
    with pytest.raises(ValueError, match="infinity"):
        model.predict(np.where(np.arange(4) == 1, np.inf, X[:5]))
    with pytest.raises(ValueError, match="expecting 4 features"):
        model.predict(X[:5, :3])
    with pytest.raises(ValueError, match="minimum of 1 is required"):
        model.predict(X[:0])
    for other in (X[:5].tolist(), X[:5].astype(complex), X[0]):
        assert validation._plain_numbers(model, other) is None


def test_a_model_fitted_on_names_still_warns_about_an_array():
    X, y = _table(400)
    frame = pd.DataFrame(X, columns=list("abcd"))
    model = MoERegressor(max_epochs=1, expert_members=2, expert_width=8, random_state=0).fit(frame, y)
    assert validation._plain_numbers(model, X) is None
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        model.predict(X[:5])


def test_a_model_with_categorical_columns_reads_arrays_through_the_schema():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 3, 300)]).astype(object)
    y = rng.integers(0, 2, 300)
    model = MoEClassifier(max_epochs=1, expert_members=2, expert_width=8, categorical_features=[1], random_state=0)
    model.fit(X, y)
    assert validation._plain_numbers(model, np.asarray(X, dtype=float)) is None


def test_inference_blocks_change_no_prediction(fitted, monkeypatch):
    model, X = fitted
    X_new = np.vstack([X] * 3)
    reference = model.predict(X_new)
    assert experts._block_rows(model.network_.bank.device, 16 * 2) % 16 == 0
    monkeypatch.setattr(experts, "_INFERENCE_BLOCK_BYTES", 4 * 32 * 48)  # 48-row blocks
    assert experts._block_rows(model.network_.bank.device, 32) == 48
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(model.predict(X_new), reference)
