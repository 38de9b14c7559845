"""Accuracy suite: skmoe defaults against gradient boosting and tabular networks.

Protocol (issue 6): every dataset of ``../shared/data``; seeds 0, 1, 2; the
manifest's ``drop`` columns removed; an 80/20 split with the seed as
``random_state`` (stratified for classification); training rows capped at
50,000 by random subsampling (same seed). Metrics: R2 (regression), ROC AUC
(binary), accuracy and log loss (multiclass; accuracy ranks).

Models, each with its defaults and the seed:

* ``skmoe``: ``MoERegressor`` / ``MoEClassifier`` on the raw DataFrame;
* ``lightgbm``: ``LGBMRegressor`` / ``LGBMClassifier`` (category columns native);
* ``catboost``: ``CatBoostRegressor`` / ``CatBoostClassifier`` with the
  categorical columns declared (as text; missing values a level of their own);
* ``xgboost``: ``XGBRegressor`` / ``XGBClassifier`` with
  ``enable_categorical=True`` (the category columns native; labels encoded as
  0..C-1, which XGBoost requires);
* ``hgb``: ``HistGradientBoosting*`` (categorical from dtype);
* ``mlp``: scikit-learn's MLP (256, 256) with early stopping, after median /
  most-frequent imputation, scaling and one-hot encoding;
* ``realmlp``, ``tabm``: pytabkit's ``RealMLP_TD_*`` and ``TabM_D_*``, after a
  median imputation of numeric columns (pytabkit refuses missing values there).

Every (dataset, seed, model) result is appended to ``--results`` (JSON lines)
as soon as it exists, and found there on the next run, so a long suite can
be run in pieces and resumed. ``--report`` prints, from that file, a table
per dataset (mean over seeds), the mean rank and mean normalised score
(0 = worst, 1 = best model of the dataset and seed) and fit times.

Usage::

    pip install -e ".[benchmarks]"          # lightgbm, catboost, pytabkit
    python benchmarks/accuracy.py --data-dir ../shared/data
    python benchmarks/accuracy.py --models skmoe lightgbm hgb mlp --datasets adult --seeds 0
    python benchmarks/accuracy.py --report
    # a candidate default, recorded as its own model, reported beside the others:
    python benchmarks/accuracy.py --models skmoe --skmoe-params '{"learning_rate": 0.003}' --label skmoe-lr3e-3
    python benchmarks/accuracy.py --report --models skmoe skmoe-lr3e-3 lightgbm hgb mlp
    # each candidate minus a reference, table by table, on the seeds both ran:
    python benchmarks/accuracy.py --report --paired skmoe --models skmoe-lr3e-3
    # "bags" (a suite-only key): the mean of that many whole fits, seeds seed, seed + 1000, ...
    python benchmarks/accuracy.py --models skmoe --skmoe-params '{"bags": 2}' --label skmoe-bag2
    # "refit_stretch" (suite-only, a candidate): every refit runs that many times the kept epochs
    python benchmarks/accuracy.py --models skmoe --skmoe-params '{"refit_stretch": 1.4}' --label skmoe-refit14
    # pytabkit's models on a GPU (scores only; fit times there are not CPU times):
    python benchmarks/accuracy.py --models realmlp tabm --peer-device cuda
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, log_loss, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MODELS = ("skmoe", "lightgbm", "hgb", "mlp", "realmlp", "tabm", "catboost", "xgboost")
PYTABKIT = ("realmlp", "tabm")
NEURAL = ("skmoe", "mlp", "realmlp", "tabm")
MAX_TRAIN = 50_000
CATEGORICAL = ["object", "category", "bool", "string"]
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "accuracy.jsonl"


def load(data_dir: Path, info: dict) -> tuple[pd.DataFrame, pd.Series]:
    df = pd.read_csv(data_dir / info["file"]).drop(columns=info["drop"])
    y = df.pop(info["target"])
    for col in info["cat_cols"]:
        if col in df:
            df[col] = df[col].astype("category")
    return df, y


def split(X, y, task: str, seed: int):
    classif = task != "regression"
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y if classif else None
    )
    if len(X_tr) > MAX_TRAIN:
        keep = np.random.default_rng(seed).choice(len(X_tr), MAX_TRAIN, replace=False)
        X_tr, y_tr = X_tr.iloc[np.sort(keep)], y_tr.iloc[np.sort(keep)]
    return X_tr, X_te, y_tr, y_te


_KEPT_BY = None  # the engine's EpochPlan.kept_by, before _stretch_refits


def _stretch_refits(factor: float) -> None:
    """Suite-only ``refit_stretch``: every refit in this process runs ``factor``
    times the epochs its early-stopped fit kept, rounded (a candidate measured
    on 2026-12-03; the engine has no such setting). 1 restores the engine's plan."""
    global _KEPT_BY
    from skmoe._torch.training import EpochPlan

    if _KEPT_BY is None:
        if factor == 1:  # never stretched: the engine's plan stays untouched
            return
        _KEPT_BY = EpochPlan.kept_by.__func__

    def kept_by(cls, history):
        plan = _KEPT_BY(cls, history)
        return cls(int(np.rint(plan.shared * factor)), np.rint(plan.experts * factor).astype(np.int64))

    EpochPlan.kept_by = classmethod(_KEPT_BY if factor == 1 else kept_by)


