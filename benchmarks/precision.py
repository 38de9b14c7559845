"""Fit time and peak memory of bfloat16 training against float32, side by side.

Two measurements, each in fresh child processes so that one setting's
allocations do not count against the other's:

- ``quickstart``: the README's quickstart fit (California housing, numeric
  columns, 80/20 split with ``random_state=0``) with ``autocast=False`` and
  with the defaults (``autocast="auto"``, bfloat16 products where the CPU has
  bfloat16 matrix instructions), the two taking turns ``--repeats`` times.
  Prints every fit's seconds, test R2 and peak resident memory (``VmHWM``),
  then the medians and the median of the per-repeat time ratios.
- ``fits``: ``--fits`` successive fits in one process on growing prefixes of
  the same table (``max_epochs=20``, as the folds of a search would run), per
  setting: the peak resident memory after each fit shows how much memory the
  many matrix shapes of bfloat16 training keep (oneDNN's kernel cache and
  the allocator's free lists), and whether it levels off.
- ``--tables NAME ...``: instead, seed 0 of those accuracy-suite tables (its
  protocol, ``../shared/data``): float32, the defaults and the suite's
  ``mlp`` fitted one after another in this process; their fit seconds and
  ratios.

Run: ``python benchmarks/precision.py [--repeats 3] [--fits 5]`` (Linux: it
reads ``/proc/self/status``), or ``python benchmarks/precision.py --tables
bank_marketing diamonds``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {"float32": {"autocast": False}, "defaults": {}}

_CHILD = """
import json, sys, time
from sklearn.model_selection import train_test_split
from skmoe import MoERegressor
from skmoe.datasets import load_california_housing

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith(key))

params, mode, n_fits = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
X, y = load_california_housing(numeric_only=True)
if mode == "quickstart":
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    start = time.perf_counter()
    model = MoERegressor(random_state=0, **params).fit(X_tr, y_tr)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "r2": model.score(X_te, y_te), "peak_mib": status("VmHWM")}))
else:
    peaks = []
    for i in range(n_fits):
        n = int(len(X) * (0.5 + 0.4 * i / max(n_fits - 1, 1)))
        MoERegressor(random_state=0, max_epochs=20, **params).fit(X[:n], y[:n])
        peaks.append(status("VmHWM"))
    print(json.dumps({"peaks_mib": peaks}))
"""


def _child(params: dict, mode: str, n_fits: int = 0) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(params), mode, str(n_fits)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def quickstart(repeats: int) -> None:
    runs = {name: [] for name in SETTINGS}
    for r in range(repeats):
        for name, params in SETTINGS.items():
            run = _child(params, "quickstart")
            runs[name].append(run)
            print(f"repeat {r} {name:8s} fit {run['seconds']:6.1f} s  R2 {run['r2']:.4f}  "
                  f"peak {run['peak_mib']} MiB", flush=True)
    for name, rows in runs.items():
        print(f"median {name:8s} fit {statistics.median(x['seconds'] for x in rows):6.1f} s  "
              f"peak {statistics.median(x['peak_mib'] for x in rows)} MiB")
    ratios = [a["seconds"] / b["seconds"] for a, b in zip(runs["float32"], runs["defaults"])]
    print(f"median float32 / defaults fit time: {statistics.median(ratios):.2f}x")


def successive_fits(n_fits: int) -> None:
    for name, params in SETTINGS.items():
        peaks = _child(params, "fits", n_fits)["peaks_mib"]
        print(f"{name:8s} peak MiB after each of {n_fits} fits: {peaks}", flush=True)


def tables(names: list[str], data_dir: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import accuracy as A

    manifest = {m["name"]: m for m in json.loads((data_dir / "manifest.json").read_text())}
    runs = {**{label: ("skmoe", params) for label, params in SETTINGS.items()}, "mlp": ("mlp", None)}
    for name in names:
        info = manifest[name]
        X, y = A.load(data_dir, info)
        X_tr, _, y_tr, _ = A.split(X, y, info["task"], 0)
        seconds = {}
        for label, (model, params) in runs.items():
            estimator = A.make_model(model, info["task"], 0, params)
            start = time.perf_counter()
            estimator.fit(X_tr, y_tr)
            seconds[label] = time.perf_counter() - start
        print(f"{name}: " + "  ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
              + f"  float32/defaults {seconds['float32'] / seconds['defaults']:.2f}x"
              + f"  defaults/mlp {seconds['defaults'] / seconds['mlp']:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fits", type=int, default=5, help="successive fits per setting (0: skip)")
    parser.add_argument("--tables", nargs="+", help="suite tables to fit instead (seed 0)")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    if args.tables:
        tables(args.tables, args.data_dir)
        return
    quickstart(args.repeats)
    if args.fits:
        successive_fits(args.fits)


if __name__ == "__main__":
    main()
