"""skmoe against scikit-learn's MLPRegressor and skorch, side by side in one run.

Same data (100,000 Friedman rows x 20 features, float64 in, as users pass
it), same active network (two hidden layers of 256 units, Adam at 1e-3,
minibatches of 256, no early stopping), same threads:

* scikit-learn ``MLPRegressor``, 5 epochs (``max_iter=5``);
* skorch ``NeuralNetRegressor`` on the equivalent torch MLP, 5 epochs, no
  validation split (float32 arrays, which skorch needs);
* skmoe with 1 expert, 5 epochs, and with 64 experts, 3 epochs per phase (3
  shared + 3 specialisation = 6 epochs, one more than the peers).

Prints fit time (median of ``--repeats``), predict throughput on the 100,000
rows (median of ``--repeats``) and single-row ``predict`` latency (median of
``--single`` calls), and skmoe's ratios to the peers. skorch is a
benchmark-only dependency (``pip install "skmoe[benchmarks]"``).

Run: ``python benchmarks/peers.py [--repeats 3] [--threads 2]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from skmoe import MoERegressor


def _skorch(seed: int):
    try:
        from skorch import NeuralNetRegressor
    except ImportError:
        raise SystemExit('This benchmark needs skorch: pip install "skmoe[benchmarks]".') from None

    torch.manual_seed(seed)
    module = torch.nn.Sequential(
        torch.nn.Linear(20, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 1),
    )
    return NeuralNetRegressor(
        module, max_epochs=5, batch_size=256, lr=1e-3, optimizer=torch.optim.Adam,
        train_split=None, verbose=0,
    )


MODELS = {
    "scikit-learn MLPRegressor": lambda seed: MLPRegressor(
        hidden_layer_sizes=(256, 256), max_iter=5, batch_size=256, learning_rate_init=1e-3,
        early_stopping=False, n_iter_no_change=1000, random_state=seed,
    ),
    "skorch NeuralNetRegressor": _skorch,
    "skmoe, 1 expert": lambda seed: MoERegressor(
        n_experts=1, expert_depth=2, expert_width=256, expert_members=1, batch_size=256, max_epochs=5,
        early_stopping=False, random_state=seed,
    ),
    "skmoe, 64 experts": lambda seed: MoERegressor(
        n_experts=64, expert_depth=2, expert_width=256, expert_members=1, batch_size=256, max_epochs=3,
        early_stopping=False, random_state=seed,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y = make_friedman1(n_samples=args.rows, n_features=20, random_state=0)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)[:, None]

    results = {}
    for name, make in MODELS.items():
        is_skorch = name.startswith("skorch")
        Xf, yf = (X32, y32) if is_skorch else (X, y)
        fits, predicts, singles = [], [], []
        for r in range(args.repeats):
            model = make(r)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                model.fit(Xf, yf)
                fits.append(time.perf_counter() - start)
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.predict(Xf)
            predicts.append(time.perf_counter() - start)
        for i in range(args.single):
            row = Xf[i : i + 1]
            start = time.perf_counter()
            model.predict(row)
            singles.append(time.perf_counter() - start)
        results[name] = (
            float(np.median(fits)), args.rows / float(np.median(predicts)), 1e3 * float(np.median(singles[10:]))
        )
        fit, tput, single = results[name]
        print(f"  {name}: fit {fit:.2f} s, predict {tput:,.0f} rows/s, single row {single:.3f} ms", flush=True)

    print(f"\n{args.rows} rows x 20 features, width 256, depth 2, batch 256, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'model':28s} {'fit (s)':>8s} {'predict (rows/s)':>17s} {'single row (ms)':>16s}")
    for name, (fit, tput, single) in results.items():
        print(f"{name:28s} {fit:8.2f} {tput:17,.0f} {single:16.3f}")
    sk, sko = results["scikit-learn MLPRegressor"], results["skorch NeuralNetRegressor"]
    for name in ("skmoe, 1 expert", "skmoe, 64 experts"):
        fit, tput, single = results[name]
        print(f"{name}: fit {fit / sk[0]:.2f}x scikit-learn's time, {fit / sko[0]:.2f}x skorch's; "
              f"predict throughput {tput / sk[1]:.2f}x scikit-learn's; single row {single / sk[2]:.2f}x "
              "scikit-learn's latency")


if __name__ == "__main__":
    main()
