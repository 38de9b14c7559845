"""Fit and predict cost of skmoe's defaults beside its peers, side by side.

On each table of the accuracy suite (its protocol, seed 0), the models are
fitted one after another in this process, ``--repeats`` times in alternating
order; the script prints the median fit seconds of each model and its ratio
to skmoe's, the batch predict throughput on the test rows (rows/s, median of
the repeats) and the single-row latency (median over ``--calls`` calls of
``predict`` on one row). Peers: scikit-learn's MLP pipeline (the suite's
``mlp``), ``HistGradientBoosting``, LightGBM and CatBoost (those two when
installed: ``pip install -e ".[benchmarks]"``).

Usage::

    python benchmarks/speed.py --data-dir ../shared/data
    python benchmarks/speed.py --datasets california_housing --repeats 3
    python benchmarks/speed.py --skmoe-params '{"lr_schedule": "cosine", "max_epochs": 40}'
    python benchmarks/speed.py --million --repeats 1

``--million`` fits a generated table instead: 1,000,000 training rows of 20
numeric columns (normal, skewed and discrete, as in ``scaling.py``) and 5
categorical ones (4 to 200 levels, and one of 10,000 levels with Zipf-like
frequencies), a regression target of both with noise; scored on 100,000 more
rows. Models: skmoe, LightGBM and ``HistGradientBoosting`` (which takes at
most 255 levels a column, so it gets the 10,000-level column as its codes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as A  # noqa: E402
import scaling  # noqa: E402

PEERS = ("mlp", "hgb", "lightgbm", "catboost")
_NEEDS = {"lightgbm": "lightgbm", "catboost": "catboost"}


def available(models: list[str]) -> list[str]:
    return [m for m in models if m not in _NEEDS or importlib.util.find_spec(_NEEDS[m])]


def million_table(n_train: int = 1_000_000, n_test: int = 100_000, seed: int = 0):
    """The generated table of ``--million``: ``(X_tr, X_te, y_tr, y_te)``."""
    import numpy as np
    import pandas as pd

    n = n_train + n_test
    X, y = scaling.table(n, 20, seed)
    rng = np.random.default_rng(seed + 1)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)])
    for i, levels in enumerate((10_000, 4, 12, 50, 200)):
        # Zipf-like frequencies: a few common levels, a long tail of rare ones.
        p = 1.0 / np.arange(1, levels + 1) ** 0.8
        codes = rng.choice(levels, size=n, p=p / p.sum())
        y = y + rng.normal(scale=0.5, size=levels)[codes]
        frame[f"c{i}"] = pd.Categorical.from_codes(codes, [f"L{j}" for j in range(levels)])
    return frame.iloc[:n_train], frame.iloc[n_train:], y[:n_train], y[n_train:]


def _for_model(name: str, X):
    """HistGradientBoosting takes at most 255 levels a column: codes instead."""
    if name != "hgb" or "c0" not in X:
        return X
    return X.assign(c0=X["c0"].cat.codes.astype("float64"))


def measure(name: str, task: str, parts, skmoe_params: dict | None, calls: int) -> dict:
    """One fit of ``name``: fit seconds, score, batch rows/s and one-row latency."""
    X_tr, X_te, y_tr, y_te = parts
    X_tr, X_te = _for_model(name, X_tr), _for_model(name, X_te)
    model = A.make_model(name, task, 0, skmoe_params if name == "skmoe" else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(X_tr, y_tr)
        fit = time.perf_counter() - start
        predict = model.predict_proba if task != "regression" else model.predict
        start = time.perf_counter()
        predict(X_te)
        batch = len(X_te) / (time.perf_counter() - start)
        row = X_te.iloc[:1]
        predict(row)  # warm
        latencies = []
        for _ in range(calls):
            start = time.perf_counter()
            predict(row)
            latencies.append(time.perf_counter() - start)
    score = A.evaluate(model, X_te, y_te, task)["score"]
    if name == "skmoe":
        phases = model.history_["phase"]
        print(f"<!-- skmoe: {len(phases)} epochs, {phases.count('shared')} shared; "
              f"{fit:.1f} s -->", flush=True)
    return {"fit": fit, "score": score, "rows_per_s": batch, "latency_ms": 1e3 * statistics.median(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", nargs="*")
    parser.add_argument("--models", nargs="+", default=["skmoe", *PEERS])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--calls", type=int, default=1000, help="single-row predict calls per fit")
    parser.add_argument("--skmoe-params", type=json.loads, default=None)
    parser.add_argument("--million", action="store_true", help="the generated 1M-row table instead")
    args = parser.parse_args()
    print("| dataset | model | fit s (median) | fit / skmoe | score | predict rows/s | 1-row ms |")
    print("|---|---|---|---|---|---|---|")
    if args.million:
        models = available([m for m in args.models if m in ("skmoe", "lightgbm", "hgb")])
        report("million", "regression", million_table(), models, args)
        return
    models = available(args.models)
    manifest = json.loads((args.data_dir / "manifest.json").read_text())
    for info in manifest:
        if args.datasets and info["name"] not in args.datasets:
            continue
        X, y = A.load(args.data_dir, info)
        report(info["name"], info["task"], A.split(X, y, info["task"], 0), models, args)


def report(dataset: str, task: str, parts, models: list[str], args) -> None:
    """Fit every model ``args.repeats`` times (alternating order); print medians."""
    runs = {m: [] for m in models}
    for r in range(args.repeats):
        for name in models if r % 2 == 0 else models[::-1]:
            runs[name].append(measure(name, task, parts, args.skmoe_params, args.calls))
    base = statistics.median(x["fit"] for x in runs.get("skmoe", runs[models[0]]))
    for name in models:
        fit = statistics.median(x["fit"] for x in runs[name])
        rows = statistics.median(x["rows_per_s"] for x in runs[name])
        latency = statistics.median(x["latency_ms"] for x in runs[name])
        print(f"| {dataset} | {name} | {fit:.1f} | {fit / base:.3f} | "
              f"{runs[name][0]['score']:.4f} | {rows:,.0f} | {latency:.2f} |", flush=True)


if __name__ == "__main__":
    main()
