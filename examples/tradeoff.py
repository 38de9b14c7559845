"""More experts or bigger experts? The paper's trade-off, measured.

Kratsios et al. (TMLR 2025) show that a Lipschitz function on [0, 1]^n can be
approximated by many small (P)ReLU experts, each served only its own Voronoi
cell, and that the VC dimension of the mixture grows as L · max(n·L, J·W).
This script fits mixtures of 1 to 32 experts at a fixed parameter budget,
either total (all experts) or active (what one row touches), and reports
the test error:

* a synthetic Lipschitz function on a regular grid of [0, 1]^2, as in the
  paper's regression experiments;
* the California housing table bundled with skmoe (raw columns, including
  the categorical ``ocean_proximity``).

Usage::

    python examples/tradeoff.py --out docs/_static

writes ``tradeoff.png`` and prints the table of test errors (markdown).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

from skmoe import MoERegressor, param_grid_for_budget
from skmoe.datasets import load_california_housing


def lipschitz_grid(n_side: int = 100):
    """A 1-Lipschitz-ish function with sharp folds on an n_side x n_side grid."""
    g = np.linspace(0.0, 1.0, n_side)
    X = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    y = np.abs(np.sin(3 * np.pi * X[:, 0])) * 0.3 + np.abs(X[:, 0] - X[:, 1]) + 0.2 * np.abs(
        np.cos(5 * np.pi * X[:, 1])
    ) * X[:, 0]
    return X, y


def shapes(budget: int, kind: str, n_inputs: int, n_experts) -> list[tuple[int, int]]:
    """(n_experts, width) pairs of depth 2 within ``budget`` parameters."""
    grid = param_grid_for_budget(
        budget, n_inputs=n_inputs, kind=kind, n_experts=n_experts, expert_depth=(2,), min_width=2
    )
    return [(g["n_experts"][0], g["expert_width"][0]) for g in grid]


def run(name, X, y, budgets, n_experts, max_epochs, seed=0):
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=seed)
    probe = MoERegressor(n_experts=1, expert_width=2, expert_members=1, max_epochs=1).fit(X_tr[:200], y_tr[:200])
    n_inputs = probe.network_.bank.weights[0].shape[1]
    rows = []
    for kind, budget in budgets.items():
        for L, W in shapes(budget, kind, n_inputs, n_experts):
            model = MoERegressor(
                # The paper's model: plain MLP experts (the budget counts them so).
                n_experts=L, expert_width=W, expert_members=1, max_epochs=max_epochs, random_state=seed
            ).fit(X_tr, y_tr)
            rmse = mean_squared_error(y_te, model.predict(X_te)) ** 0.5
            rows.append((name, kind, budget, L, W, model.n_params_total_, model.n_params_active_, rmse))
            print(
                f"| {name} | {kind} | {budget} | {L} | {W} | {model.n_params_total_} | "
                f"{model.n_params_active_} | {rmse:.4f} |",
                flush=True,
            )
    return rows


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r[0] for r in rows}, key=[r[0] for r in rows].index)
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4))
    for ax, name in zip(np.atleast_1d(axes), names):
        for kind, style in (("total", "o-"), ("active", "s--")):
            sel = [r for r in rows if r[0] == name and r[1] == kind]
            if sel:
                ax.plot([r[3] for r in sel], [r[7] for r in sel], style, label=f"fixed {kind} budget ({sel[0][2]:,})")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("number of experts L")
        ax.set_ylabel("test RMSE")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--n-experts", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    args = parser.parse_args()

    print("| data | budget | parameters | experts | width | total | active | test RMSE |")
    print("|---|---|---|---|---|---|---|---|")
    X, y = lipschitz_grid()
    rows = run(
        "Lipschitz function on [0,1]^2", X, y,
        {"total": 20_000, "active": 2_000}, args.n_experts, args.max_epochs,
    )
    X, y = load_california_housing()
    rows += run(
        "California housing", X, y / 1e5,
        {"total": 40_000, "active": 5_000}, args.n_experts, args.max_epochs,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / "tradeoff.png")


if __name__ == "__main__":
    main()
