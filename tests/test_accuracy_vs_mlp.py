"""Acceptance check: skmoe's defaults beat scikit-learn's MLP on real tables.

``california_housing`` and ``adult`` from the shared data folder, whole
tables (categorical columns included) under the accuracy suite's protocol
(``benchmarks/accuracy.py``: drop columns, 80/20 split with
``random_state=0``); the MLP is the suite's preprocessing pipeline (imputing,
scaling, one-hot encoding). Slow (about three minutes on two cores): run with
``python -m pytest -m slow``.

This used to use the numeric columns only (``benchmarks/foundation_vs_mlp.py``).
With the piecewise-linear view (``numeric_bins=16``) the defaults fell
0.004 ROC AUC below the MLP on adult's six numeric columns, while ahead on
the whole adult table and on all nine tables of the suite
(``docs/benchmarks.md``); whole tables are what skmoe is for.
"""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DATA = Path(os.environ.get("SKMOE_DATA_DIR", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "manifest.json").exists(), reason="shared data not found")
@pytest.mark.parametrize("dataset", ["california_housing", "adult"])
def test_defaults_beat_sklearn_mlp(dataset):
    import accuracy

    info = {d["name"]: d for d in json.loads((DATA / "manifest.json").read_text())}[dataset]
    X, y = accuracy.load(DATA, info)
    X_tr, X_te, y_tr, y_te = accuracy.split(X, y, info["task"], seed=0)
    scores = {
        name: accuracy.fit_and_score(name, info["task"], 0, X_tr, y_tr, X_te, y_te)["score"]
        for name in ("skmoe", "mlp")
    }
    assert scores["skmoe"] > scores["mlp"], scores
