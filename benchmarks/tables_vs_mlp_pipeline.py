"""skmoe on raw business tables against scikit-learn's MLP in a preprocessing pipeline.

Every dataset of ``../shared/data``: the manifest's ``drop`` columns removed,
nothing else done to the table. 80/20 split with ``random_state=0``
(stratified for classification). skmoe gets the raw DataFrame with default
settings; the baseline is a ``Pipeline`` of a ``ColumnTransformer`` (median
imputation and ``StandardScaler`` for numeric columns, most-frequent
imputation and ``OneHotEncoder(handle_unknown="ignore")`` for the object,
category and bool columns) and ``MLPRegressor`` / ``MLPClassifier`` with
hidden layers (256, 256) and early stopping. Metrics: R2 (regression), ROC AUC
(binary), accuracy (multiclass).

Run: ``python benchmarks/tables_vs_mlp_pipeline.py [--data-dir ../shared/data] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmoe import MoEClassifier, MoERegressor

CATEGORICAL = ["object", "category", "bool", "string"]


def load(data_dir: Path, info: dict):
    df = pd.read_csv(data_dir / info["file"]).drop(columns=info["drop"])
    y = df.pop(info["target"])
    return df, y


def mlp_pipeline(classif: bool, seed: int):
    pre = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                make_column_selector(dtype_exclude=CATEGORICAL),
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                make_column_selector(dtype_include=CATEGORICAL),
            ),
        ]
    )
    MLP = MLPClassifier if classif else MLPRegressor
    return make_pipeline(
        pre, MLP(hidden_layer_sizes=(256, 256), early_stopping=True, random_state=seed)
    )


def score(model, X, y, task: str) -> float:
    if task == "regression":
        return r2_score(y, model.predict(X))
    if task == "binary":
        return roc_auc_score(y == model.classes_[1], model.predict_proba(X)[:, 1])
    return accuracy_score(y, model.predict(X))


def main() -> None:
    parser = argparse.ArgumentParser()
    default_dir = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data-dir", type=Path, default=default_dir)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    manifest = json.loads((args.data_dir / "manifest.json").read_text())
    header = f"| {'dataset':22s} | {'metric':8s} | {'skmoe':>7s} | {'MLP pipeline':>12s} | {'skmoe s':>7s} | {'MLP s':>6s} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    wins = 0
    for info in manifest:
        if args.only and info["name"] not in args.only:
            continue
        X, y = load(args.data_dir, info)
        task = info["task"]
        classif = task != "regression"
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.2, random_state=args.seed, stratify=y if classif else None
        )
        Estimator = MoEClassifier if classif else MoERegressor
        results = []
        for model in (Estimator(random_state=args.seed), mlp_pipeline(classif, args.seed)):
            start = time.perf_counter()
            model.fit(X_tr, y_tr)
            seconds = time.perf_counter() - start
            results.append((score(model, X_te, y_te, task), seconds))
        metric = {"regression": "R2", "binary": "ROC AUC", "multiclass": "accuracy"}[task]
        (s_moe, t_moe), (s_mlp, t_mlp) = results
        wins += s_moe > s_mlp
        print(
            f"| {info['name']:22s} | {metric:8s} | {s_moe:7.4f} | {s_mlp:12.4f} | {t_moe:7.1f} | {t_mlp:6.1f} |",
            flush=True,
        )
    print(f"\nskmoe ahead on {wins} datasets")


if __name__ == "__main__":
    main()
