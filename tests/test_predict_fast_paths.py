"""Prediction's fast paths give the numbers of the general ones, bit for bit."""

import pickle
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


def _frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=n),
            "count": rng.integers(0, 9, n),
            "flag": rng.random(n) < 0.3,
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "grade": pd.Categorical(rng.choice([1, 2, 3], n)),
            "city": pd.Series(rng.choice(["Oslo", "Lima", None], n), dtype="string"),
        }
    )
    y = frame["size"] + (frame["colour"] == "red") + rng.normal(scale=0.1, size=n)
    return frame, y


@pytest.fixture(scope="module")
def frame_model():
    frame, y = _frame()
    model = MoERegressor(max_epochs=1, expert_members=2, expert_width=8, numeric_bins=4, random_state=0)
    return model.fit(frame, y), frame


def _labels_path(schema, j, column):
    labels = [None if c < 0 else str(column.categories[c]) for c in column.codes]
    return schema._codes(j, np.asarray(labels, dtype=object))


def test_categorical_codes_match_the_labels_path(frame_model):
    model, _ = frame_model
    schema, j = model.schema_, 3
    # other order, an unseen category, a category never used, missing values
    column = pd.Categorical(["blue", None, "purple", "red", "green"], categories=["red", "purple", "green", "blue", "ochre"])
    assert np.array_equal(schema._codes(j, column), _labels_path(schema, j, column))
    grades = pd.Categorical([3, 1, None, 7], categories=[7, 3, 2, 1])
    assert np.array_equal(schema._codes(4, grades), _labels_path(schema, 4, grades))


def test_a_new_set_of_categories_is_looked_up_again(frame_model):
    model, _ = frame_model
    schema = model.schema_
    first = pd.Categorical.from_codes([0, 1], categories=["red", "blue"])
    second = pd.Categorical.from_codes([0, 1], categories=["blue", "red"])  # the same codes, other values
    a, b = schema._codes(3, first), schema._codes(3, second)
    assert np.array_equal(a, _labels_path(schema, 3, first))
    assert np.array_equal(b, _labels_path(schema, 3, second))
    assert not np.array_equal(a, b)


def test_frames_predict_the_same_without_pandas_column_iterator(frame_model, monkeypatch):
    model, frame = frame_model
    rows = pd.concat([frame.iloc[:30], frame.iloc[:2].assign(colour=pd.Categorical(["ochre", None]))])
    fast = model.predict(rows)
    monkeypatch.setattr(pd.DataFrame, "_iter_column_arrays", None, raising=False)
    assert np.array_equal(fast, model.predict(rows))
    one = [model.predict(rows.iloc[i : i + 1])[0] for i in range(len(rows))]
    assert np.array_equal(np.asarray(one), fast)


def test_a_frame_column_that_is_not_numbers_is_named(frame_model):
    model, frame = frame_model
    bad = frame.iloc[:3].astype({"size": object})
    bad.loc[bad.index[0], "size"] = "tall"
    with pytest.raises(ValueError, match="Column 'size' could not be converted to numbers"):
        model.predict(bad)


def test_a_pickled_schema_holds_no_lookup_cache(frame_model):
    model, frame = frame_model
    model.predict(frame.iloc[:5])
    assert "_category_maps" in model.schema_.__dict__
    copy = pickle_copy(model.schema_)
    assert not {"_category_maps", "_level_indexes"} & set(copy.__dict__)
    assert np.array_equal(copy.to_codes(frame.iloc[:5]), model.schema_.to_codes(frame.iloc[:5]), equal_nan=True)


def test_integer_categories_read_the_same_with_or_without_a_missing_value():
    # As values, pandas turns integer categories into floats once one is missing:
    # 3 read "3.0" in such a batch and "3" in another (unseen in one of them).
    rng = np.random.default_rng(2)
    grade = rng.choice([1, 2, 3, None], 500)
    frame = pd.DataFrame({"x": rng.normal(size=500), "grade": pd.Categorical(grade, categories=[1, 2, 3])})
    y = frame["x"] + 2.0 * (frame["grade"] == 3)
    model = MoERegressor(max_epochs=1, expert_members=2, expert_width=8, random_state=0).fit(frame, y)
    assert list(model.schema_.levels_[1]) == ["1", "2", "3"]
    alone = model.predict(frame.iloc[:1])
    batch = model.predict(pd.concat([frame.iloc[:1], frame[frame["grade"].isna()].iloc[:1]]))
    assert batch[0] == alone[0]


def test_levels_of_older_files_as_floats_still_match_integer_categories(frame_model):
    model, _ = frame_model
    schema = pickle_copy(model.schema_)
    schema.levels_[4] = np.asarray(["1.0", "2.0", "3.0"], dtype=object)  # as fitted before the fix
    codes = schema._codes(4, pd.Categorical([3, None, 1, 9], categories=[1, 3, 9]))
    assert codes.tolist() == [2.0, -1.0, 0.0, -2.0]


def pickle_copy(obj):
    return pickle.loads(pickle.dumps(obj))
