"""Raw tables to a numeric matrix: column types, category codes, column order.

A :class:`TableSchema` is fitted on the training table. It decides which
columns are categorical and maps each of their values to an integer code, so
that everything downstream (duplicate handling, splitting, encoding) works on
one float64 matrix:

* numeric columns hold their values, with NaN where missing;
* categorical columns hold the index of the value in ``levels_[j]``,
  ``MISSING`` where the value is missing and ``UNSEEN`` for a value not seen
  during fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._arrays import ArrayReader
from ._inputs import densify_rows, is_arrow_label_dtype, object_columns_as_labels
from .exceptions import ModelFileError

MISSING = -1.0
UNSEEN = -2.0

# A string column with more distinct values than this share of its rows (and
# at least _FREE_TEXT_MIN_LEVELS of them) is free text or an identifier.
_FREE_TEXT_SHARE = 0.5
_FREE_TEXT_MIN_LEVELS = 1_000


def _is_categorical_dtype(dtype) -> bool:
    return (
        isinstance(dtype, (pd.CategoricalDtype, pd.StringDtype, pd.BooleanDtype))
        or dtype == object
        or dtype == bool
        or is_arrow_label_dtype(dtype)
    )


def _check_column_type(name, dtype) -> None:
    kind = getattr(dtype, "kind", None)
    if kind in ("M", "m") or isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype)):
        what = "timedelta" if kind == "m" else "datetime"
        raise TypeError(
            f"Column {name!r} has {what} dtype {dtype}, which skmoe does not encode "
            "implicitly. Convert it to numbers first, for example "
            f"df[{name!r}].dt.year and df[{name!r}].dt.dayofweek for dates, or "
            f"df[{name!r}].dt.total_seconds() for durations, then drop the column."
        )


class TableSchema:
    """Column types and category levels of a training table.

    Parameters
    ----------
    categorical_features : "from_dtype", array-like of str, int or bool, or None
        As the estimators' parameter of the same name.
    """

    def __init__(self, categorical_features) -> None:
        self.categorical_features = categorical_features

    def fit(self, X, feature_names: np.ndarray | None) -> "TableSchema":
        n_features = X.shape[1]
        self.is_categorical_ = self._categorical_mask(X, feature_names, n_features)
        self.levels_: dict[int, np.ndarray] = {}
        if sp.issparse(X) and self.is_categorical_.any():
            raise ValueError(
                "X is a sparse matrix, but categorical_features marks some of its "
                "columns as categorical; pass categories in a DataFrame or a dense "
                "array, or one-hot encode them yourself."
            )
        columns = [] if sp.issparse(X) else _columns(X)
        for j in np.flatnonzero(self.is_categorical_):
            values, missing = _as_labels(columns[j])
            levels = _sorted_levels(values[~missing])
            n_rows = len(values)
            if len(levels) >= _FREE_TEXT_MIN_LEVELS and len(levels) > _FREE_TEXT_SHARE * n_rows:
                name = feature_names[j] if feature_names is not None else j
                raise ValueError(
                    f"Column {name!r} has {len(levels)} distinct values in {n_rows} "
                    "rows: it looks like free text or an identifier, not a category. "
                    "Drop it, or derive features from it (length, keywords) first."
                )
            self.levels_[j] = levels
        return self

    def _categorical_mask(self, X, feature_names, n_features) -> np.ndarray:
        spec = self.categorical_features
        if spec is None:
            return np.zeros(n_features, dtype=bool)
        if isinstance(spec, str):  # "from_dtype"
            if isinstance(X, pd.DataFrame):
                return np.array([_is_categorical_dtype(d) for d in X.dtypes], dtype=bool)
            if isinstance(X, np.ndarray) and X.dtype == object:
                return object_columns_as_labels(X, feature_names)
            return np.zeros(n_features, dtype=bool)
        spec = np.asarray(spec)
        if spec.dtype == bool:
            if spec.shape != (n_features,):
                raise ValueError(
                    f"categorical_features as a boolean mask must have shape "
                    f"({n_features},), got {spec.shape}."
                )
            return spec.copy()
        mask = np.zeros(n_features, dtype=bool)
        for item in spec.tolist():
            if isinstance(item, str):
                if feature_names is None:
                    raise ValueError(
                        f"categorical_features names the column {item!r}, but X has "
                        "no column names; pass indices instead."
                    )
                hits = np.flatnonzero(feature_names == item)
                if len(hits) == 0:
                    raise ValueError(f"categorical_features names {item!r}, which is not a column of X.")
                mask[hits] = True
            elif isinstance(item, (int, np.integer)):
                if not -n_features <= item < n_features:
                    raise ValueError(
                        f"categorical_features index {item} is out of range for "
                        f"{n_features} columns."
                    )
                mask[item] = True
            else:
                raise ValueError(
                    "categorical_features must hold column names, indices or a "
                    f"boolean mask, got {item!r}."
                )
        return mask

    def _level_index(self, j: int) -> pd.Index:
        """A hash index of column ``j``'s levels (positions are the codes), built once."""
        cache = self.__dict__.setdefault("_level_indexes", {})
        levels = self.levels_[j]
        if j not in cache or cache[j][0] is not levels:
            cache[j] = (levels, pd.Index(levels, dtype=object))
        return cache[j][1]

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The fitted schema as a JSON-ready spec and named arrays (its levels)."""
        spec = {
            "is_categorical": [bool(b) for b in self.is_categorical_],
            "levels": sorted(int(j) for j in self.levels_),
        }
        arrays = {}
        for j, levels in self.levels_.items():
            arrays[f"levels/{j}/utf8"], arrays[f"levels/{j}/ends"] = _pack_labels(levels)
        return spec, arrays

    @classmethod
    def from_arrays(
        cls, spec: dict, arrays: ArrayReader, categorical_features, n_features: int
    ) -> "TableSchema":
        """The schema of :meth:`to_arrays`, checked against ``n_features`` columns."""
        try:
            is_categorical = np.asarray(spec["is_categorical"], dtype=bool)
            level_columns = [int(j) for j in spec["levels"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"The model header is incomplete or malformed: {exc!r}.") from None
        if is_categorical.shape != (n_features,) or sorted(level_columns) != list(np.flatnonzero(is_categorical)):
            raise ModelFileError("The schema does not match the number of features or the categorical columns.")
        schema = cls(categorical_features)
        schema.is_categorical_ = is_categorical
        schema.levels_ = {j: _read_levels(arrays, j) for j in level_columns}
        return schema

    def to_codes(self, X) -> np.ndarray:
        """The float64 matrix of numeric values and category codes."""
        if sp.issparse(X):
            out, names = self._sparse_to_codes(X), range(X.shape[1])
        else:
            frame = isinstance(X, pd.DataFrame)
            names = list(X.columns) if frame else list(range(X.shape[1]))
            out = np.empty((X.shape[0], len(names)), dtype=np.float64)
            for j, column in enumerate(_columns(X)):
                if self.is_categorical_[j]:
                    out[:, j] = self._codes(j, column)
                else:
                    out[:, j] = _as_numbers(names[j], column, frame)
        infinite = np.isinf(out).any(axis=0)
        if infinite.any():
            bad = np.flatnonzero(infinite)[0]
            raise ValueError(
                f"Input X contains infinity or a value too large for float64 in "
                f"column {names[bad]!r}."
            )
        return out

    def _codes(self, j: int, column) -> np.ndarray:
        """Codes of categorical column ``j``'s values (``UNSEEN``, ``MISSING``)."""
        if isinstance(column, pd.Categorical):
            return self._categorical_codes(j, column)
        values, missing = _as_labels(column)
        # As an object Index: pandas would otherwise build an Arrow string array (slow for few rows).
        pos = self._level_index(j).get_indexer(pd.Index(values, dtype=object))
        codes = np.where(pos >= 0, pos, UNSEEN).astype(np.float64)
        codes[missing] = MISSING
        return codes

    def _categorical_codes(self, j: int, column: pd.Categorical) -> np.ndarray:
        """:meth:`_codes` of a pandas Categorical through its integer codes: its
        categories are looked up once (cached while the next column has the
        same ones), not every value as a string (most of a one-row predict)."""
        categories = column.categories
        cache = self.__dict__.setdefault("_category_maps", {})
        seen, mapping = cache.get(j, (None, None))
        if seen is None or not (seen is categories or (seen.dtype == categories.dtype and seen.equals(categories))):
            index = self._level_index(j)
            pos = index.get_indexer(pd.Index(_category_labels(categories), dtype=object))
            if categories.dtype.kind in "iu" and (pos < 0).any():
                # Models fitted before 2026-12-02 on integer categories with missing
                # values hold their levels as floats' strings ("3.0" for 3).
                older = index.get_indexer(pd.Index([str(float(c)) for c in categories], dtype=object))
                pos = np.where(pos >= 0, pos, older)
            # code -1 (missing) reads the last slot
            mapping = np.append(np.where(pos >= 0, pos, UNSEEN), MISSING).astype(np.float64)
            cache[j] = (categories, mapping)
        return mapping[column.codes]

    def __getstate__(self) -> dict:
        # The lookup caches are rebuilt on use; a pickle holds the fitted state only.
        return {k: v for k, v in self.__dict__.items() if k not in ("_level_indexes", "_category_maps")}

    def _sparse_to_codes(self, X) -> np.ndarray:
        # The network reads dense rows: one dense copy, filled a chunk at a time
        # (a schema with categorical columns never sees a sparse X: see fit).
        return densify_rows(X, np.empty(X.shape, dtype=np.float64))