def make_model(name: str, task: str, seed: int, skmoe_params: dict | None = None,
               peer_device: str = "cpu"):
    classif = task != "regression"
    if name == "skmoe":
        from sklearn.ensemble import VotingClassifier, VotingRegressor

        from skmoe import MoEClassifier, MoERegressor

        params = dict(skmoe_params or {})
        bags = params.pop("bags", 1)
        _stretch_refits(params.pop("refit_stretch", 1.0))
        cls = MoEClassifier if classif else MoERegressor
        if bags == 1:
            return cls(random_state=seed, **params)
        # The mean of whole fits with other seeds: other prototypes, cells and members.
        fits = [(f"fit{b}", cls(random_state=seed + 1000 * b, **params)) for b in range(bags)]
        return VotingClassifier(fits, voting="soft") if classif else VotingRegressor(fits)
    if name == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if classif else lightgbm.LGBMRegressor
        return cls(random_state=seed, verbose=-1)
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classif else HistGradientBoostingRegressor
        return cls(random_state=seed)
    if name == "mlp":
        pre = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             make_column_selector(dtype_exclude=CATEGORICAL)),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                  OneHotEncoder(handle_unknown="ignore")),
             make_column_selector(dtype_include=CATEGORICAL)),
        ])
        mlp = (MLPClassifier if classif else MLPRegressor)(
            hidden_layer_sizes=(256, 256), early_stopping=True, random_state=seed
        )
        return make_pipeline(pre, mlp)
    if name == "catboost":
        return _catboost(classif, seed)
    if name == "xgboost":
        return _xgboost(classif, seed)
    if name in ("realmlp", "tabm"):
        import pytabkit

        kind = {"realmlp": "RealMLP_TD", "tabm": "TabM_D"}[name]
        cls = getattr(pytabkit, f"{kind}_{'Classifier' if classif else 'Regressor'}")
        # pytabkit refuses missing values in numeric columns: median-impute them
        # and pass the categorical columns through with their dtype.
        impute = ColumnTransformer(
            [("num", SimpleImputer(strategy="median"), make_column_selector(dtype_exclude=CATEGORICAL))],
            remainder="passthrough", verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        return make_pipeline(impute, cls(random_state=seed, device=peer_device))
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def _catboost(classif: bool, seed: int):
    """CatBoost at its defaults, with the table's categorical columns declared
    (as text, missing values as a level of their own)."""
    import catboost
    from sklearn.base import BaseEstimator

    class CatBoost(BaseEstimator):
        def fit(self, X, y):
            cls = catboost.CatBoostClassifier if classif else catboost.CatBoostRegressor
            self.cat_ = [c for c in X.columns if str(X[c].dtype) in CATEGORICAL]
            self.model_ = cls(random_seed=seed, verbose=0, cat_features=self.cat_, allow_writing_files=False)
            self.model_.fit(self._prepare(X), y)
            if classif:
                self.classes_ = self.model_.classes_
            return self

        def _prepare(self, X):
            X = X.copy()
            for c in self.cat_:
                X[c] = X[c].astype(str).fillna("(missing)")
            return X

        def predict(self, X):
            out = self.model_.predict(self._prepare(X))
            return out.ravel() if not classif else out.reshape(-1)

        def predict_proba(self, X):
            return self.model_.predict_proba(self._prepare(X))

    return CatBoost()


def _xgboost(classif: bool, seed: int):
    """XGBoost at its defaults with native categorical columns; class labels
    encoded to 0..C-1 (and back) around it."""
    import xgboost
    from sklearn.base import BaseEstimator
    from sklearn.preprocessing import LabelEncoder

    class XGBoost(BaseEstimator):
        def fit(self, X, y):
            cls = xgboost.XGBClassifier if classif else xgboost.XGBRegressor
            self.model_ = cls(enable_categorical=True, tree_method="hist", random_state=seed)
            if classif:
                self.encoder_ = LabelEncoder().fit(y)
                self.classes_ = self.encoder_.classes_
                y = self.encoder_.transform(y)
            self.model_.fit(X, y)
            return self

        def predict(self, X):
            out = self.model_.predict(X)
            return self.encoder_.inverse_transform(out) if classif else out

        def predict_proba(self, X):
            return self.model_.predict_proba(X)

    return XGBoost()


def evaluate(model, X, y, task: str) -> dict:
    if task == "regression":
        return {"score": r2_score(y, model.predict(X))}
    proba = model.predict_proba(X)
    classes = np.asarray(model.classes_)
    if task == "binary":
        return {"score": roc_auc_score(y == classes[1], proba[:, 1])}
    return {
        "score": accuracy_score(y, classes[proba.argmax(axis=1)]),
        "log_loss": log_loss(y, proba, labels=classes),
    }


def fit_and_score(name: str, task: str, seed: int, X_tr, y_tr, X_te, y_te,
                  skmoe_params: dict | None = None, peer_device: str = "cpu") -> dict:
    """Fit one model at its defaults (or ``skmoe_params``); its fit seconds and test scores."""
    model = make_model(name, task, seed, skmoe_params, peer_device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X_tr, y_tr)
        seconds = time.perf_counter() - start
    return dict(fit_seconds=seconds, **evaluate(model, X_te, y_te, task))


def run(args) -> None:
    manifest = json.loads((args.data_dir / "manifest.json").read_text())
    done = {(r["dataset"], r["seed"], r["model"]) for r in read_results(args.results)}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for info in manifest:
        if args.datasets and info["name"] not in args.datasets:
            continue
        X, y = load(args.data_dir, info)
        for seed in args.seeds:
            X_tr, X_te, y_tr, y_te = split(X, y, info["task"], seed)
            for name in args.models:
                label = args.label if args.label and name == "skmoe" else name
                if (info["name"], seed, label) in done and not args.redo:
                    continue
                scores = fit_and_score(name, info["task"], seed, X_tr, y_tr, X_te, y_te,
                                       args.skmoe_params, args.peer_device)
                record = dict(dataset=info["name"], task=info["task"], seed=seed, model=label,
                              n_train=len(X_tr), **scores)
                if name in PYTABKIT and args.peer_device != "cpu":
                    # Scores are the model's; the fit time is not a CPU time.
                    record["device"] = args.peer_device
                with args.results.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"{info['name']:22s} seed {seed} {label:9s} score {record['score']:.4f} "
                      f"fit {record['fit_seconds']:7.1f}s", flush=True)


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(path: Path, models: list[str] | None = None) -> None:
    """Markdown tables from the results file, for the (dataset, seed) pairs
    that have a result for every one of ``models`` (default: all on file)."""
    frame = pd.DataFrame(read_results(path))
    if frame.empty:
        print("no results yet")
        return
    frame = frame.drop_duplicates(["dataset", "seed", "model"], keep="last")
    on_file = list(dict.fromkeys(frame.model))
    models = models or [m for m in MODELS if m in on_file] + [m for m in on_file if m not in MODELS]
    frame = frame[frame.model.isin(models)]
    # Normalised score and rank among the models run on the same dataset and seed.
    complete = frame.groupby(["dataset", "seed"]).model.transform("nunique") == len(models)
    frame = frame[complete].copy()
    grouped = frame.groupby(["dataset", "seed"]).score
    lo, hi = grouped.transform("min"), grouped.transform("max")
    frame["normalised"] = ((frame.score - lo) / (hi - lo).where(hi > lo, 1.0)).where(hi > lo, 1.0)
    frame["rank"] = grouped.rank(ascending=False, method="average")
    metric = {"regression": "R2", "binary": "ROC AUC", "multiclass": "accuracy"}
    print("| dataset | metric | " + " | ".join(models) + " |")
    print("|---|---|" + "---|" * len(models))
    for (dataset, task), part in frame.groupby(["dataset", "task"], sort=False):
        means = part.groupby("model").score.mean()
        cells = [f"{means[m]:.4f}" if m in means else "" for m in models]
        print(f"| {dataset} | {metric[task]} | " + " | ".join(cells) + " |")
        if task == "multiclass" and "log_loss" in part:
            losses = part.groupby("model").log_loss.mean()
            print(f"| {dataset} | log loss | " + " | ".join(f"{losses[m]:.4f}" for m in models) + " |")
    print("| **mean rank** | | " + " | ".join(f"{frame[frame.model == m]['rank'].mean():.2f}" for m in models) + " |")
    print("| **mean normalised score** | | "
          + " | ".join(f"{frame[frame.model == m].normalised.mean():.3f}" for m in models) + " |")
    # The first test: rank among the neural models alone (skmoe
    # candidates count as neural).
    neural = frame[frame.model.map(lambda m: m.split("-")[0] in NEURAL)].copy()
    if neural.model.nunique() > 1:
        neural["rank"] = neural.groupby(["dataset", "seed"]).score.rank(ascending=False, method="average")
        ranks = neural.groupby("model")["rank"].mean()
        print("| **mean rank among neural models** | | "
              + " | ".join(f"{ranks[m]:.2f}" if m in ranks else "" for m in models) + " |")
    print(f"\nCPU fit seconds (mean over the seeds fitted on the CPU; {frame.seed.nunique()} "
          f"seed(s), {frame.dataset.nunique()} dataset(s); '-': fitted on a GPU only):\n")
    print("| dataset | " + " | ".join(models) + " |")
    print("|---|" + "---|" * len(models))
    on_cpu = frame[frame.get("device", pd.Series("cpu", index=frame.index)).fillna("cpu") == "cpu"]
    for dataset, part in on_cpu.groupby("dataset", sort=False):
        means = part.groupby("model").fit_seconds.mean()
        print(f"| {dataset} | " + " | ".join(f"{means[m]:.1f}" if m in means else "-" for m in models) + " |")


