"""Acceptance check of the foundation: defaults beat scikit-learn's MLP.

``california_housing`` and ``adult`` from the shared data folder, numeric
columns only, 80/20 split with ``random_state=0``. Slow (about two minutes on
two cores): run with ``python -m pytest -m slow``.
"""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DATA = Path(os.environ.get("SKMOE_DATA_DIR", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "manifest.json").exists(), reason="shared data not found")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dataset", ["california_housing", "adult"])
def test_defaults_beat_sklearn_mlp(dataset):
    from foundation_vs_mlp import compare

    scores = compare(DATA, dataset, seed=0)
    assert scores["skmoe"] > scores["sklearn MLP"], scores
