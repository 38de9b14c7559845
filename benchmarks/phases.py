"""Where a default fit spends its epochs: the shared phase against specialisation.

For each table of the accuracy suite (its protocol, seed 0) one fit with the
defaults (or ``--skmoe-params``); prints the fit seconds, the test score, the
epochs and seconds of each phase, the epoch each expert kept and the width
of the encoded input.

Usage::

    python benchmarks/phases.py --data-dir ../shared/data --datasets california_housing telco_churn
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as A  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", nargs="*")
    parser.add_argument("--skmoe-params", type=json.loads, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for info in json.loads((args.data_dir / "manifest.json").read_text()):
        if args.datasets and info["name"] not in args.datasets:
            continue
        X, y = A.load(args.data_dir, info)
        X_tr, X_te, y_tr, y_te = A.split(X, y, info["task"], 0)
        model = A.make_model("skmoe", info["task"], 0, args.skmoe_params)
        start = time.perf_counter()
        model.fit(X_tr, y_tr)
        seconds = time.perf_counter() - start
        phase, spent = np.array(model.history_["phase"]), np.array(model.history_["seconds"])
        score = A.evaluate(model, X_te, y_te, info["task"])["score"]
        parts = [f"{p} {np.sum(phase == p)} epochs ({spent[phase == p].sum():.1f} s)" for p in ("shared", "specialise")]
        print(f"{info['name']:22s} fit {seconds:6.1f} s  score {score:.4f}  " + "  ".join(parts)
              + f"  kept epochs {model.best_epoch_.tolist()}  inputs {model.network_.bank.n_inputs}", flush=True)


if __name__ == "__main__":
    main()
