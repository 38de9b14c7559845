"""Memory of predicting with all experts loaded against experts loaded on demand.

A model of 256 experts of depth 2 and width 1,024 on 20 features (about a
gigabyte of float32 weights) is fitted briefly (one epoch per phase: the
weights' values do not matter here, their size does) and saved. Then, each
in a fresh process, the model is loaded eagerly (``skmoe.load(path)``) or
lazily (``skmoe.load(path, lazy=True)``) and predicts a batch of 2,000 rows
that all fall in one Voronoi cell. Reported: the process's peak resident
memory (``VmHWM``) growth from just before ``load`` to after ``predict``,
against the size of the model's weights on disk; and the same for a batch
spread over every cell. With a GPU (``--device cuda``) the peak GPU memory
(``torch.cuda.max_memory_allocated``) is reported too.

Run: ``python benchmarks/lazy_memory.py [--device cpu] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np, torch
import skmoe

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
path, rows_file, lazy, device = sys.argv[1], sys.argv[2], sys.argv[3] == "lazy", sys.argv[4]
X = np.load(rows_file)
before_rss, before_peak = status("VmRSS"), status("VmHWM")
start = time.perf_counter()
model = skmoe.load(path, lazy=lazy, device=device)
pred = model.predict(X)
seconds = time.perf_counter() - start
gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
print(json.dumps({
    "peak_growth_mib": status("VmHWM") - before_rss,
    "rss_growth_mib": status("VmRSS") - before_rss,
    "seconds": seconds,
    "gpu_peak_mib": gpu,
    "experts_loaded": len(model.network_.bank.loaded_experts) if lazy else model.n_experts_,
    "checksum": float(np.sum(pred)),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=256)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=Path, default=None, help="save the model here (reused if present)")
    args = parser.parse_args()

    from sklearn.datasets import make_friedman1

    from skmoe import MoERegressor

    X, y = make_friedman1(n_samples=args.experts * 40, n_features=20, random_state=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "model"
        if not (path / "model.json").is_file():
            start = time.perf_counter()
            model = MoERegressor(
                n_experts=args.experts, expert_width=args.width, expert_members=1, max_epochs=1, early_stopping=False,
                batch_size=64, random_state=0,
            ).fit(X, y)
            model.save(path)
            print(f"fitted and saved in {time.perf_counter() - start:.0f} s", flush=True)
            experts = model.apply(X)
        else:
            import skmoe

            experts = skmoe.load(path, lazy=True).apply(X)
        weights = sum(f.stat().st_size for f in (path / "experts").iterdir())
        cell = experts == np.bincount(experts).argmax()
        rng = np.random.default_rng(0)
        batches = {
            "one cell": X[cell][rng.integers(0, cell.sum(), 2000)],
            "all cells": X[rng.integers(0, len(X), 2000)],
        }
        print(f"model: {args.experts} experts, depth 2, width {args.width}; expert weights on disk "
              f"{weights / 2**20:.0f} MiB")
        print(f"{'batch':10s} {'load':6s} {'peak RSS growth':>16s} {'% of weights':>13s} "
              f"{'experts read':>13s} {'seconds':>8s} {'GPU peak':>9s}")
        for batch_name, rows in batches.items():
            rows_file = Path(tmp) / "rows.npy"
            np.save(rows_file, rows)
            checks = set()
            for mode in ("eager", "lazy"):
                out = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(path), str(rows_file), mode, args.device],
                    capture_output=True, text=True, check=True,
                )
                r = json.loads(out.stdout)
                checks.add(r["checksum"])
                gpu = "-" if r["gpu_peak_mib"] is None else f"{r['gpu_peak_mib']:.0f} MiB"
                print(f"{batch_name:10s} {mode:6s} {r['peak_growth_mib']:12.0f} MiB "
                      f"{100 * r['peak_growth_mib'] * 2**20 / weights:12.1f}% {r['experts_loaded']:13d} "
                      f"{r['seconds']:8.2f} {gpu:>9s}")
            print(f"{'':10s} predictions identical: {len(checks) == 1}")


if __name__ == "__main__":
    main()
