"""From validated arrays to the tensors the experts see.

Everything here is weighted by ``sample_weight``, so that a weight of ``k`` on
a row is the same as ``k`` copies of it.
"""

from __future__ import annotations

import numpy as np


def weighted_quantiles(X: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Column-wise weighted quantiles of ``X`` (n, d) at levels ``q`` (m,).

    Uses the midpoint rule on the weighted empirical distribution, so with unit
    weights it matches ``np.quantile(..., method="hazen")``.
    """
    order = np.argsort(X, axis=0, kind="stable")
    Xs = np.take_along_axis(X, order, axis=0)
    ws = w[order]  # (n, d)
    cum = np.cumsum(ws, axis=0) - 0.5 * ws
    cum /= ws.sum(axis=0, keepdims=True)
    out = np.empty((len(q), X.shape[1]))
    for j in range(X.shape[1]):
        out[:, j] = np.interp(q, cum[:, j], Xs[:, j])
    return out


class RobustScaler:
    """Median / IQR scaling followed by a smooth clip to about +-3.

    Tables often carry skewed columns with far outliers (incomes, counts,
    areas). Centring on the median and scaling by the interquartile range keeps
    the bulk of each column near unit scale, and ``z / sqrt(1 + (z / 3)^2)``
    bends the tails smoothly so that a single extreme value cannot saturate a
    unit. Columns with a zero IQR (binary or mostly constant) fall back to the
    standard deviation; constant columns map to zero.
    """

    clip = 3.0

    def fit(self, X: np.ndarray, w: np.ndarray) -> "RobustScaler":
        q25, median, q75 = weighted_quantiles(X, w, np.array([0.25, 0.5, 0.75]))
        wn = w / w.sum()
        mean = wn @ X
        std = np.sqrt(np.maximum(wn @ (X - mean) ** 2, 0.0))
        scale = (q75 - q25) / 1.349  # the IQR of a standard normal is 1.349
        scale = np.where(scale > 1e-12 * np.maximum(np.abs(median), 1.0), scale, std)
        self.center_ = np.where(scale > 0, median, mean)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        z = (X - self.center_) / self.scale_
        return (z / np.sqrt(1.0 + (z / self.clip) ** 2)).astype(np.float32)


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
