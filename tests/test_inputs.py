"""Inputs beyond pandas and float arrays: polars, pyarrow, object and sparse
arrays, Arrow-backed columns, validation sets through a Pipeline."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.compose import make_column_transformer
from sklearn.ensemble import BaggingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmoe import MoEClassifier, MoERegressor, count_parameters
from skmoe.datasets import load_california_housing

FAST = dict(n_experts=2, expert_depth=1, expert_width=8, expert_members=2, max_epochs=3, random_state=0)


@pytest.fixture(scope="module")
def table():
    """A real table with a string column, missing values, a nullable integer
    and a boolean column (one with a missing value)."""
    X, y = load_california_housing()
    X, y = X.iloc[:400].copy(), y.iloc[:400].to_numpy()
    X["old"] = X["housing_median_age"] > 30
    X["rooms_int"] = pd.array(X["total_rooms"].round().astype("Int64"))
    X.loc[3, "rooms_int"] = pd.NA
    return X, y


@pytest.fixture(scope="module")
def fitted(table):
    X, y = table
    model = MoERegressor(**FAST).fit(X, y)
    return model, model.predict(X)


def test_polars_frames_fit_and_predict_as_pandas_does(table, fitted):
    pl = pytest.importorskip("polars")
    pytest.importorskip("pyarrow")
    X, y = table
    model, expected = fitted
    frame = pl.from_pandas(X)
    assert dict(frame.schema)["ocean_proximity"] == pl.String
    from_polars = MoERegressor(**FAST).fit(frame, y)
    np.testing.assert_array_equal(from_polars.schema_.is_categorical_, model.schema_.is_categorical_)
    np.testing.assert_array_equal(from_polars.feature_names_in_, model.feature_names_in_)
    np.testing.assert_array_equal(from_polars.predict(frame), expected)
    # Columns are matched by name, in any order, as for pandas.
    np.testing.assert_array_equal(from_polars.predict(frame.select(frame.columns[::-1])), expected)
    np.testing.assert_array_equal(model.predict(frame), expected)


def test_polars_categorical_and_boolean_columns_are_categories(table):
    pl = pytest.importorskip("polars")
    pytest.importorskip("pyarrow")
    X, y = table
    frame = pl.from_pandas(X).with_columns(pl.col("ocean_proximity").cast(pl.Categorical))
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise(pl.col("old")).alias("old"))
    model = MoEClassifier(**FAST).fit(frame, y > np.median(y))
    names = list(model.feature_names_in_)
    assert model.schema_.is_categorical_[names.index("ocean_proximity")]
    assert model.schema_.is_categorical_[names.index("old")]
    assert not model.schema_.is_categorical_[names.index("rooms_int")]
    assert model.predict_proba(frame).shape == (len(X), 2)


def test_pyarrow_tables_and_arrow_backed_frames(table, fitted):
    pa = pytest.importorskip("pyarrow")
    X, y = table
    model, expected = fitted
    arrow = pa.Table.from_pandas(X, preserve_index=False)
    np.testing.assert_array_equal(MoERegressor(**FAST).fit(arrow, y).predict(arrow), expected)
    backed = X.convert_dtypes(dtype_backend="pyarrow")
    assert isinstance(backed["ocean_proximity"].dtype, pd.ArrowDtype)
    from_backed = MoERegressor(**FAST).fit(backed, y)
    np.testing.assert_array_equal(from_backed.schema_.is_categorical_, model.schema_.is_categorical_)
    np.testing.assert_array_equal(from_backed.predict(backed), expected)


def test_object_arrays_type_their_string_columns(table, fitted):
    X, y = table
    model, expected = fitted
    values = X.astype(object).where(X.notna(), None).to_numpy()
    from_array = MoERegressor(**FAST).fit(values, y)
    np.testing.assert_array_equal(from_array.schema_.is_categorical_, model.schema_.is_categorical_)
    np.testing.assert_array_equal(from_array.predict(values), expected)


def test_object_array_mixing_numbers_and_strings_names_the_column(table):
    X, y = table
    values = X.select_dtypes("number").to_numpy().astype(object)
    values[7, 2] = "n/a"
    with pytest.raises(ValueError, match=r"Column 2 of the object array X mixes kinds of values \(.*'n/a'"):
        MoERegressor(**FAST).fit(values, y)


def test_readme_column_transformer_with_passthrough_strings(table):
    """remainder='passthrough' hands the other string columns over in an object array."""
    X, y = table
    # (scikit-learn itself refuses pandas.NA in a passthrough column.)
    X = X.drop(columns="rooms_int").assign(old=X["old"].map({True: "yes", False: "no"}))
    pre = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["ocean_proximity"]),
        remainder="passthrough",
    )
    pipe = make_pipeline(pre, MoEClassifier(**FAST)).fit(X, y > np.median(y))
    moe = pipe[-1]
    assert moe.schema_.is_categorical_.sum() == 1  # "old" as strings; the one-hot block numeric
    assert pipe.score(X, y > np.median(y)) > 0.5


def test_bagging_on_a_frame_with_a_string_column(table):
    X, y = table
    bag = BaggingRegressor(MoERegressor(**FAST), n_estimators=2, random_state=0).fit(X, y)
    assert np.isfinite(bag.predict(X)).all()


def test_sparse_input_equals_the_dense_array(table):
    X, y = table
    dense = X.select_dtypes("number").fillna(0).to_numpy(dtype=float)
    dense[:, 0] = np.where(np.arange(len(dense)) % 3 == 0, 0.0, dense[:, 0])
    expected = MoERegressor(**FAST).fit(dense, y).predict(dense)
    for matrix in (sp.csr_matrix(dense), sp.csc_matrix(dense), sp.coo_matrix(dense), sp.csr_array(dense)):
        model = MoERegressor(**FAST).fit(matrix, y)
        np.testing.assert_array_equal(model.predict(matrix), expected)


def test_sparse_one_hot_output_in_a_pipeline(table):
    X, y = table
    pre = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["ocean_proximity"]),
        (StandardScaler(with_mean=False), ["median_income", "housing_median_age"]),
        sparse_threshold=1.0,
    )
    assert sp.issparse(pre.fit_transform(X))
    pipe = make_pipeline(pre, MoERegressor(**FAST)).fit(X, y)
    assert np.isfinite(pipe.predict(X)).all()


def test_sparse_with_categorical_columns_is_refused(table):
    X, y = table
    dense = X.select_dtypes("number").fillna(0).to_numpy(dtype=float)
    with pytest.raises(ValueError, match="sparse matrix, but categorical_features"):
        MoERegressor(categorical_features=[0], **FAST).fit(sp.csr_matrix(dense), y)


def test_sparse_densifies_in_chunks(monkeypatch):
    from skmoe import _inputs

    calls = []
    real = _inputs.densify_rows

    def spy(X, out, chunk_rows=8192):
        calls.append(chunk_rows)
        return real(X, out, chunk_rows=7)

    monkeypatch.setattr("skmoe._table.densify_rows", spy)
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(50, 4)) * (rng.random((50, 4)) < 0.3)
    model = MoERegressor(**FAST).fit(sp.csr_matrix(dense), dense[:, 0])
    np.testing.assert_array_equal(model.predict(sp.csr_matrix(dense)), model.predict(dense))
    assert calls


def test_untransformed_X_val_through_a_pipeline_is_refused(table):
    X, y = table
    X = X.drop(columns="rooms_int")
    pre = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["ocean_proximity"]),
        remainder="passthrough",
    )
    pipe = make_pipeline(pre, MoERegressor(**FAST))
    with pytest.raises(ValueError, match="X_val is a DataFrame with column names, but X had none"):
        pipe.fit(X[:300], y[:300], moeregressor__X_val=X[300:], moeregressor__y_val=y[300:])
    pipe.set_output(transform="pandas")
    with pytest.raises(ValueError, match="X_val does not match X: .*pipe\\[:-1\\]"):
        pipe.fit(X[:300], y[:300], moeregressor__X_val=X[300:], moeregressor__y_val=y[300:])
    # Transformed as the message says, it is used.
    pre.fit(X[:300])
    pipe.fit(X[:300], y[:300], moeregressor__X_val=pipe[:-1].transform(X[300:]), moeregressor__y_val=y[300:])


def test_count_parameters_of_a_fitted_estimator(fitted):
    model, _ = fitted
    assert count_parameters(model) == (model.n_params_total_, model.n_params_active_)
    with pytest.raises(ValueError, match="needs a fitted estimator"):
        count_parameters(MoERegressor())
    with pytest.raises(TypeError, match="a positive int"):
        count_parameters(2.5)


def test_numeric_polars_enum_and_interchange_only_tables(table, fitted):
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    X, y = table
    numeric = X.select_dtypes("number").drop(columns="rooms_int")
    frame = pl.from_pandas(numeric)
    model = MoERegressor(**FAST).fit(frame, y)
    # Reordered numeric-only polars columns are matched by name.
    np.testing.assert_array_equal(model.predict(frame.select(frame.columns[::-1])), model.predict(frame))
    levels = sorted(X["ocean_proximity"].unique())
    enum = pl.from_pandas(X[["ocean_proximity", "median_income"]]).with_columns(
        pl.col("ocean_proximity").cast(pl.Enum(levels)))
    assert MoERegressor(**FAST).fit(enum, y).schema_.is_categorical_.tolist() == [True, False]

    class InterchangeOnly:  # a table that offers only the dataframe interchange protocol
        def __init__(self, table):
            self._table, self.columns = table, table.column_names

        def __dataframe__(self, nan_as_null=False, allow_copy=True):
            return self._table.__dataframe__(nan_as_null=nan_as_null, allow_copy=allow_copy)

    table_only = InterchangeOnly(pa.Table.from_pandas(X, preserve_index=False))
    model, expected = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pandas deprecates the protocol
        np.testing.assert_array_equal(model.predict(table_only), expected)
