"""Foreign inputs to the forms the schema reads: pandas, NumPy, SciPy sparse.

Tables from other libraries (polars, pyarrow, DuckDB results, anything
exposing the Arrow C stream interface or the dataframe interchange
protocol) become pandas DataFrames through pandas' or pyarrow's own
converters, so that their string, dictionary, boolean and nullable columns
keep the types the schema reads categories from, and their columns are
matched by name as a DataFrame's are. Arrow-backed pandas columns
(``pd.ArrowDtype``) are typed the same way.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

# Kinds pandas' infer_dtype gives an object column, by what skmoe makes of it.
_LABEL_KINDS = frozenset({"string", "bytes", "boolean", "categorical"})
_NUMBER_KINDS = frozenset({"floating", "integer", "mixed-integer-float", "decimal", "empty"})


def as_table(X):
    """``X`` as a pandas DataFrame when it is a table of another library.

    Anything else (pandas, NumPy, SciPy sparse, lists) is returned as it is.
    """
    if isinstance(X, (pd.DataFrame, np.ndarray)) or not _is_foreign_table(X):
        return X
    if hasattr(X, "__arrow_c_stream__"):
        from_arrow = getattr(pd.DataFrame, "from_arrow", None)  # pandas >= 3
        if from_arrow is not None:
            return from_arrow(X)
        return import_pyarrow().table(X).to_pandas()
    return pd.api.interchange.from_dataframe(X)


def _is_foreign_table(X) -> bool:
    # A pyarrow Array or a polars Series also streams Arrow; a table has columns.
    return (hasattr(X, "__arrow_c_stream__") or hasattr(X, "__dataframe__")) and hasattr(X, "columns")


def import_pyarrow(why: str = "Reading an Arrow table with pandas older than 3.0 needs pyarrow"):
    """``pyarrow``, with ``pyarrow.parquet`` loaded, or an ImportError that
    starts with ``why`` and says how to install it (an optional extra)."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the CLI reads Parquet through it)
    except ImportError:
        raise ImportError(f'{why}: pip install "skmoe[parquet]" (or pip install pyarrow).') from None
    return pyarrow


def is_arrow_label_dtype(dtype) -> bool:
    """Whether a pandas Arrow-backed dtype holds strings, dictionary codes or booleans."""
    if not isinstance(dtype, pd.ArrowDtype):
        return False
    import pyarrow as pa  # present: pandas built the ArrowDtype with it

    t = dtype.pyarrow_dtype
    return bool(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)
        or pa.types.is_boolean(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
        or getattr(pa.types, "is_string_view", lambda _: False)(t)
    )


def object_columns_as_labels(X: np.ndarray, feature_names) -> np.ndarray:
    """Which columns of an object array hold labels (strings or booleans).

    Columns of numbers (or only missing values) are numeric. A column mixing
    strings with numbers is refused: silently guessing would turn the
    numbers into categories or fail on the strings later.
    """
    mask = np.zeros(X.shape[1], dtype=bool)
    for j in range(X.shape[1]):
        kind = pd.api.types.infer_dtype(X[:, j], skipna=True)
        if kind in _LABEL_KINDS:
            mask[j] = True
        elif kind not in _NUMBER_KINDS:
            name = feature_names[j] if feature_names is not None else j
            other = next((v for v in X[:, j] if not _is_scalar_value(v)), None)
            if other is not None:
                raise TypeError(
                    f"Column {name!r} of the object array X holds a {type(other).__name__} "
                    f"({other!r}): the argument must be a string or a number."
                )
            values = _examples(X[:, j])
            raise ValueError(
                f"Column {name!r} of the object array X mixes kinds of values "
                f"({kind}: {values}). Make it all strings (a category) or all "
                "numbers, or name the categorical columns in categorical_features."
            )
    return mask


def _is_scalar_value(value) -> bool:
    """A string, a number, a boolean or a missing marker: what a table cell may hold."""
    return isinstance(value, (str, bytes, bool, numbers.Number, np.generic)) or any(
        value is missing for missing in (None, pd.NA, pd.NaT))


def _examples(column: np.ndarray) -> str:
    """A few of a column's values of different types, for an error message."""
    seen: dict[type, object] = {}
    for value in column:
        if not pd.isna(value) and type(value) not in seen:
            seen[type(value)] = value
        if len(seen) == 3:
            break
    return ", ".join(repr(v) for v in seen.values())


def densify_rows(X, out: np.ndarray, chunk_rows: int = 8192) -> np.ndarray:
    """A SciPy sparse matrix written into the dense float64 ``out``, rows at a time.

    Peak memory is ``out`` plus one chunk, never a second dense copy.
    """
    X = X.tocsr()
    for start in range(0, X.shape[0], chunk_rows):
        stop = min(start + chunk_rows, X.shape[0])
        out[start:stop] = X[start:stop].toarray()
    return out
