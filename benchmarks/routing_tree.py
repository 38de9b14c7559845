"""Tree routing against exhaustive nearest-prototype search.

Encodes a real table the way the estimators do, fits ``L`` Voronoi prototypes
(k-means) and the routing tree on the training rows, then times routing
100,000 rows (drawn with replacement from the table) both ways, in float32 as
at inference, several repeats side by side, and reports the median
times, their ratio and how often the two searches pick different experts on
held-out rows.

Usage::

    python benchmarks/routing_tree.py --data-dir ../shared/data
    python benchmarks/routing_tree.py --data-dir ../shared/data --experts 64 256 1024 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from skmoe._preprocessing import TableEncoder
from skmoe._torch.prototypes import fit_prototypes, fit_routing_tree
from skmoe._table import TableSchema
from skmoe._torch.routing import PrototypeTree, VoronoiRouter, route_in_chunks


def load_encoded(data_dir: Path, name: str) -> np.ndarray:
    manifest = {d["name"]: d for d in json.loads((data_dir / "manifest.json").read_text())}
    meta = manifest[name]
    df = pd.read_csv(data_dir / meta["file"]).drop(columns=meta["drop"] + [meta["target"]])
    for col in meta["cat_cols"]:
        df[col] = df[col].astype("category")
    schema = TableSchema("from_dtype").fit(df, np.asarray(df.columns))
    codes = schema.to_codes(df)
    return TableEncoder(schema.is_categorical_).fit_transform(codes, np.ones(len(codes)))


def median_seconds(fns, repeats: int) -> list[float]:
    """Median time of each function, run alternately so both see the same machine."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", nargs="+", default=["adult", "california_housing"])
    parser.add_argument("--experts", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {args.threads} threads, {args.rows} rows, float32")
    print("| dataset | inputs | experts | groups | mean members | exact ms | tree ms | speed-up | differ on held-out rows |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets:
        Z = load_encoded(args.data_dir, name)
        rng = np.random.default_rng(0)
        perm = rng.permutation(len(Z))
        train, held_out = Z[perm[: int(0.8 * len(Z))]], Z[perm[int(0.8 * len(Z)) :]]
        w = np.ones(len(train))
        rows = torch.from_numpy(Z[rng.integers(0, len(Z), args.rows)]).float()
        held = torch.from_numpy(held_out).float()
        for n_experts in args.experts:
            prototypes = fit_prototypes(train, w, n_experts, seed=0)
            centres, members = fit_routing_tree(prototypes, train, w, seed=0)
            exact = VoronoiRouter(torch.from_numpy(prototypes))
            tree = VoronoiRouter(exact.prototypes, PrototypeTree.from_numpy(centres, members))
            with torch.inference_mode():
                differ = (route_in_chunks(exact, held) != route_in_chunks(tree, held)).float().mean()
                t_exact, t_tree = median_seconds(
                    [lambda: route_in_chunks(exact, rows), lambda: route_in_chunks(tree, rows)],
                    args.repeats,
                )
            print(
                f"| {name} | {Z.shape[1]} | {n_experts} | {len(members)} | "
                f"{np.mean([len(m) for m in members]):.1f} | {1e3 * t_exact:.1f} | "
                f"{1e3 * t_tree:.1f} | {t_exact / t_tree:.2f}x | {100 * float(differ):.2f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
