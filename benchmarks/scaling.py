"""How a fit's cost grows with rows and with columns: a table and a plot.

A generated regression table (``--cols`` numeric columns of mixed shapes, a
nonlinear target with noise) is fitted with skmoe's defaults except
``max_epochs`` (``--epochs``, every epoch run: early stopping off), so that
the figures are the cost of an epoch, which is what grows with the table; how
many epochs a fit needs depends on the table and is measured on the accuracy
suite instead. "Epochs" here are passes over the rows (on more than 65,536
rows a fit records an epoch every 65,536 rows; the figures stay per pass).
Rows: 10,000, 100,000 and 1,000,000 at 20 columns; columns: 10, 100 and 500
at 10,000 rows. It prints fit seconds, seconds per epoch and
rows per second per epoch, and draws both series on log-log axes
(``--plot``).

Usage::

    python benchmarks/scaling.py --plot docs/_static/scaling.png
    python benchmarks/scaling.py --rows 10000 100000 --cols 10 100 --epochs 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from skmoe import MoERegressor


def table(n_rows: int, n_cols: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normal, skewed and discrete columns; a target of a few of them, with noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_cols))
    X[:, 1::3] = np.exp(X[:, 1::3])  # skewed
    X[:, 2::3] = np.round(X[:, 2::3] * 3)  # discrete, many ties
    k = min(n_cols, 8)
    y = np.sin(X[:, :k]).sum(axis=1) + 0.5 * X[:, 0] * X[:, min(1, n_cols - 1)] + rng.normal(scale=0.3, size=n_rows)
    return X.astype(np.float32), y


def measure(n_rows: int, n_cols: int, epochs: int) -> dict:
    X, y = table(n_rows, n_cols)
    model = MoERegressor(max_epochs=epochs, early_stopping=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    # Early stopping off: both phases run all max_epochs passes over the rows
    # (on more than 65,536 rows, as more epochs of 65,536 rows each).
    n_epochs = 2 * epochs
    assert model.history_["phase"].count("specialise") > 0
    return {"rows": n_rows, "cols": n_cols, "encoded": model.encoder_.n_outputs, "fit s": seconds, "epochs": n_epochs, "s/epoch": seconds / n_epochs,
            "rows/s/epoch": n_rows * n_epochs / seconds}


def plot(rows: list[dict], cols: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for ax, series, key, label in ((axes[0], rows, "rows", "rows (20 columns)"),
                                   (axes[1], cols, "cols", "columns (10,000 rows)")):
        x = np.array([r[key] for r in series], dtype=float)
        t = np.array([r["s/epoch"] for r in series])
        ax.loglog(x, t, "o-", label="skmoe, seconds per epoch")
        ax.loglog(x, t[0] * x / x[0], ":", color="grey", label="linear in " + key)
        ax.set_xlabel(label)
        ax.set_ylabel("seconds per epoch")
        ax.legend(frameon=False)
    fig.suptitle("Cost of an epoch, skmoe defaults, 2 CPU cores")
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--cols", nargs="+", type=int, default=[10, 100, 500])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--plot", default=None, help="write the plot to this PNG")
    args = parser.parse_args()
    print("| series | rows | columns | encoded inputs | fit s | epochs | s / epoch | rows/s per epoch |")
    print("|---|---|---|---|---|---|---|---|")
    results = {"rows": [], "cols": []}
    measure(2_000, 5, 1)  # warm: first-use imports and allocations
    for series, sizes in (("rows", args.rows), ("cols", args.cols)):
        for size in sizes:
            r = measure(size, 20, args.epochs) if series == "rows" else measure(10_000, size, args.epochs)
            results[series].append(r)
            print(f"| {series} | {r['rows']:,} | {r['cols']} | {r['encoded']} | {r['fit s']:.1f} | {r['epochs']} | "
                  f"{r['s/epoch']:.2f} | {r['rows/s/epoch']:,.0f} |", flush=True)
    if args.plot:
        plot(results["rows"], results["cols"], args.plot)


if __name__ == "__main__":
    main()
