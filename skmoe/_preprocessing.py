"""From validated arrays to the tensors the experts see.

Everything here is weighted by ``sample_weight``, so that a weight of ``k`` on
a row is the same as ``k`` copies of it.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri


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


class NumericEncoder:
    """Two views of every numeric column: robust-scaled and quantile-normal.

    * Robust view: centred on the median, divided by the interquartile range
      (the standard deviation where the IQR is zero), then bent by
      ``z / sqrt(1 + (z / 3)^2)`` so that one extreme value cannot saturate a
      unit while the order and rough spacing of values are kept.
    * Quantile view: the column's weighted empirical CDF mapped through the
      normal quantile function, which spreads skewed and heavy-tailed columns
      (incomes, counts) evenly.

    Each column thus enters the network twice; the pair beat either view
    alone on the California housing and adult tables (see
    ``docs/benchmarks.md``).
    """

    clip = 3.0
    n_quantiles = 1000

    def fit(self, X: np.ndarray, w: np.ndarray) -> "NumericEncoder":
        levels = np.linspace(0.0, 1.0, self.n_quantiles)
        quantiles = weighted_quantiles(X, w, np.concatenate([[0.25, 0.5, 0.75], levels]))
        q25, median, q75 = quantiles[:3]
        self.quantiles_ = quantiles[3:]  # (n_quantiles, n_features)
        self.levels_ = levels
        wn = w / w.sum()
        mean = wn @ X
        std = np.sqrt(np.maximum(wn @ (X - mean) ** 2, 0.0))
        scale = (q75 - q25) / 1.349  # the IQR of a standard normal is 1.349
        scale = np.where(scale > 1e-12 * np.maximum(np.abs(median), 1.0), scale, std)
        self.center_ = np.where(scale > 0, median, mean)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    @property
    def n_outputs(self) -> int:
        return 2 * len(self.center_)

    def transform(self, X: np.ndarray) -> np.ndarray:
        z = (X - self.center_) / self.scale_
        robust = z / np.sqrt(1.0 + (z / self.clip) ** 2)
        return np.hstack([robust, self._quantile_normal(X)]).astype(np.float32)

    def _quantile_normal(self, X: np.ndarray) -> np.ndarray:
        out = np.empty_like(X, dtype=np.float64)
        for j in range(X.shape[1]):
            q = self.quantiles_[:, j]
            # Average the forward and backward interpolations so that a value
            # shared by many rows (ties) maps to the middle of its CDF step.
            up = np.interp(X[:, j], q, self.levels_)
            down = -np.interp(-X[:, j], -q[::-1], -self.levels_[::-1])
            out[:, j] = 0.5 * (up + down)
        eps = 1e-7
        return ndtri(np.clip(out, eps, 1.0 - eps))


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
