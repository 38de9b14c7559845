"""Time ``skmoe.load`` of a 64-expert model (median of 7 loads).

``python benchmarks/load_time.py FOLDER save`` fits and saves the model
(64 experts of width 256 on 20 inputs, one epoch); ``python
benchmarks/load_time.py FOLDER LABEL`` prints the median load time. Run the
second form alternately under two versions (for one, ``PYTHONPATH`` pointing
at its checkout) to compare them; save with the older one, which both read.
"""

import statistics
import sys
import time
import warnings

import numpy as np

import skmoe
from skmoe import MoERegressor

warnings.filterwarnings("ignore")
path, what = sys.argv[1], sys.argv[2]
if what == "save":
    X = np.random.default_rng(0).normal(size=(4000, 20))
    MoERegressor(n_experts=64, expert_width=256, max_epochs=1, random_state=0).fit(X, X[:, 0]).save(path, overwrite=True)
else:
    times = []
    for _ in range(7):
        start = time.perf_counter()
        skmoe.load(path)
        times.append(time.perf_counter() - start)
    print(f"{what} load median {statistics.median(times) * 1e3:.0f} ms")
