"""Predict throughput and single-row latency on a float32 array of 20 numeric columns.

The speed issue's predict targets: batch throughput on 1M float32 rows of 20
numeric columns, and the latency of a one-row call (median over ``--calls``
calls), for skmoe with its default architecture beside scikit-learn's MLP
pipeline (``StandardScaler`` + ``MLPRegressor(256, 256)``), in one process.

A model's predict cost depends on its shape, not on how long it trained, so
both are fitted for a few epochs only (``--epochs``) on 50,000 generated
rows: skmoe then has its default encoding (64 bins per column at this table
size), 4 experts and 8 members of width 128, as a default fit would.

Usage::

    python benchmarks/predict_array.py
    OMP_NUM_THREADS=1 python benchmarks/predict_array.py --threads 1
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import MoERegressor


def _table(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 20)).astype(np.float32)
    y = X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2]) + np.abs(X[:, 3]) + 0.1 * rng.normal(size=n)
    return X, y


def _rows_per_second(model, X: np.ndarray, repeats: int) -> float:
    model.predict(X[:1000])  # first-call costs out of the timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(X)
        times.append(time.perf_counter() - start)
    return len(X) / float(np.median(times))


def _one_row_ms(model, X: np.ndarray, calls: int) -> float:
    times = []
    for i in range(calls):
        row = X[i : i + 1]
        start = time.perf_counter()
        model.predict(row)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows predicted in one call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="skmoe's n_threads")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X_train, y_train = _table(50_000, 0)
    X, _ = _table(args.rows, 1)
    models = {
        "skmoe": MoERegressor(max_epochs=args.epochs, n_threads=args.threads, random_state=0),
        "mlp": make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(256, 256), max_iter=args.epochs, random_state=0)),
    }
    print(f"{args.rows:,} float32 rows x 20 numeric columns; median of {args.repeats} batch calls, "
          f"one-row latency the median of {args.calls} calls")
    print("| model | predict rows/s | one row, ms |")
    print("|---|---|---|")
    for name, model in models.items():
        model.fit(X_train, y_train)
        rate = _rows_per_second(model, X, args.repeats)
        print(f"| {name} | {rate:,.0f} | {_one_row_ms(model, X, args.calls):.3f} |")


if __name__ == "__main__":
    main()
