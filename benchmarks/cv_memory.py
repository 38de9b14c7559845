"""Resident memory across the folds of ``cross_val_score``: does a fit leak?

20 folds of ``cross_val_score`` (``n_jobs=1``, so every fit runs in this
process) on 50,000 rows of the diamonds table (raw DataFrame, categorical
columns included), skmoe with its default architecture and ``max_epochs``
kept small so that the run takes minutes: memory leaks come from what a fit
leaves behind (tensors, optimizer state, autograd graphs, caches), not from
the number of epochs. The scorer records the process's resident set size
(RSS, from ``/proc/self/status``) after each fold's fit and score, after a
``gc.collect()``.

Prints RSS after folds 1, 2, 5, 10 and 20 and the growth from fold 2 (the
first fold also pays for one-off allocations: thread pools, BLAS buffers) to
fold 20, and a pickle and a saved model of the last fold's estimator loaded
back 20 times.

Run: ``python benchmarks/cv_memory.py [--data-dir ../shared/data] [--folds 20] [--rows 50000]``
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.model_selection import KFold, cross_val_score

import skmoe
from skmoe import MoERegressor


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found: this benchmark reads /proc (Linux).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--folds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--max-epochs", type=int, default=3)
    args = parser.parse_args()

    info = next(
        d for d in json.loads((args.data_dir / "manifest.json").read_text())
        if d["file"].startswith("diamonds")
    )
    df = pd.read_csv(args.data_dir / info["file"]).drop(columns=info["drop"])
    df = df.sample(n=min(args.rows, len(df)), random_state=0).reset_index(drop=True)
    y = df.pop(info["target"]).to_numpy(dtype=float)

    rss = []

    def scorer(est, X, y_true):
        score = est.score(X, y_true)
        gc.collect()
        rss.append(rss_mib())
        return score

    model = MoERegressor(
        expert_width=256, expert_members=1, max_epochs=args.max_epochs, early_stopping=False, random_state=0
    )
    start = time.perf_counter()
    before = rss_mib()
    scores = cross_val_score(model, df, y, cv=KFold(args.folds, shuffle=True, random_state=0), scoring=scorer)
    seconds = time.perf_counter() - start

    print(f"{len(df)} rows x {df.shape[1]} columns, {args.folds} folds, max_epochs={args.max_epochs}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {seconds:.0f} s")
    print(f"mean R2 {np.mean(scores):.4f}")
    print(f"RSS before: {before:.0f} MiB")
    for fold in (1, 2, 5, 10, args.folds):
        if fold <= len(rss):
            print(f"RSS after fold {fold:2d}: {rss[fold - 1]:.0f} MiB")
    print(f"growth fold 2 -> {args.folds}: {rss[-1] - rss[1]:+.1f} MiB "
          f"(max over folds 2..{args.folds}: {max(rss[1:]) - rss[1]:+.1f} MiB)")

    last = clone(model).fit(df, y)
    data = pickle.dumps(last)
    with tempfile.TemporaryDirectory() as tmp:
        path = last.save(Path(tmp) / "model")
        loads = []
        for _ in range(20):
            pickle.loads(data).predict(df.head(1000))
            skmoe.load(path).predict(df.head(1000))
            gc.collect()
            loads.append(rss_mib())
    print(f"20 pickle + model-file loads: RSS {loads[0]:.0f} -> {loads[-1]:.0f} MiB "
          f"({loads[-1] - loads[0]:+.1f} MiB)")


if __name__ == "__main__":
    main()
