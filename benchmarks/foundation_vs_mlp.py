"""skmoe defaults against scikit-learn's MLP on numeric columns of two tables.

Protocol (the foundation issue's acceptance check): ``california_housing`` and
``adult`` from ``../shared/data``, numeric columns only, rows with a missing
value dropped, 80/20 split with ``random_state=0`` (stratified for ``adult``).
The MLP baseline is ``MLPRegressor`` / ``MLPClassifier`` with hidden layers
(256, 256) and early stopping, after a ``StandardScaler``.

Run: ``python benchmarks/foundation_vs_mlp.py [--data-dir ../shared/data]``
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
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import MoEClassifier, MoERegressor


def load_numeric(data_dir: Path, name: str):
    manifest = {d["name"]: d for d in json.loads((data_dir / "manifest.json").read_text())}
    info = manifest[name]
    df = pd.read_csv(data_dir / info["file"]).drop(columns=info["drop"])
    y = df.pop(info["target"])
    X = df.select_dtypes("number")
    keep = X.notna().all(axis=1)
    return X[keep], y[keep], info["task"]


def compare(data_dir: Path, name: str, seed: int = 0, verbose: bool = False) -> dict:
    """Test scores of skmoe's defaults and the MLP baseline on one dataset."""
    X, y, task = load_numeric(data_dir, name)
    classif = task != "regression"
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y if classif else None
    )
    Estimator, MLP = (MoEClassifier, MLPClassifier) if classif else (MoERegressor, MLPRegressor)
    models = {
        "skmoe": Estimator(random_state=seed),
        "sklearn MLP": make_pipeline(
            StandardScaler(),
            MLP(hidden_layer_sizes=(256, 256), early_stopping=True, random_state=seed),
        ),
    }
    scores = {}
    for label, model in models.items():
        start = time.perf_counter()
        model.fit(X_tr, y_tr)
        seconds = time.perf_counter() - start
        if classif:
            proba = model.predict_proba(X_te)[:, 1]
            metric, score = "ROC AUC", roc_auc_score(y_te == model.classes_[1], proba)
        else:
            metric, score = "R2", r2_score(y_te, model.predict(X_te))
        scores[label] = score
        if verbose:
            print(f"{name:20s} {label:14s} {metric:8s} {score:7.4f} {seconds:7.1f}", flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    default_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data-dir", type=Path, default=default_dir)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'dataset':20s} {'model':14s} {'metric':8s} {'score':>7s} {'fit s':>7s}")
    for name in ["california_housing", "adult"]:
        compare(args.data_dir, name, args.seed, verbose=True)


if __name__ == "__main__":
    main()
