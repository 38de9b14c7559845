"""Peak memory of a fit against the size of its encoded table.

Fits ``MoERegressor`` on a generated table of numeric columns (the default
64 bins: 66 encoded inputs a column), in a fresh process per fit, and prints
the process's peak resident memory, the memory before the fit (data and
imports) and the size of the encoded float32 table. The network is kept
tiny and trains one epoch, so that the encoding and the refit's rows, not
the training, set the peak.

Run: ``python benchmarks/fit_memory.py [ROWS] [COLUMNS]`` (default 100000
40), from the repository root; with ``PYTHONPATH`` pointing at another
checkout to measure that one side by side.
"""

import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys
import numpy as np
from skmoe import MoERegressor
rows, columns = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
X = rng.normal(size=(rows, columns))
y = X[:, 0] + np.sin(X[:, 1]) + rng.normal(scale=0.1, size=rows)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model = MoERegressor(n_experts=2, expert_width=16, expert_members=2, max_epochs=1,
                     random_state=0, n_threads=1).fit(X, y)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
encoded = rows * model.encoder_.n_outputs * 4 / 2**20
print(json.dumps({"before_MiB": before, "peak_MiB": peak, "encoded_MiB": encoded,
                  "refit": any(p.startswith("refit") for p in model.history_["phase"])}))
"""

rows, columns = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else (100_000, 40)))
# Run from an empty folder: ``-c`` puts the working folder first on the path,
# which would shadow the checkout that PYTHONPATH names.
with tempfile.TemporaryDirectory() as folder:
    out = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(columns)],
                         capture_output=True, text=True, check=True, cwd=folder).stdout
r = json.loads(out.strip().splitlines()[-1])
growth = r["peak_MiB"] - r["before_MiB"]
print(f"{rows:,} rows x {columns} columns: encoded table {r['encoded_MiB']:.0f} MiB; "
      f"peak {r['peak_MiB']:.0f} MiB, {growth:.0f} MiB above the data "
      f"({growth / r['encoded_MiB']:.2f}x the encoded table); refit: {r['refit']}")
