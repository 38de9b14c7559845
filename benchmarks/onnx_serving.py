"""ONNX export: parity with skmoe on every suite table, and serving speed.

For each table of the accuracy suite (its protocol, seed 0) the script fits
skmoe (defaults, except ``--max-epochs``: parity depends on the graph, not on
how long it trained), exports it with ``skmoe.to_onnx`` and runs the graph in
onnxruntime on the test rows. It prints the largest difference between
onnxruntime's and skmoe's predictions (regression: relative to the target's
spread; classification: absolute, on the probabilities) and the rows whose
expert or label differs; then batch throughput (test rows, median of
``--repeats``) and single-row latency (median of ``--calls`` calls) of
onnxruntime, skmoe's own ``predict`` and LightGBM's native ``predict``
(fitted with its defaults on the same rows), all with ``--threads`` threads.

Usage::

    pip install -e ".[onnx,benchmarks]"
    python benchmarks/onnx_serving.py --data-dir ../shared/data
    python benchmarks/onnx_serving.py --datasets california_housing --max-epochs 200
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as A  # noqa: E402
from dispatch import step_time as timed  # noqa: E402  (median of repeats, after a warm call)

import skmoe  # noqa: E402
from skmoe._onnx import onnx_feeds  # noqa: E402


def session(model, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(skmoe.to_onnx(model).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def parity(model, sess, X_te, task: str) -> dict:
    out = sess.run(None, onnx_feeds(model, X_te))
    if task == "regression":
        expected = model.predict(X_te)
        diff = np.abs(out[0][:, 0] - expected).max() / expected.std()
        return {"max diff": f"{diff:.1e} (rel.)", "rows differing": "-"}
    proba = model.predict_proba(X_te)
    labels = (out[0] != model.predict(X_te)).sum()
    return {"max diff": f"{np.abs(out[1] - proba).max():.1e}", "rows differing": f"{labels} labels"}


def speeds(name: str, predict, one_row, n_rows: int, repeats: int, calls: int) -> dict:
    return {"model": name, "rows/s": n_rows / timed(predict, repeats),
            "1-row ms": 1000 * timed(one_row, calls)}


def run(args) -> None:
    import lightgbm  # noqa: F401  (fail before the first fit when it is missing)

    manifest = json.loads((args.data_dir / "manifest.json").read_text())
    torch.set_num_threads(args.threads)
    print("| table | max diff | rows differing | model | batch rows/s | 1-row ms |")
    print("|---|---|---|---|---|---|")
    for info in manifest:
        if args.datasets and info["name"] not in args.datasets:
            continue
        X, y = A.load(args.data_dir, info)
        X_tr, X_te, y_tr, y_te = A.split(X, y, info["task"], 0)
        classif = info["task"] != "regression"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = A.make_model("skmoe", info["task"], 0, {"max_epochs": args.max_epochs,
                                                            "n_threads": args.threads})
            model.fit(X_tr, y_tr)
            gbm = A.make_model("lightgbm", info["task"], 0)
            gbm.set_params(n_jobs=args.threads).fit(X_tr, y_tr)
        sess = session(model, args.threads)
        check = parity(model, sess, X_te, info["task"])
        feeds, row_feeds = onnx_feeds(model, X_te), onnx_feeds(model, X_te.iloc[:1])
        skmoe_predict = model.predict_proba if classif else model.predict
        gbm_predict = gbm.predict_proba if classif else gbm.predict
        one = X_te.iloc[:1]
        rows = [
            speeds("onnxruntime", lambda: sess.run(None, feeds), lambda: sess.run(None, row_feeds),
                   len(X_te), args.repeats, args.calls),
            speeds("skmoe predict", lambda: skmoe_predict(X_te), lambda: skmoe_predict(one),
                   len(X_te), args.repeats, args.calls),
            speeds("LightGBM predict", lambda: gbm_predict(X_te), lambda: gbm_predict(one),
                   len(X_te), args.repeats, args.calls),
        ]
        for i, r in enumerate(rows):
            head = (f"{info['name']} | {check['max diff']} | {check['rows differing']}" if i == 0 else " | | ")
            print(f"| {head} | {r['model']} | {r['rows/s']:,.0f} | {r['1-row ms']:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", nargs="*")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
