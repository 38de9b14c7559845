"""Input checks of the estimators: ``X`` to numeric values and category codes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import _check_feature_names, _check_n_features, validate_data

from ._inputs import as_table
from ._table import TableSchema


def validate_X(est, X, *, reset: bool) -> np.ndarray:
    """Check ``X`` and turn it into numeric values and category codes.

    DataFrames keep their column types (categorical columns are found by
    dtype); at predict time their columns are matched by name. Tables of
    other libraries (polars, pyarrow) are read as DataFrames first. Arrays go
    through scikit-learn's ``validate_data``, as objects when some of their
    columns are categorical (named, or string columns of an object array);
    SciPy sparse matrices are accepted when all columns are numeric.
    """
    plain = None if reset else _plain_numbers(est, X)
    if plain is not None:
        return plain
    X = as_table(X)
    if isinstance(X, pd.DataFrame):
        duplicated = X.columns[X.columns.duplicated()].unique().tolist()
        if duplicated:
            raise ValueError(
                f"X has duplicated column names: {duplicated}. Rename or drop the "
                "duplicates; skmoe matches columns by name."
            )
        if not reset and hasattr(est, "feature_names_in_"):
            X = _align_columns(est, X)
        _check_feature_names(est, X, reset=reset)
        _check_n_features(est, X, reset=reset)
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(
                f"Found array with shape {X.shape}: at least 1 sample and 1 "
                "feature are required."
            )
    else:
        as_objects = _array_has_labels(est, X, reset)
        X = validate_data(
            est,
            X,
            reset=reset,
            # At fit, a sparse X with categorical columns reaches the schema, which says why it refuses it.
            accept_sparse=("csr", "csc") if reset or not as_objects else False,
            dtype=None if as_objects else np.float64,
            ensure_all_finite=False if as_objects else "allow-nan",
        )
    if reset:
        names = getattr(est, "feature_names_in_", None)
        est.schema_ = TableSchema(est.categorical_features).fit(X, names)
    return est.schema_.to_codes(X)


def _plain_numbers(est, X) -> np.ndarray | None:
    """At predict, the codes of a plain 2-D numeric array, or None.

    For a model fitted without feature names and categorical columns, such an
    array passes ``validate_data`` unchanged and its codes are its values as a
    float64 copy: this skips those checks (through narwhals' table detection,
    half of a one-row ``predict``) and the column-by-column copy. Anything
    else, or an array holding infinities, is None and goes through the full
    checks, which name the problem.
    """
    if (
        type(X) is not np.ndarray
        or X.ndim != 2
        or X.dtype.kind not in "biuf"
        or X.shape[0] == 0
        or X.shape[1] != getattr(est, "n_features_in_", -1)
        or hasattr(est, "feature_names_in_")
        or est.schema_.is_categorical_.any()
    ):
        return None
    codes = np.array(X, dtype=np.float64, order="C")
    return None if np.isinf(codes).any() else codes


def _array_has_labels(est, X, reset: bool) -> bool:
    """Whether an array's categorical columns must be read as objects: at fit,
    when columns are named categorical or an object array may hold strings;
    at predict, when the fitted schema has categorical columns."""
    if not reset:
        return bool(est.schema_.is_categorical_.any())
    spec = est.categorical_features
    if spec is None:
        return False
    if not isinstance(spec, str):
        return True
    return getattr(X, "dtype", None) == object


def _align_columns(est, X: pd.DataFrame) -> pd.DataFrame:
    """Reorder a DataFrame's columns by name as in fit; extra ones are ignored."""
    names = list(est.feature_names_in_)
    columns = [str(c) for c in X.columns]
    if columns == names:
        return X
    missing = [n for n in names if n not in set(columns)]
    if missing:
        raise ValueError(f"X is missing columns seen during fit: {missing}.")
    extra = [c for c in columns if c not in set(names)]
    if extra:
        warnings.warn(f"X has columns not seen during fit, ignored: {extra}.", UserWarning)
    X = X.set_axis(columns, axis=1)
    return X[names]


_PIPELINE_HINT = (
    "In a Pipeline, fit parameters such as X_val reach the last step as they "
    "were passed, not transformed by the steps before it: transform X_val "
    "with the fitted preprocessing (pipe[:-1].transform(X_val)) or leave it "
    "out and let validation_fraction hold out rows."
)


def validate_X_val(est, X_val) -> np.ndarray:
    """``validate_X`` for the explicit validation set, refusing one that is
    not shaped like the training ``X`` (most often an untransformed X_val
    passed through a Pipeline)."""
    X_val = as_table(X_val)
    if isinstance(X_val, pd.DataFrame) and not hasattr(est, "feature_names_in_"):
        raise ValueError(
            "X_val is a DataFrame with column names, but X had none. " + _PIPELINE_HINT
        )
    try:
        return validate_X(est, X_val, reset=False)
    except ValueError as exc:
        raise ValueError(f"X_val does not match X: {exc} {_PIPELINE_HINT}") from exc


def check_y_val(y_val, n: int) -> np.ndarray:
    y_val = np.asarray(y_val)
    if y_val.shape[0] != n:
        raise ValueError(
            f"X_val and y_val have inconsistent numbers of samples: {n} and "
            f"{y_val.shape[0]}."
        )
    return y_val
