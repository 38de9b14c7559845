"""Sparse cost: does a row cost one expert however many experts there are?

Fit time per epoch and predict time per row of ``MoERegressor`` for
``n_experts`` in {1, 4, 16, 64, 256} at a fixed expert size (depth 2, width
256), on 100,000 Friedman rows with 20 features, and their ratio to
``n_experts=1``. The ideal ratio is 1.0 plus the router's cost.

* Fit: ``max_epochs`` epochs per phase, no early stopping. With one expert
  only the shared phase runs; with more, every epoch of the specialisation
  phase (each expert on its own cell) is compared with the shared phase's
  epochs of the one-expert model (one MLP on all rows). Median over epochs
  and repeats.
* Predict: ``predict`` on the 100,000 rows (routing included), median of
  ``--repeats``.

Run: ``python benchmarks/sparse_cost.py [--repeats 5] [--epochs 3] [--threads 2]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import make_friedman1

from skmoe import MoERegressor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--experts", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    X, y = make_friedman1(n_samples=args.rows, n_features=20, random_state=0)
    rows = []
    for L in args.experts:
        epochs, predicts = [], []
        for r in range(max(1, args.repeats // 2)):  # fits are long: fewer repeats
            model = MoERegressor(
                n_experts=L, expert_depth=2, expert_width=256, expert_members=1, max_epochs=args.epochs,
                early_stopping=False, random_state=r,
            ).fit(X, y)
            phase = "shared" if L == 1 else "specialise"
            epochs += [s for s, p in zip(model.history_["seconds"], model.history_["phase"]) if p == phase]
        model.predict(X[:1000])  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.predict(X)
            predicts.append(time.perf_counter() - start)
        rows.append((L, float(np.median(epochs)), float(np.median(predicts))))
        print(f"  n_experts={L}: epoch {rows[-1][1]:.2f} s, predict {rows[-1][2]:.3f} s", flush=True)

    base_fit, base_pred = rows[0][1], rows[0][2]
    print(f"\n{args.rows} rows x 20 features, depth 2, width 256, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"{'n_experts':>9s} {'epoch (s)':>10s} {'fit ratio':>9s} {'predict (s)':>11s} "
          f"{'us/row':>7s} {'predict ratio':>13s}")
    for L, fit, pred in rows:
        print(f"{L:9d} {fit:10.2f} {fit / base_fit:9.2f} {pred:11.3f} {1e6 * pred / args.rows:7.2f} "
              f"{pred / base_pred:13.2f}")


if __name__ == "__main__":
    main()
