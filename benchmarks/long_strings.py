"""Memory with one long category value: traced peak at fit and predict, and model size.

2,000 rows with a three-level ``plan`` column, one row of which holds a
value of ``L`` characters, for several ``L``; a tiny model (memory here is
the table's and the encoding's, not the network's). Prints the peak of
Python-traced memory (``tracemalloc``: NumPy and pandas buffers) during
``fit`` and ``predict`` and the size of the saved model folder.

Usage: ``python benchmarks/long_strings.py``
"""

import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from skmoe import MoERegressor


def peak_mib(fn) -> float:
    """Peak traced memory of ``fn()`` in MiB."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


rng = np.random.default_rng(0)
print("| value length | fit peak MiB | predict peak MiB | model folder MiB |")
print("|---|---|---|---|")
for length in (10, 1_000, 30_000, 100_000):
    plan = rng.choice(["basic", "plus", "pro"], 2000).astype(object)
    plan[7:12] = "x" * length  # five rows: the long value gets a one-hot slot of its own
    X = pd.DataFrame({"plan": plan, "usage": rng.normal(size=2000)})
    y = rng.normal(size=2000)
    model = MoERegressor(n_experts=2, expert_width=8, expert_members=2, max_epochs=1, random_state=0)
    fit = peak_mib(lambda: model.fit(X, y))
    predict = peak_mib(lambda: model.predict(X))
    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "model")
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    print(f"| {length:,} | {fit:.1f} | {predict:.1f} | {size:.2f} |", flush=True)
