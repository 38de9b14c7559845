"""The cost of MKL's strict reproducibility mode, which ``import skmoe`` turns on.

``MKL_CBWR=AUTO,STRICT`` makes fitted models independent of the thread count.
MKL reads the variable once, so each measurement runs in a fresh process:
default MKL (``MKL_CBWR=`` set empty, which skmoe leaves alone) against strict
mode, alternating, several repeats, median fit and predict times and their
ratio. The fit: 20,000 Friedman rows, 8 experts of width 256, 5 epochs.

Run: ``python benchmarks/strict_mode_cost.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

_CHILD = """
import json, time
from sklearn.datasets import make_friedman1
from skmoe import MoERegressor
X, y = make_friedman1(n_samples=20_000, n_features=20, random_state=0)
model = MoERegressor(n_experts=8, expert_width=256, expert_members=1, max_epochs=5,
                     early_stopping=False, random_state=0)
start = time.perf_counter(); model.fit(X, y); fit = time.perf_counter() - start
start = time.perf_counter(); model.predict(X); predict = time.perf_counter() - start
print(json.dumps({"fit": fit, "predict": predict}))
"""


def run(cbwr: str) -> dict:
    env = {**os.environ, "MKL_CBWR": cbwr}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times = {"default": [], "AUTO,STRICT": []}
    for _ in range(args.repeats):
        times["default"].append(run(""))
        times["AUTO,STRICT"].append(run("AUTO,STRICT"))
    med = {k: {m: float(np.median([t[m] for t in v])) for m in ("fit", "predict")} for k, v in times.items()}
    print(f"{'MKL_CBWR':12s} {'fit s':>8s} {'predict s':>10s}")
    for k, v in med.items():
        print(f"{k:12s} {v['fit']:8.2f} {v['predict']:10.3f}")
    print(f"strict / default: fit {med['AUTO,STRICT']['fit'] / med['default']['fit']:.2f}x, "
          f"predict {med['AUTO,STRICT']['predict'] / med['default']['predict']:.2f}x "
          f"(median of {args.repeats})")


if __name__ == "__main__":
    main()