def sorted_lookup(sorted_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each of ``values`` in ``sorted_values``, and whether it is there."""
    if len(sorted_values) == 0:
        return np.zeros(len(values), dtype=np.intp), np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return pos, sorted_values[pos] == values


def _columns(X) -> list:
    if isinstance(X, pd.DataFrame):
        for name, dtype in X.dtypes.items():
            _check_column_type(name, dtype)
        return _frame_arrays(X)
    return [X[:, j] for j in range(X.shape[1])]


def _frame_arrays(X: pd.DataFrame) -> list:
    """The columns of ``X`` as arrays (NumPy or pandas extension arrays).

    pandas' own column iterator hands over the stored arrays without building
    a Series per column: on a one-row frame of 73 columns 37 us against
    1.1 ms, which dominated one-row predictions. Where a pandas version lacks
    it, each column's ``.array``.
    """
    iterate = getattr(X, "_iter_column_arrays", None)
    if iterate is not None:
        return list(iterate())
    return [X.iloc[:, j].array for j in range(X.shape[1])]


def _as_labels(column) -> tuple[np.ndarray, np.ndarray]:
    """Values of a categorical column as Python strings (an object array, so
    that memory follows the strings' own sizes, not rows times the longest),
    and the mask of missing ones ("" in their place).

    A pandas Categorical's labels are its categories' strings: as values, a
    column of integer categories with a missing value reads as floats, and 3
    would be "3.0" in that batch and "3" in another."""
    if isinstance(column, pd.Categorical):
        codes = np.asarray(column.codes)
        labels = np.asarray([*_category_labels(column.categories), ""], dtype=object)[codes]
        return labels, codes < 0
    values = np.asarray(column, dtype=object)
    missing = np.asarray(pd.isna(values), dtype=bool)
    labels = np.empty(len(values), dtype=object)
    labels[:] = ["" if gone else str(v) for v, gone in zip(values.tolist(), missing.tolist())]
    return labels, missing


def _category_labels(categories: pd.Index) -> list[str]:
    return [str(c) for c in categories]


def _sorted_levels(values: np.ndarray) -> np.ndarray:
    """The distinct strings of ``values``, sorted by code point (an object array)."""
    return np.asarray(sorted(pd.unique(values)), dtype=object)


def _pack_labels(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-8 byte array and the end offset of each: a model file
    then holds their bytes, not levels times the longest level."""
    encoded = [str(level).encode("utf-8") for level in levels]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), ends


def _read_levels(arrays: ArrayReader, j: int) -> np.ndarray:
    """Column ``j``'s levels from a model file (packed UTF-8, or a fixed-width
    string array as files before 2026-12-01 hold them), checked."""
    if arrays.prefix + f"levels/{j}" in arrays.arrays:  # the older layout
        return arrays.get(f"levels/{j}", "U").astype(object)
    data, ends = arrays.get(f"levels/{j}/utf8", "u"), arrays.get(f"levels/{j}/ends", "iu")
    if data.ndim != 1 or ends.ndim != 1 or (np.diff(ends, prepend=0) < 0).any() or (len(ends) and ends[-1] != len(data)):
        raise ModelFileError(f"The levels of column {j} ('{arrays.prefix}levels/{j}') are malformed.")
    raw, starts = data.tobytes(), np.concatenate([[0], ends[:-1]]).astype(np.int64)
    try:
        levels = [raw[a:b].decode("utf-8") for a, b in zip(starts, ends)]
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"The levels of column {j} are not UTF-8: {exc}.") from None
    if levels != sorted(set(levels)):
        raise ModelFileError(f"The levels of column {j} must be distinct and sorted.")
    return np.asarray(levels, dtype=object)


def _as_numbers(name, column, frame: bool = False) -> np.ndarray:
    """A numeric column as float64, missing values NaN; ``frame``: a column of a
    DataFrame (an array of :func:`_frame_arrays`), whose errors say how to mark
    it categorical by dtype."""
    if frame:
        if isinstance(column, np.ndarray):
            if column.dtype.kind in "biuf":
                return column.astype(np.float64)
            column = pd.Series(column, copy=False)  # object or complex: pandas' conversion
        if np.issubdtype(getattr(column.dtype, "numpy_dtype", column.dtype), np.complexfloating):
            # NumPy would drop the imaginary part with a warning only.
            raise ValueError(f"Column {name!r} holds complex numbers, which skmoe does not encode.")
        try:
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Column {name!r} could not be converted to numbers ({exc}); mark it "
                "as categorical with categorical_features, or give it a category "
                "or string dtype."
            ) from exc
    if column.dtype == object:  # None, NaN and pandas.NA alike are missing
        column = np.where(pd.isna(column), np.nan, column)
    try:
        return np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Column {name} could not be converted to numbers ({exc}); pass its index "
            "in categorical_features if it holds categories."
        ) from exc
