"""GPU check (a few minutes): fit and predict on the GPU against the CPU.

1. Fit the same model (California housing, bundled; 16 experts; 20 epochs
   per phase) on the CPU and on the GPU: fit times, test R2 of each.
2. The GPU model's predictions against the same weights predicting on the
   CPU (the GPU model pickled, which loads on the CPU): largest difference,
   which must stay within 1e-4 of the target's standard deviation (float32
   kernels differ in rounding, not in the model).
3. A pickle of the GPU model loads and predicts on the CPU.
4. Lazy loading on the GPU: a saved model of 256 experts of width 1,024
   loaded with ``lazy=True, device="cuda"`` predicts rows of one cell; peak
   GPU memory (``torch.cuda.max_memory_allocated``) against the weights' size.
5. Predict throughput on 1M rows, GPU against CPU.
6. The batched expert program (the default on a GPU) against the loop over
   experts, on the same expert job of a default California fit, on the GPU:
   kept epochs equal, weights within 1e-3, and the seconds of each.

Prints every figure and ``ALL CHECKS PASSED`` or the failures (exit code 1).
``--device cpu`` runs the same script without a GPU (a dry run).

Run: ``python benchmarks/gpu_check.py [--device cuda]``
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

import skmoe
from skmoe import MoERegressor
from skmoe.datasets import load_california_housing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("No CUDA device: run with --device cpu for a dry run.")
        return 2
    device = args.device
    failures = []
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.startswith("cuda") else ""))

    X, y = load_california_housing(numeric_only=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    params = dict(n_experts=16, expert_width=256, expert_members=1, max_epochs=20, random_state=0)
    fitted = {}
    for where in ("cpu", device):
        start = time.perf_counter()
        fitted[where] = MoERegressor(**params, device=where).fit(X_tr, y_tr)
        seconds = time.perf_counter() - start
        print(f"[1] fit on {where}: {seconds:.1f} s, test R2 {fitted[where].score(X_te, y_te):.4f}")

    gpu_model = fitted[device]
    on_cpu = pickle.loads(pickle.dumps(gpu_model))  # same weights, CPU kernels
    diff = np.abs(gpu_model.predict(X_te) - on_cpu.predict(X_te)).max()
    tolerance = 1e-4 * np.std(y_tr)
    print(f"[2] same weights, {device} vs cpu: max |difference| {diff:.3g} (tolerance {tolerance:.3g})")
    if diff > tolerance:
        failures.append("GPU and CPU predictions differ beyond the tolerance")
    ok = on_cpu.network_.bank.device.type == "cpu" and np.isfinite(on_cpu.predict(X_te[:10])).all()
    print(f"[3] pickle of the {device} model loads and predicts on the CPU: {ok}")
    if not ok:
        failures.append("GPU pickle did not load on the CPU")

    from sklearn.datasets import make_friedman1

    Xb, yb = make_friedman1(n_samples=256 * 40, n_features=20, random_state=0)
    big = MoERegressor(
        n_experts=256, expert_width=1024, expert_members=1, max_epochs=1, early_stopping=False,
        random_state=0, device=device
    ).fit(Xb, yb)
    experts = big.apply(Xb)
    rows = Xb[experts == np.bincount(experts).argmax()]
    with tempfile.TemporaryDirectory() as tmp:
        path = big.save(Path(tmp) / "big")
        weights = sum(f.stat().st_size for f in (path / "experts").iterdir())
        del big
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        lazy = skmoe.load(path, lazy=True, device=device)
        lazy.predict(rows)
        if device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated(device) - base
            share = peak / weights
            print(f"[4] lazy predict of one cell on {device}: peak GPU memory {peak / 2**20:.0f} MiB, "
                  f"{100 * share:.1f}% of the {weights / 2**20:.0f} MiB of weights")
            if share > 0.10:
                failures.append("lazy GPU memory above 10% of the weights")
        else:
            print(f"[4] lazy predict of one cell: {len(lazy.network_.bank.loaded_experts)} expert(s) read")

    X1m = pd.concat([X_te] * int(np.ceil(1e6 / len(X_te))), ignore_index=True).iloc[:1_000_000]
    rates = {}
    for name, model in (("cpu", on_cpu), (device, gpu_model)):
        model.predict(X1m.iloc[:10_000])
        start = time.perf_counter()
        model.predict(X1m)
        rates[name] = len(X1m) / (time.perf_counter() - start)
        print(f"[5] predict on {name}: {rates[name]:,.0f} rows/s")
    print(f"[5] {device} / cpu throughput: {rates[device] / rates['cpu']:.2f}x")

    failures += _batched_experts(X_tr, y_tr, device)

    print("ALL CHECKS PASSED" if not failures else "FAILED: " + "; ".join(failures))
    return 0 if not failures else 1


def _batched_experts(X, y, device: str) -> list[str]:
    """Check 6: one expert job trained batched and in the loop, on ``device``."""
    from dataclasses import replace

    from skmoe._torch import training
    from skmoe._torch.specialise import train_experts

    jobs = []
    real = training.train_experts
    training.train_experts = lambda job, on_epoch=None: (jobs.append(job), real(job, on_epoch))[1]
    try:
        MoERegressor(max_epochs=3, random_state=0, device=device).fit(X, y)
    finally:
        training.train_experts = real
    job = replace(jobs[0], max_epochs=10, device=device)
    results, seconds = {}, {}
    for batched in (False, True):
        start = time.perf_counter()
        results[batched] = train_experts(replace(job, batched=batched))
        seconds[batched] = time.perf_counter() - start
    diff = max(
        float(np.abs(a - b).max())
        for s, t in zip(results[False].states, results[True].states)
        for a, b in zip(s, t)
    )
    same_epochs = np.array_equal(results[False].best_epoch, results[True].best_epoch)
    print(f"[6] expert job on {device}: loop {seconds[False]:.2f} s, batched {seconds[True]:.2f} s "
          f"({seconds[False] / seconds[True]:.2f}x); max |weight difference| {diff:.2g}; "
          f"same kept epochs: {same_epochs}")
    return [] if diff < 1e-3 and same_epochs else ["batched experts differ from the loop"]


if __name__ == "__main__":
    sys.exit(main())
