"""Fit time of skmoe's defaults against RealMLP_TD's, side by side in one process.

The two fits alternate on one table of the accuracy suite (seed 0, its
protocol), ``REPEATS`` times each; the script prints every fit and the
median of the per-repeat ratios skmoe / RealMLP.

Run: ``python benchmarks/side_by_side.py TABLE REPEATS`` (for example
``bikeshare_dc 2``), from the repository root, with ``../shared/data``.
"""

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
import accuracy as A  # noqa: E402

name, repeats = sys.argv[1], int(sys.argv[2])
info = {m["name"]: m for m in json.loads(Path("../shared/data/manifest.json").read_text())}[name]
X, y = A.load(Path("../shared/data"), info)
parts = A.split(X, y, info["task"], 0)
times = {"skmoe": [], "realmlp": []}
for r in range(repeats):
    for model in ("skmoe", "realmlp"):
        X_tr, X_te, y_tr, y_te = parts
        out = A.fit_and_score(model, info["task"], 0, X_tr, y_tr, X_te, y_te)
        times[model].append(out["fit_seconds"])
        print(f"repeat {r} {model:8s} score {out['score']:.4f} fit {out['fit_seconds']:.1f}s", flush=True)
ratio = statistics.median(s / m for s, m in zip(times["skmoe"], times["realmlp"]))
print(f"median skmoe / realmlp fit time: {ratio:.2f}")
