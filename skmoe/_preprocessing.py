"""From validated arrays to the tensors the experts see.

Everything here is weighted by ``sample_weight``, so that a weight of ``k`` on
a row is the same as ``k`` copies of it.
"""

from __future__ import annotations

import numpy as np
import sklearn
import torch
from scipy.special import ndtri
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import TargetEncoder

from ._arrays import ArrayReader
from ._table import sorted_lookup
from .exceptions import ModelFileError

_SKLEARN_VERSION = tuple(int(p) for p in sklearn.__version__.split(".")[:2])


def weighted_quantiles(x: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Weighted quantiles of the non-missing values of ``x`` at levels ``q``.

    Uses the midpoint rule on the weighted empirical distribution, so with unit
    weights it matches ``np.quantile(..., method="hazen")``. An all-missing
    column gives zeros.
    """
    present = ~np.isnan(x)
    x, w = x[present], w[present]
    if len(x) == 0 or w.sum() <= 0:
        return np.zeros(len(q))
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cum = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    return np.interp(q, cum, xs)


def capped_weights(weights: np.ndarray, n_bins: int) -> np.ndarray:
    """``weights`` with each capped at one bin's share of the capped total.

    The cap ``c`` solves ``c = sum(min(weights, c)) / n_bins``; with no weight
    above ``sum(weights) / n_bins`` the array itself is returned (the caller
    tests identity). With at most ``n_bins`` values every weight ends equal.
    """
    order = np.sort(weights)[::-1]
    rest = np.cumsum(order[::-1])[::-1]  # rest[k]: sum of all but the k largest
    for k in range(min(len(order), n_bins)):
        cap = rest[k] / (n_bins - k)
        if order[k] <= cap:
            return weights if k == 0 else np.minimum(weights, cap)
    return np.ones_like(weights)


# Numeric columns are encoded this many rows at a time: the views' float64
# temporaries (a dozen arrays of the raw columns' size) then stay a few MiB a
# column however long the table, instead of outgrowing the encoding itself.
_ENCODE_ROWS = 16_384
# The piecewise-linear view is computed this many rows at a time (see there).
_PLE_ROWS = 256


class NumericEncoder:
    """Two views of every numeric column, and indicators of missing values.

    * Robust view: centred on the median, divided by the interquartile range
      (the standard deviation where the IQR is zero), then bent by
      ``z / sqrt(1 + (z / 3)^2)`` so that one extreme value cannot saturate a
      unit while the order and rough spacing of values are kept.
    * Quantile view: the column's weighted empirical CDF mapped through the
      normal quantile function, which spreads skewed and heavy-tailed columns
      (incomes, counts) evenly.
    * Piecewise-linear view (``n_bins > 0``): the column's range is cut at
      ``n_bins`` weighted quantile bins (a heavy value, more than one bin's
      share of the rows, ends one bin and the others share the rest; see
      ``_fit_edges``), and a value becomes ``n_bins``
      numbers in [0, 1], how far it has filled each bin (Gorishniy et al.,
      "On Embeddings for Numerical Features in Tabular Deep Learning",
      NeurIPS 2022). A first layer on these can bend a column's effect at
      every bin edge, which a plain MLP learns slowly.
    * A missing value is imputed by the median (zero in the first two views),
      and each column that had missing values in training gets a 0/1
      indicator, so the network can tell an imputed value from a real one.

    The robust and quantile views together beat either alone on the
    California housing and adult tables; the piecewise-linear view's effect
    is in ``docs/benchmarks.md``.

    Parameters
    ----------
    n_bins : int, default=0
        Bins of the piecewise-linear view; 0 leaves it out. A small table
        gets fewer (``n_bins_`` after fit), so that each bin's slope is
        learned from more than a handful of rows: at most one bin per
        ``rows_per_bin`` distinct training rows up to ``coarse_bins`` bins,
        and one per ``rows_per_fine_bin`` rows beyond them.
    """

    clip = 3.0
    n_quantiles = 1000
    # 64 bins raised california, adult and credit over 32, but cost ames,
    # the smallest table (2,300 rows, 36 rows a bin) 0.005 R2: the bins past
    # the 32nd need twice the rows (docs/benchmarks.md, "Seventh pass").
    rows_per_bin = 32
    coarse_bins = 32
    rows_per_fine_bin = 64

    def __init__(self, n_bins: int = 0) -> None:
        self.n_bins = n_bins

    def fit(self, X: np.ndarray, w: np.ndarray) -> "NumericEncoder":
        self.levels_ = np.linspace(0.0, 1.0, self.n_quantiles)
        probes = np.concatenate([[0.25, 0.5, 0.75], self.levels_])
        quantiles = np.empty((len(probes), X.shape[1]))
        for j in range(X.shape[1]):
            quantiles[:, j] = weighted_quantiles(X[:, j], w, probes)
        q25, median, q75 = quantiles[:3]
        self.quantiles_ = quantiles[3:]  # (n_quantiles, n_features)
        filled = np.where(np.isnan(X), median, X)
        wn = w / w.sum()
        mean = wn @ filled
        std = np.sqrt(np.maximum(wn @ (filled - mean) ** 2, 0.0))
        scale = (q75 - q25) / 1.349  # the IQR of a standard normal is 1.349
        scale = np.where(scale > 1e-12 * np.maximum(np.abs(median), 1.0), scale, std)
        self.center_ = np.where(scale > 0, median, mean)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.median_ = median
        self.has_missing_ = np.isnan(X).any(axis=0)
        # Distinct rows: weighted rows arrive repeated (see expand_duplicates).
        n_distinct = len(np.unique(X, axis=0)) if self.n_bins else 0
        self.n_bins_ = min(self.n_bins, self._bins_supported(n_distinct))
        self.edges_ = self._fit_edges(X, w)
        return self

    @classmethod
    def _bins_supported(cls, n_rows: int) -> int:
        """The most bins ``n_rows`` distinct rows support (see ``n_bins``)."""
        return max(min(cls.coarse_bins, n_rows // cls.rows_per_bin), n_rows // cls.rows_per_fine_bin)

    def _fit_edges(self, X: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Bin edges ``(n_bins_ + 1, d)``: weighted quantiles, spread past heavy values.

        A value that holds more than one bin's share of the rows (the zeros of
        a zero-inflated amount, a sentinel such as 999) would take several
        tied edges and leave the rest of the column two or three bins. Such a
        column is binned on its distinct values with each value's weight
        capped at one bin's share, so the heavy value still ends a bin and
        every other bin falls among the remaining values. A column without a
        heavy value keeps the plain quantile edges.
        """
        edges = self._quantile_edges().copy()
        if not self.n_bins_:
            return edges
        levels = np.linspace(0.0, 1.0, self.n_bins_ + 1)
        for j in range(X.shape[1]):
            present = ~np.isnan(X[:, j])
            values, inverse = np.unique(X[present, j], return_inverse=True)
            weights = np.bincount(inverse, weights=w[present], minlength=len(values))
            capped = capped_weights(weights, self.n_bins_)
            if capped is not weights:
                edges[:, j] = weighted_quantiles(values, capped, levels)
        return edges

    @property
    def _n_bins(self) -> int:
        # Models fitted before the piecewise-linear view existed have none.
        return getattr(self, "n_bins_", 0)

    @property
    def n_outputs(self) -> int:
        return (2 + self._n_bins) * len(self.center_) + int(self.has_missing_.sum())

    def transform(self, X: np.ndarray, out: np.ndarray | None = None, piecewise=None) -> np.ndarray:
        """The views of ``X`` ``(n, d)``, written into ``out`` ``(n, n_outputs)`` if given.

        Each view is computed in float64 and cast once, into ``out``'s dtype,
        as it is written (no concatenated float64 copy of all views).
        ``piecewise``: arrays ``(bins, fills)`` of shape ``(n, d)`` that
        receive the piecewise-linear view as each value's bin and fill
        (:meth:`bins_and_fills`); ``out`` then has no columns for that view.
        """
        n, d = X.shape
        n_bins = 0 if piecewise is not None else self._n_bins
        if out is None:
            out = np.empty((n, self.n_outputs - (self._n_bins - n_bins) * d))
        if n > _ENCODE_ROWS:  # every view is row by row: in blocks, temporaries stay small
            for start in range(0, n, _ENCODE_ROWS):
                rows = slice(start, start + _ENCODE_ROWS)
                self.transform(X[rows], out[rows], None if piecewise is None else [a[rows] for a in piecewise])
            return out
        missing = np.isnan(X)
        X = np.where(missing, self.median_, X)
        z = (X - self.center_) / self.scale_
        out[:, :d] = z / np.sqrt(1.0 + (z / self.clip) ** 2)
        out[:, d : 2 * d] = self._quantile_normal(X)
        if piecewise is None:
            self._piecewise_linear(X, out[:, 2 * d : (2 + n_bins) * d])
        else:
            self.bins_and_fills(X, *piecewise)
        out[:, (2 + n_bins) * d :] = missing[:, self.has_missing_]
        return out

    def bins_and_fills(self, X: np.ndarray, bins: np.ndarray, fills: np.ndarray) -> None:
        """The piecewise-linear view of imputed ``X`` as each value's count of
        full bins (into ``bins``) and the fill of the next (into ``fills``).

        The view is ones up to a value's bin, then its fill, then zeros (the
        edges are sorted), so these two numbers hold it exactly: the fill is
        the same number :meth:`_piecewise_linear` computes for that bin, and a
        value at or above the top edge has ``n_bins`` full bins and fill 0.
        """
        edges, n_bins = self.bin_edges(), self._n_bins
        lo, hi = edges[:-1].T, edges[1:].T  # (d, n_bins)
        # k: the bins whose top edge is <= x, all full (the edges are sorted),
        # found for all columns in one batched binary search.
        top = torch.from_numpy(np.ascontiguousarray(hi))
        k = torch.searchsorted(top, torch.from_numpy(np.ascontiguousarray(X.T)), right=True).numpy().T
        columns = np.arange(X.shape[1])
        inside = np.minimum(k, n_bins - 1)
        width = (hi - lo)[columns, inside]
        with np.errstate(divide="ignore", invalid="ignore"):
            fill = np.clip((X - lo[columns, inside]) / width, 0.0, 1.0)
        # past the top edge, or a zero-width bin above x: nothing filled
        fills[...] = np.where((k < n_bins) & (width > 0), fill, 0.0)
        bins[...] = k

    _ARRAYS = ("levels_", "quantiles_", "center_", "scale_", "median_", "has_missing_")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted arrays by attribute name (the bin count goes in the header)."""
        arrays = {attr: np.asarray(getattr(self, attr)) for attr in self._ARRAYS}
        if getattr(self, "edges_", None) is not None:
            arrays["edges_"] = self.edges_
        return arrays

    @classmethod
    def from_arrays(cls, arrays: ArrayReader, n_bins: int, n_columns: int) -> "NumericEncoder":
        """The encoder of :meth:`to_arrays` for ``n_columns`` columns, every array checked."""
        if n_bins < 0:
            raise ModelFileError(f"The number of numeric bins must be >= 0, got {n_bins}.")
        encoder = cls(n_bins)
        encoder.n_bins_ = n_bins
        shapes = {"levels_": (cls.n_quantiles,), "quantiles_": (cls.n_quantiles, n_columns)}
        for attr in cls._ARRAYS:
            shape = shapes.get(attr, (n_columns,))
            if attr == "has_missing_":
                encoder.has_missing_ = arrays.get(attr, "b", shape)
            elif attr != "quantiles_":  # a zero or infinite scale would predict NaN
                setattr(encoder, attr, arrays.finite(attr, shape, positive=attr == "scale_"))
            else:
                encoder.quantiles_ = arrays.get(attr, "f", shape)
        if not (np.diff(encoder.levels_) > 0).all() or encoder.levels_[0] != 0.0 or encoder.levels_[-1] != 1.0:
            raise ModelFileError(f"The array '{arrays.prefix}levels_' must rise from 0 to 1.")
        # Files written before the heavy-value rule have no edges: they derive them.
        shape = (n_bins + 1, n_columns)
        encoder.edges_ = arrays.get("edges_", "f", shape) if arrays.has("edges_") else None
        for attr in ("quantiles_", "edges_"):
            q = getattr(encoder, attr)
            if q is not None and not (np.isfinite(q).all() and (np.diff(q, axis=0) >= 0).all()):
                raise ModelFileError(
                    f"The array '{arrays.prefix}{attr}' must be finite and sorted in each column."
                )
        return encoder

    def bin_edges(self) -> np.ndarray:
        """Edges of the piecewise-linear bins, ``(n_bins + 1, n_features)``.

        Models fitted before ``edges_`` existed read them off the stored
        quantiles, as they were fitted.
        """
        edges = getattr(self, "edges_", None)
        return self._quantile_edges() if edges is None else edges

    def _quantile_edges(self) -> np.ndarray:
        """Edges at evenly spaced levels of the stored quantiles (cached)."""
        cached = getattr(self, "_edges_cache", None)
        if cached is not None and cached[0] is self.quantiles_ and len(cached[1]) == self._n_bins + 1:
            return cached[1]
        rows = np.rint(np.linspace(0.0, 1.0, self._n_bins + 1) * (self.n_quantiles - 1))
        edges = self.quantiles_[rows.astype(np.intp)]
        self._edges_cache = (self.quantiles_, edges)
        return edges

    def _piecewise_linear(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """How far each value fills each bin: ``(n, n_features * n_bins)``, into ``out`` if given.

        A bin that is a single point (tied quantiles) is a 0/1 step at that
        value. Values outside the training range fill the first bin from 0 or
        the last to 1, no further, so an outlier cannot blow up a unit.
        """
        n_bins = self._n_bins
        if out is None:
            out = np.empty((len(X), X.shape[1] * n_bins))
        if not n_bins:
            return out
        edges = self.bin_edges()
        lo, hi = edges[:-1].T, edges[1:].T  # (d, n_bins)
        span = hi - lo
        steps = span <= 0
        span = np.where(steps, 1.0, span)
        # All columns at once, _PLE_ROWS rows at a time: the (rows, d, n_bins)
        # float64 temporary stays in cache (one column at a time was 1.5x
        # slower on 20 columns, and 7x on one row). The same numbers.
        block = np.empty((min(len(X), _PLE_ROWS), *lo.shape))
        for start in range(0, len(X), _PLE_ROWS):
            x = X[start : start + _PLE_ROWS, :, None]  # (rows, d, 1)
            fill = block[: len(x)]
            np.divide(np.subtract(x, lo, out=fill), span, out=fill)
            if steps.any():
                np.copyto(fill, x >= hi, where=steps)
            np.clip(fill, 0.0, 1.0, out=fill)
            # column-major blocks: all bins of column 0, then column 1, ...
            out[start : start + len(x)] = fill.reshape(len(x), -1)
        return out

    def inverse_quantile_view(self, Q: np.ndarray) -> np.ndarray:
        """Values in the original units of points ``Q`` of the quantile view."""
        from scipy.special import ndtr

        P = ndtr(Q)
        return np.column_stack(
            [np.interp(P[:, j], self.levels_, self.quantiles_[:, j]) for j in range(Q.shape[1])]
        )

    def _quantile_normal(self, X: np.ndarray) -> np.ndarray:
        """Each value's weighted CDF level through the normal quantile function.

        A value between two stored quantiles is interpolated linearly; a value
        shared by several quantiles (ties) gets the middle of their levels;
        values beyond the extremes get the first or last level. All columns
        are searched in one batched call.
        """
        values, first, last, n_values = self._cdf_table()
        x = np.ascontiguousarray(X.T, dtype=np.float64)  # (d, n)
        # k: the last distinct quantile <= x, in [-1, n_values - 1]
        k = torch.searchsorted(torch.from_numpy(values), torch.from_numpy(x), right=True).numpy() - 1
        kk = np.maximum(k, 0)
        nxt = np.minimum(kk + 1, values.shape[1] - 1)
        rows = np.arange(len(values))[:, None]  # (d, 1): each column's own table
        u0, u1 = values[rows, kk], values[rows, nxt]
        lo0, hi0, lo1 = first[rows, kk], last[rows, kk], first[rows, nxt]
        inside = (k >= 0) & (kk + 1 < n_values[:, None]) & (x > u0)
        with np.errstate(invalid="ignore", divide="ignore"):
            between = hi0 + (x - u0) * (lo1 - hi0) / (u1 - u0)
        p = np.where(inside, between, np.where(x == u0, 0.5 * (lo0 + hi0), hi0))
        p = np.where(k < 0, first[:, :1], p)
        eps = 1e-7
        return ndtri(np.clip(p, eps, 1.0 - eps)).T

    def _cdf_table(self):
        """Distinct quantile values of each column and the first and last CDF
        level at which each occurs, padded to one (d, U) array each."""
        cached = getattr(self, "_cdf_cache", None)
        if cached is not None and cached[0] is self.quantiles_:
            return cached[1]
        d = self.quantiles_.shape[1]
        columns = []
        for j in range(d):
            q = self.quantiles_[:, j]
            values, start, counts = np.unique(q, return_index=True, return_counts=True)
            columns.append((values, self.levels_[start], self.levels_[start + counts - 1]))
        width = max(len(c[0]) for c in columns) if columns else 1
        values = np.full((d, width), np.inf)  # +inf padding is never <= a finite x
        first, last = np.ones((d, width)), np.ones((d, width))
        for j, (v, lo, hi) in enumerate(columns):
            values[j, : len(v)], first[j, : len(v)], last[j, : len(v)] = v, lo, hi
        n_values = np.array([len(c[0]) for c in columns])
        table = (values, first, last, n_values)
        self._cdf_cache = (self.quantiles_, table)
        return table


class CategoricalEncoder:
    """One-hot slots for the frequent levels of each categorical column.

    Works on the integer codes of :class:`skmoe._table.TableSchema`. A level
    gets its own slot when its training weight is at least ``min_frequency``,
    up to the ``max_levels`` most frequent levels of a column; a missing value
    is a level like any other. Rare levels, levels beyond the cap and levels
    never seen in training share one ``other`` slot, so that an unseen level at
    prediction time is encoded like the rare ones rather than crashing.

    A column with more distinct levels than the cap also gets a cross-fitted
    target encoding (:class:`sklearn.preprocessing.TargetEncoder`), so that
    the levels pooled in ``other`` still carry their own signal without the
    width of one slot per level. After fit the encoder's tables are kept as
    plain arrays (``target_tables_``), which is what a saved model stores.

    Attributes
    ----------
    slots_ : list of ndarray
        For each column, the codes that have their own slot, in slot order.
    target_columns_ : list of int
        Columns that are also target-encoded.
    target_tables_ : list of (ndarray, ndarray, ndarray)
        For each target-encoded column: its codes seen in fit (sorted), their
        encodings ``(n_codes, n_values)`` and the encoding of unseen codes
        ``(n_values,)`` (the target mean).
    """

    min_frequency = 5.0
    max_levels = 64

    def fit(self, C, w, y=None, target_type=None, seed=0) -> np.ndarray | None:
        """Fit the slots and target tables on training codes ``C``.

        ``y`` and ``target_type`` (``"continuous"``, ``"binary"`` or
        ``"multiclass"``) enable the target encoding of overflowing columns.
        Returns the cross-fitted target encodings of ``C`` ``(n, n_target)``
        (each row encoded by the folds that did not see it), or None without
        target-encoded columns: :meth:`transform` writes them with
        ``cross_fitted`` for the training rows.
        """
        self.slots_, self.target_columns_, self.target_tables_ = [], [], []
        for j in range(C.shape[1]):
            codes, inverse = np.unique(C[:, j], return_inverse=True)
            weight = np.bincount(inverse.ravel(), weights=w, minlength=len(codes))
            order = np.lexsort((codes, -weight))  # most frequent first, ties by code
            frequent = order[weight[order] >= self.min_frequency]
            self.slots_.append(codes[np.sort(frequent[: self.max_levels])])
            if len(codes) > self.max_levels and y is not None:
                self.target_columns_.append(j)
        if not self.target_columns_:
            return None
        encoder = _target_encoder(target_type, seed)
        encoded = encoder.fit_transform(C[:, self.target_columns_], y)
        self.target_tables_ = _target_tables(encoder)
        return encoded

    @property
    def n_outputs(self) -> int:
        n_target = sum(len(default) for _, _, default in self.target_tables_)
        return sum(len(s) + 1 for s in self.slots_) + n_target

    def transform(self, C: np.ndarray, out: np.ndarray | None = None, cross_fitted=None) -> np.ndarray:
        """The one-hot slots and target encodings of codes ``C``, into ``out`` if given;
        ``cross_fitted``: the training rows' target encodings, as :meth:`fit` returned."""
        if out is None:
            out = np.empty((len(C), self.n_outputs))
        start = self._onehot(C, out).shape[1]
        if cross_fitted is not None:
            out[:, start:] = cross_fitted
            return out
        # As TargetEncoder.transform: a code seen in fit gets its encoding, any
        # other the target mean.
        for j, (codes, encodings, default) in zip(self.target_columns_, self.target_tables_):
            pos, hit = sorted_lookup(codes, C[:, j])
            out[:, start : start + len(default)] = np.where(hit[:, None], encodings[pos], default)
            start += len(default)
        return out

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The fitted slots and target-encoding tables as a spec and named arrays."""
        arrays = {f"slots/{i}": np.asarray(slots, dtype=np.float64) for i, slots in enumerate(self.slots_)}
        for i, (codes, encodings, default) in enumerate(self.target_tables_):
            arrays.update({f"target/{i}/codes": codes, f"target/{i}/encodings": encodings,
                           f"target/{i}/default": default})
        spec = {"n_slot_columns": len(self.slots_), "target_columns": [int(j) for j in self.target_columns_]}
        return spec, arrays

    @classmethod
    def from_arrays(cls, spec: dict, arrays: ArrayReader, n_levels: dict[int, int]) -> "CategoricalEncoder":
        """The encoder of :meth:`to_arrays`, checked against the number of
        levels of each categorical column (``n_levels``: column index -> count,
        in column order)."""
        target_columns = [int(j) for j in spec["target_columns"]]
        n_columns = len(n_levels)
        if int(spec["n_slot_columns"]) != n_columns or any(not 0 <= j < n_columns for j in target_columns):
            raise ModelFileError("The categorical encoding does not match the categorical columns.")
        encoder = cls()
        encoder.slots_ = [arrays.get(f"slots/{i}", "f") for i in range(n_columns)]
        for slots, (column, n) in zip(encoder.slots_, n_levels.items()):
            if slots.ndim != 1 or len(slots) and (slots.min() < -1 or slots.max() >= n):
                raise ModelFileError(f"The one-hot slots of column {column} name levels that do not exist.")
        encoder.target_columns_, encoder.target_tables_ = target_columns, []
        for i in range(len(target_columns)):
            codes, encodings, default = (arrays.finite(f"target/{i}/{k}") for k in ("codes", "encodings", "default"))
            if codes.ndim != 1 or default.ndim != 1 or encodings.shape != (len(codes), len(default)):
                raise ModelFileError(f"The target-encoding table {i} has inconsistent shapes.")
            encoder.target_tables_.append((codes, encodings, default))
        return encoder

    def _onehot(self, C: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The one-hot slots of every column, in the first columns of ``out`` if given."""
        width = sum(len(slots) + 1 for slots in self.slots_)
        out = np.empty((len(C), width)) if out is None else out
        out[:, :width] = 0.0
        rows, start = np.arange(len(C)), 0
        for j, slots in enumerate(self.slots_):
            pos, hit = sorted_lookup(slots, C[:, j])
            out[rows, start + np.where(hit, pos, len(slots))] = 1.0
            start += len(slots) + 1
        return out[:, :width]


def _target_tables(encoder: TargetEncoder) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A fitted TargetEncoder's lookup tables, one ``(codes, encodings, default)`` per column.

    A multiclass encoder has one encoding per class for each column, in the
    column-major order of its output.
    """
    n_values = len(encoder.classes_) if encoder.target_type_ == "multiclass" else 1
    default = np.atleast_1d(np.asarray(encoder.target_mean_, dtype=np.float64))
    tables = []
    for j, codes in enumerate(encoder.categories_):
        encodings = encoder.encodings_[j * n_values : (j + 1) * n_values]
        tables.append(
            (np.asarray(codes, dtype=np.float64), np.column_stack(encodings).astype(np.float64), default)
        )
    return tables


def _target_encoder(target_type: str, seed: int) -> TargetEncoder:
    """A shuffled 5-fold TargetEncoder, seeded the way this scikit-learn wants."""
    if _SKLEARN_VERSION >= (1, 9):
        folds = KFold if target_type == "continuous" else StratifiedKFold
        return TargetEncoder(
            target_type=target_type, cv=folds(5, shuffle=True, random_state=seed)
        )
    return TargetEncoder(target_type=target_type, shuffle=True, random_state=seed)


class TableEncoder:
    """The whole input encoding: numeric views and categorical one-hot slots.

    Parameters
    ----------
    is_categorical : ndarray of bool, shape (n_features,)
    n_bins : int, default=0
        Bins of the numeric columns' piecewise-linear view.
    """

    def __init__(self, is_categorical: np.ndarray, n_bins: int = 0) -> None:
        self.is_categorical = is_categorical
        self.n_bins = n_bins

    def fit_transform(self, X, w, y=None, target_type=None, seed=0, then=None) -> np.ndarray:
        """Fit on the training rows ``X`` and return their encoding (float32).

        ``then``: more rows (the validation rows), encoded by the fitted
        encoder after ``X``'s rows in the same array (``Z[len(X):]``). The
        training and validation rows then sit in one allocation, which the
        refit on all rows trains on as it is, with no concatenated copy.
        Every block is written in place, so the peak is about the encoding
        itself (a float64 copy of the whole and its cast held it about four times).
        """
        self.numeric_ = NumericEncoder(self.n_bins).fit(X[:, ~self.is_categorical], w)
        self.categorical_ = CategoricalEncoder()
        cross_fitted = self.categorical_.fit(X[:, self.is_categorical], w, y, target_type, seed)
        out = np.empty((len(X) + (0 if then is None else len(then)), self.n_outputs), dtype=np.float32)
        self._write(X, out[: len(X)], cross_fitted)
        if then is not None:
            self._write(then, out[len(X) :])
        return out

    @property
    def n_outputs(self) -> int:
        return self.numeric_.n_outputs + self.categorical_.n_outputs

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The fitted encoding as a JSON-ready spec and named arrays."""
        spec, arrays = self.categorical_.to_arrays()
        spec["numeric_bins"] = int(self.numeric_._n_bins)
        arrays.update({f"numeric/{k}": v for k, v in self.numeric_.to_arrays().items()})
        return spec, arrays

    @classmethod
    def from_arrays(
        cls, spec: dict, arrays: ArrayReader, is_categorical: np.ndarray, levels: dict[int, np.ndarray]
    ) -> "TableEncoder":
        """The encoding of :meth:`to_arrays` for a schema's columns, checked.

        Files written before the piecewise-linear view have no bins.
        """
        try:
            n_bins = int(spec.get("numeric_bins", 0))
            cat_spec = {"n_slot_columns": int(spec["n_slot_columns"]),
                        "target_columns": [int(j) for j in spec["target_columns"]]}
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"The model header is incomplete or malformed: {exc!r}.") from None
        encoder = cls(is_categorical)
        encoder.numeric_ = NumericEncoder.from_arrays(
            arrays.sub("numeric/"), n_bins, int((~is_categorical).sum())
        )
        n_levels = {int(j): len(levels[j]) for j in np.flatnonzero(is_categorical)}
        encoder.categorical_ = CategoricalEncoder.from_arrays(cat_spec, arrays, n_levels)
        return encoder

    def describe(self, Z: np.ndarray, levels: dict[int, np.ndarray]) -> list[np.ndarray]:
        """Points ``Z`` of the encoded space (prototypes) in the original units.

        Numeric columns are read from the quantile view (a centroid's quantile
        is a typical value of its cell); a categorical column takes the level
        of its largest one-hot slot, ``"(other)"`` for the shared slot and
        ``"(missing)"`` for the missing level. ``levels`` maps a categorical
        column to its level names (``TableSchema.levels_``).

        Returns
        -------
        list of ndarray, one per original column, each of shape (n_points,)
        """
        n_numeric = len(self.numeric_.center_)
        numeric = self.numeric_.inverse_quantile_view(Z[:, n_numeric : 2 * n_numeric])
        start = self.numeric_.n_outputs
        columns, numeric_iter = [], iter(numeric.T)
        categorical = iter(enumerate(self.categorical_.slots_))
        for j, is_cat in enumerate(self.is_categorical):
            if not is_cat:
                columns.append(next(numeric_iter))
                continue
            _, slots = next(categorical)
            block = Z[:, start : start + len(slots) + 1]
            start += len(slots) + 1
            names = [
                "(missing)" if code < 0 else str(levels[j][int(code)]) for code in slots
            ] + ["(other)"]
            columns.append(np.asarray(names, dtype=object)[block.argmax(axis=1)])
        return columns

    def transform(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The encoding of codes ``X`` as float32, each block written in place
        (into ``out`` ``(n, n_outputs)`` if given)."""
        if out is None:
            out = np.empty((len(X), self.n_outputs), dtype=np.float32)
        return self._write(X, out)

    def piecewise_layout(self) -> tuple[int, int, int, int] | None:
        """``(n_inputs, start, n_columns, n_bins)``: where the piecewise-linear
        view sits in the encoding (column ``j``'s bins side by side from
        ``start + j * n_bins``); None without one."""
        d, n_bins = len(self.numeric_.center_), self.numeric_._n_bins
        return (self.n_outputs, 2 * d, d, n_bins) if d and n_bins else None

    def transform_piecewise(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The encoding of codes ``X`` with its piecewise-linear view as one bin
        and one fill per numeric column: ``(dense, bins, fills)``, the other
        inputs ``(n, n_outputs - n_columns * n_bins)`` float32 in their order,
        and two ``(n, n_columns)`` arrays (int64, float32).

        It is :meth:`transform` exactly, held in fewer numbers (see
        :meth:`NumericEncoder.bins_and_fills`); needs :meth:`piecewise_layout`.
        """
        n_inputs, _, d, n_bins = self.piecewise_layout()
        n = len(X)
        dense = np.empty((n, n_inputs - d * n_bins), dtype=np.float32)
        bins, fills = np.empty((n, d), dtype=np.int64), np.empty((n, d), dtype=np.float32)
        n_numeric = self.numeric_.n_outputs - d * n_bins
        self.numeric_.transform(X[:, ~self.is_categorical], dense[:, :n_numeric], (bins, fills))
        self.categorical_.transform(X[:, self.is_categorical], dense[:, n_numeric:])
        return dense, bins, fills

    def _write(self, X: np.ndarray, out: np.ndarray, cross_fitted=None) -> np.ndarray:
        """Each block of ``X``'s encoding into ``out``; ``cross_fitted``: the
        training rows' target encodings (see :meth:`CategoricalEncoder.fit`)."""
        n_numeric = self.numeric_.n_outputs
        self.numeric_.transform(X[:, ~self.is_categorical], out[:, :n_numeric])
        self.categorical_.transform(X[:, self.is_categorical], out[:, n_numeric:], cross_fitted)
        return out


def collapse_duplicates(
    X: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge identical ``(x, y)`` rows into one row carrying their summed weight.

    Rows of zero weight are dropped. The result does not depend on the order of
    the rows or on how a weight was expressed (one row of weight 3 or three
    rows of weight 1), which makes integer sample weights exactly equivalent to
    repeated rows.
    """
    keep = w > 0
    X, y, w = X[keep], y[keep], w[keep]
    y2 = y.reshape(len(y), -1).astype(np.float64)
    joint = np.ascontiguousarray(np.hstack([X.astype(np.float64), y2]))
    # View each row as one opaque item so that np.unique compares whole rows.
    rows = joint.view(np.dtype((np.void, joint.dtype.itemsize * joint.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=w, minlength=len(first))
    return X[first], y[first], weights


def expand_duplicates(
    X: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo :func:`collapse_duplicates` for minibatch training.

    A collapsed row of total weight ``W`` becomes ``round(W / u)`` copies (at
    least one) of weight ``W / copies``, where the unit ``u`` is the smallest
    total weight, raised if needed so that there are at most about
    ``max(sum(W), 2 * n_rows)`` copies. With unit weights this restores the
    original rows, so a row seen ``k`` times is drawn ``k`` times per epoch
    rather than once with a heavy weight, which would make minibatch gradients
    noisy; heavy weights (``class_weight="balanced"``) act as oversampling.
    Being a function of the collapsed rows only, it keeps weights and
    repetitions equivalent.
    """
    total = w.sum()
    unit = max(w.min(), total / max(total, 2.0 * len(w)))
    copies = np.maximum(np.rint(w / unit), 1).astype(np.int64)
    idx = np.repeat(np.arange(len(w)), copies)
    return X[idx], y[idx], (w / copies)[idx]
