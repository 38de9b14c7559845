"""Accuracy (and fit time) of bfloat16 autocast training against float32.

skmoe defaults with ``autocast=False`` and ``autocast=True`` on raw tables
from ``../shared/data`` (the manifest's ``drop`` columns removed), 80/20
split with ``random_state=seed`` (stratified for classification), training
rows capped at 20,000. Metrics: R2 (regression), ROC AUC (binary). Runs on
the device given (``--device cuda`` on a GPU, where autocast is meant to
speed training up; on the CPU it measures the accuracy effect only).

Run: ``python benchmarks/autocast_accuracy.py [--data-dir ../shared/data] [--device cpu] [--seeds 0 1]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

from skmoe import MoEClassifier, MoERegressor

DATASETS = ["california_housing.csv", "adult.csv.gz", "bikeshare_dc.csv"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--max-train", type=int, default=20_000)
    args = parser.parse_args()
    manifest = {d["file"]: d for d in json.loads((args.data_dir / "manifest.json").read_text())}
    print(f"{'dataset':24s} {'seed':>4s} {'metric':>7s} {'float32':>8s} {'bf16':>8s} {'diff':>8s} "
          f"{'fit f32 (s)':>11s} {'fit bf16 (s)':>12s}")
    diffs = []
    for name in DATASETS:
        info = manifest[name]
        df = pd.read_csv(args.data_dir / name).drop(columns=info["drop"])
        y = df.pop(info["target"])
        classif = info["task"] != "regression"
        for seed in args.seeds:
            X_tr, X_te, y_tr, y_te = train_test_split(
                df, y, test_size=0.2, random_state=seed, stratify=y if classif else None
            )
            if len(X_tr) > args.max_train:
                X_tr, y_tr = X_tr.sample(args.max_train, random_state=seed), y_tr.sample(args.max_train, random_state=seed)
            scores, times = [], []
            for autocast in (False, True):
                cls = MoEClassifier if classif else MoERegressor
                model = cls(random_state=seed, device=args.device, autocast=autocast)
                start = time.perf_counter()
                model.fit(X_tr, y_tr)
                times.append(time.perf_counter() - start)
                if classif:
                    scores.append(roc_auc_score(y_te, model.predict_proba(X_te)[:, 1]))
                else:
                    scores.append(r2_score(y_te, model.predict(X_te)))
            diffs.append(scores[1] - scores[0])
            metric = "AUC" if classif else "R2"
            print(f"{name:24s} {seed:4d} {metric:>7s} {scores[0]:8.4f} {scores[1]:8.4f} {diffs[-1]:+8.4f} "
                  f"{times[0]:11.1f} {times[1]:12.1f}", flush=True)
    print(f"mean difference (bf16 - float32): {np.mean(diffs):+.4f}; largest |difference| {np.max(np.abs(diffs)):.4f}")


if __name__ == "__main__":
    main()
