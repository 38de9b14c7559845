"""Quickstart: skmoe on a real table, beside two scikit-learn estimators.

Fits ``MoERegressor`` with its defaults on the California housing data bundled
with skmoe (numeric columns), and prints its R2 on a held-out 20% next to
scikit-learn's ``MLPRegressor`` (after a ``StandardScaler``) and
``HistGradientBoostingRegressor``, trained on the same split.

Run: ``python examples/quickstart.py``
"""

import time
import warnings

from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import MoERegressor
from skmoe.datasets import load_california_housing

# The MLP baseline may stop at its max_iter=200 before converging; its score
# is reported either way.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_california_housing(numeric_only=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

models = {
    "skmoe MoERegressor": MoERegressor(random_state=0),
    "sklearn MLPRegressor": make_pipeline(
        StandardScaler(),
        MLPRegressor(hidden_layer_sizes=(256, 256), early_stopping=True, random_state=0),
    ),
    "sklearn HistGradientBoosting": HistGradientBoostingRegressor(random_state=0),
}
print(f"California housing: {len(X_train)} training rows, {len(X_test)} test rows")
print(f"{'model':30s} {'test R2':>8s} {'fit seconds':>12s}")
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    print(f"{name:30s} {model.score(X_test, y_test):8.4f} {seconds:12.1f}", flush=True)

moe = models["skmoe MoERegressor"]
print(
    f"\nskmoe: {moe.n_experts} experts, each row served by one; "
    f"training rows per expert: {(moe.history_['expert_load'][-1] * 100).round(1)} %"
)
