"""Fit time of the refit on all rows against one fit, side by side in one process.

On each named table of the accuracy suite (seed 0, its split), three fits
alternate ``REPEATS`` times, one thread each: ``refit=False`` (one
early-stopped fit of all members), ``probe_members=None`` (the refit after an
early-stopped fit of all members) and the defaults (the refit after a probe of
``probe_members=2`` members). The script prints every fit with its score and
its epochs per phase, and for the last two the median of the per-repeat
ratios to ``refit=False``. The table ``quickstart`` is the README
quickstart's split of the bundled California table, fitted with torch's
default threads, as the quickstart does.

Run: ``python benchmarks/refit_cost.py REPEATS TABLE [TABLE ...]`` (for
example ``2 ames_housing telco_churn``), from the repository root, with
``../shared/data``.
"""

import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, "benchmarks")
import accuracy as A  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skmoe.datasets import load_california_housing  # noqa: E402

SETTINGS = {
    "refit=False": {"refit": False},
    "probe_members=None": {"probe_members": None},
    "defaults": {},
}


def table(name: str) -> tuple[str, list, dict]:
    """The task, the split ``X_tr, X_te, y_tr, y_te`` and the fixed parameters."""
    if name == "quickstart":
        X, y = load_california_housing(numeric_only=True)
        return "regression", train_test_split(X, y, test_size=0.2, random_state=0), {}
    info = {m["name"]: m for m in json.loads(Path("../shared/data/manifest.json").read_text())}[name]
    X, y = A.load(Path("../shared/data"), info)
    return info["task"], A.split(X, y, info["task"], 0), {"n_threads": 1}


repeats, names = int(sys.argv[1]), sys.argv[2:]
for name in names:
    task, (X_tr, X_te, y_tr, y_te), params = table(name)
    times: dict[str, list[float]] = {label: [] for label in SETTINGS}
    for r in range(repeats):
        for label, setting in SETTINGS.items():
            model = A.make_model("skmoe", task, 0, {**params, **setting})
            start = time.perf_counter()
            model.fit(X_tr, y_tr)
            times[label].append(time.perf_counter() - start)
            epochs = dict(Counter(model.history_["phase"]))
            score = A.evaluate(model, X_te, y_te, task)["score"]
            print(f"{name} repeat {r} {label:18s} score {score:.4f} "
                  f"fit {times[label][-1]:.1f}s epochs {epochs}", flush=True)
    for label in list(SETTINGS)[1:]:
        ratio = statistics.median(b / a for a, b in zip(times["refit=False"], times[label]))
        print(f"{name}: median {label} / refit=False fit time {ratio:.2f}", flush=True)