def paired(path: Path, reference: str, models: list[str]) -> None:
    """Each model's score minus ``reference``'s, table by table, over the seeds
    both ran (so a stopped run still compares), with the mean fit-seconds
    ratio on those seeds."""
    frame = pd.DataFrame(read_results(path)).drop_duplicates(["dataset", "seed", "model"], keep="last")
    wide = frame.pivot_table(index=["dataset", "seed"], columns="model", values=["score", "fit_seconds"])
    print("| dataset | " + " | ".join(f"{m} - {reference} (seeds; fit ratio)" for m in models) + " |")
    print("|---|" + "---|" * len(models))
    for dataset in dict.fromkeys(frame.dataset):
        seeds = wide.loc[dataset]  # (seed, (value, model))
        cells = []
        for m in models:
            both = seeds[[("score", m), ("score", reference)]].dropna() if m in wide["score"] else []
            if len(both) == 0:
                cells.append("")
                continue
            diff = (both[("score", m)] - both[("score", reference)]).mean()
            fit = seeds.loc[both.index, "fit_seconds"]
            cells.append(f"{diff:+.4f} ({len(both)}; {fit[m].mean() / fit[reference].mean():.2f}x)")
        print(f"| {dataset} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", nargs="*")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"models to fit: {', '.join(MODELS)} (default: all); with "
                        "--report, the models (or labels) to report on")
    parser.add_argument("--skmoe-params", type=json.loads, default=None,
                        help="JSON of skmoe parameters to try instead of the defaults")
    parser.add_argument("--label", help="name under which --skmoe-params results are recorded")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--redo", action="store_true", help="refit results already on file")
    parser.add_argument("--report", action="store_true", help="only print the tables")
    parser.add_argument("--paired", metavar="REFERENCE",
                        help="with --report: each of --models minus REFERENCE, over the seeds both ran")
    parser.add_argument("--peer-device", default="cpu",
                        help="device for pytabkit's models (cuda: scores only; their fit "
                             "times are then marked and left out of the CPU comparison)")
    args = parser.parse_args()
    if args.skmoe_params and not args.label:
        parser.error("--skmoe-params needs a --label to record its results under")
    if not args.report:
        unknown = set(args.models or ()) - set(MODELS)
        if unknown:
            parser.error(f"unknown models {sorted(unknown)}; choose from {MODELS}")
        args.models = args.models or list(MODELS)
        run(args)
        report(args.results, [args.label if m == "skmoe" and args.label else m for m in args.models])
    elif args.paired:
        paired(args.results, args.paired, args.models or [])
    else:
        report(args.results, args.models)


if __name__ == "__main__":
    main()
