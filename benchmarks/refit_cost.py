"""Fit time of ``refit=True`` against the defaults, side by side in one process.

On each named table of the accuracy suite (seed 0, its split), the two fits
(``refit=False`` and the default ``refit="auto"``) alternate ``REPEATS``
times, one thread each; the script prints every fit with its epochs per
phase, and the median of the per-repeat ratios refit / no refit. The table
``quickstart`` is the README quickstart's split of the bundled California
table, fitted with torch's default threads, as the quickstart does.

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
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repeats):
        for refit in (False, True):
            model = A.make_model("skmoe", task, 0, {**params, "refit": "auto" if refit else False})
            start = time.perf_counter()
            model.fit(X_tr, y_tr)
            times[refit].append(time.perf_counter() - start)
            epochs = dict(Counter(model.history_["phase"]))
            score = A.evaluate(model, X_te, y_te, task)["score"]
            print(f"{name} repeat {r} refit={refit!s:5s} score {score:.4f} "
                  f"fit {times[refit][-1]:.1f}s epochs {epochs}", flush=True)
    ratio = statistics.median(b / a for a, b in zip(times[False], times[True]))
    print(f"{name}: median refit / defaults fit time {ratio:.2f}", flush=True)
