"""Input checks of the estimators: ``X`` to numeric values and category codes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import _check_feature_names, _check_n_features, validate_data

from ._table import TableSchema


def validate_X(est, X, *, reset: bool) -> np.ndarray:
    """Check ``X`` and turn it into numeric values and category codes.

    DataFrames keep their column types (categorical columns are found by
    dtype); at predict time their columns are matched by name. Arrays go
    through scikit-learn's ``validate_data``, as objects when some of their
    columns are categorical.
    """
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
        # Arrays have categorical columns only when named by index or mask.
        if reset:
            spec = est.categorical_features
            as_objects = spec is not None and not isinstance(spec, str)
        else:
            as_objects = bool(est.schema_.is_categorical_.any())
        X = validate_data(
            est,
            X,
            reset=reset,
            dtype=None if as_objects else np.float64,
            ensure_all_finite=False if as_objects else "allow-nan",
        )
    if reset:
        names = getattr(est, "feature_names_in_", None)
        est.schema_ = TableSchema(est.categorical_features).fit(X, names)
    return est.schema_.to_codes(X)


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


def check_y_val(y_val, n: int) -> np.ndarray:
    y_val = np.asarray(y_val)
    if y_val.shape[0] != n:
        raise ValueError(
            f"X_val and y_val have inconsistent numbers of samples: {n} and "
            f"{y_val.shape[0]}."
        )
    return y_val
