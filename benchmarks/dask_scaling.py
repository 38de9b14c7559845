"""Expert-parallel training on a Dask cluster: 1 worker against 2.

Fits ``MoERegressor(n_experts=64)`` on a real table three ways, side by side
in each repeat: in this process (``n_jobs=1``), and inside
``joblib.parallel_backend("dask")`` on a ``LocalCluster`` of 1 worker and of
2 workers (processes, one thread each, loopback). Every fit runs the same
epochs (no early stopping), and the models are checked to be identical.
Reports the median seconds of the specialisation phase (the part that is
spread over the workers) and of the whole fit, and the cost of shipping the
cells: the bytes of the expert jobs and the time to send them to the workers
and back (``client.scatter`` + ``gather`` of the same payload).

Usage::

    python benchmarks/dask_scaling.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster

from skmoe import MoERegressor
from skmoe._torch import training


def load(data_dir: Path, name: str):
    meta = {d["name"]: d for d in json.loads((data_dir / "manifest.json").read_text())}[name]
    df = pd.read_csv(data_dir / meta["file"]).drop(columns=meta["drop"])
    for col in meta["cat_cols"]:
        df[col] = df[col].astype("category")
    y = df.pop(meta["target"]).to_numpy(dtype=float)
    return df, np.log(y) if name == "diamonds" else y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--dataset", default="diamonds")
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    X, y = load(args.data_dir, args.dataset)
    params = dict(n_experts=args.experts, expert_width=args.width, expert_members=1, max_epochs=args.epochs,
                  early_stopping=False, n_iter_no_change=args.epochs, random_state=0)

    # The jobs' payload, caught as the trainer builds it.
    payload = []
    real_job = training.Trainer._expert_job

    def spy(self, *a, **k):
        job = real_job(self, *a, **k)
        payload.append(job)
        return job

    clusters = {
        n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=":0", silence_logs=50)
        for n in (1, 2)
    }
    clients = {n: Client(c, set_as_default=False) for n, c in clusters.items()}
    times = {k: ([], []) for k in ("in process", "dask 1 worker", "dask 2 workers")}
    reference = None
    for _ in range(args.repeats):
        for key in times:
            start = time.perf_counter()
            if key == "in process":
                training.Trainer._expert_job = spy
                payload.clear()
                model = MoERegressor(**params).fit(X, y)
                training.Trainer._expert_job = real_job
            else:
                client = clients[1 if "1 worker" in key else 2]
                with joblib.parallel_backend("dask", client=client):
                    model = MoERegressor(**params).fit(X, y)
            total = time.perf_counter() - start
            phases = np.array(model.history_["phase"])
            shared = float(np.sum(np.array(model.history_["seconds"])[phases == "shared"]))
            times[key][0].append(total - shared)
            times[key][1].append(total)
            predictions = model.predict(X.iloc[:2000])
            if reference is None:
                reference = predictions
            assert np.array_equal(predictions, reference), f"{key}: a different model"

    jobs_bytes = sum(len(pickle.dumps(job)) for job in payload)
    ship = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        futures = clients[2].scatter(payload)
        clients[2].gather(futures)
        ship.append(time.perf_counter() - start)
        del futures

    print(f"{args.dataset}: {len(X)} rows, {args.experts} experts of width {args.width}, "
          f"{args.epochs} epochs per phase, median of {args.repeats}")
    print("| where | specialisation s | whole fit s | specialisation vs in process |")
    print("|---|---|---|---|")
    base = np.median(times["in process"][0])
    for key, (spec, total) in times.items():
        print(f"| {key} | {np.median(spec):.1f} | {np.median(total):.1f} | "
              f"{np.median(spec) / base:.2f}x |")
    print(f"\nexpert jobs: {len(payload)} job(s) in process, {jobs_bytes / 2**20:.1f} MiB pickled; "
          f"scatter + gather of that payload to 2 workers: {np.median(ship):.2f} s (median)")
    for client in clients.values():
        client.close()
    for cluster in clusters.values():
        cluster.close()


if __name__ == "__main__":
    main()
