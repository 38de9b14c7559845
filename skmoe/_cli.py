"""Command line: batch scoring of CSV and Parquet files, and a model's summary.

``python -m skmoe predict MODEL INPUT -o OUTPUT`` streams INPUT in chunks
through the model and writes one output row per input row, in the same
order; memory stays flat whatever the size of the file. ``python -m skmoe
info MODEL`` prints what a saved model is, without loading its experts.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ._inputs import import_pyarrow
from ._loading import load
from ._outputs import prediction_columns, proba_columns
from ._persistence import read_header
from ._torch import api as engine
from .exceptions import InconsistentVersionWarning, ModelFileError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ModelFileError, ValueError, TypeError, OSError, EOFError, zlib.error, ImportError) as exc:
        # OSError: unreadable or corrupt (gzip) input, missing or read-only output.
        print(f"skmoe {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m skmoe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "predict",
        help="score a CSV or Parquet file in chunks",
        description="Score INPUT with the model saved in MODEL, chunk by chunk; "
        "OUTPUT has one row per input row, in the same order.",
    )
    p.add_argument("model", type=Path, help="a model folder written by model.save()")
    p.add_argument("input", type=Path, help="a .csv, .csv.gz or .parquet file")
    p.add_argument("-o", "--output", type=Path, required=True, help="a .csv, .csv.gz or .parquet file")
    p.add_argument("--chunk-size", type=int, default=100_000, help="rows per chunk (default 100000)")
    p.add_argument("--proba", action="store_true", help="classifiers: add one proba_<class> column per class")
    p.add_argument("--expert", action="store_true", help="add the expert that served each row")
    p.add_argument("--keep", action="append", default=[], metavar="COLUMN",
                   help="copy this input column to the output (repeatable), e.g. an id")
    p.add_argument("--lazy", action="store_true", help="load each expert when a chunk first needs it")
    p.add_argument("--max-experts-in-memory", type=int, default=None,
                   help="with --lazy, the most experts held at once")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                   help="progress bar (needs tqdm); auto: when stderr is a terminal")
    p.set_defaults(run=_predict)

    i = commands.add_parser("info", help="describe a saved model", description="Describe the model saved in MODEL.")
    i.add_argument("model", type=Path)
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(run=_info)
    return parser


# -- predict ------------------------------------------------------------------------
def _predict(args) -> int:
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be positive, got {args.chunk_size}.")
    if not args.input.is_file():
        raise FileNotFoundError(f"No input file {args.input}.")
    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it.")
    if args.output.resolve() == args.input.resolve():
        raise ValueError("OUTPUT must differ from INPUT.")
    if not args.output.parent.is_dir():
        raise FileNotFoundError(f"The folder of OUTPUT, {args.output.parent}, does not exist.")
    out_format, in_format = _format(args.output), _format(args.input)
    model = load(args.model, lazy=args.lazy, max_experts_in_memory=args.max_experts_in_memory, device=args.device)
    if args.proba and not hasattr(model, "predict_proba"):
        raise ValueError("--proba is for classifiers; this model is a regressor.")
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ValueError("This model was fitted on an array without column names; the command "
                         "line scores files by column name. Fit on a DataFrame.")
    needed = list(names) + [c for c in args.keep if c not in set(names)]
    taken = _output_columns(model, args) & set(args.keep)
    if taken:
        raise ValueError(f"--keep names columns that the output writes itself: {sorted(taken)}; "
                         "rename them in INPUT first.")
    _check_feature_columns(args.input, in_format, list(names))
    if in_format == "csv":
        _check_field_counts(args.input)

    # Write beside the target and rename at the end: a failed job leaves no
    # output that looks complete.
    partial = args.output.with_name(args.output.name + ".partial")
    writer = _Writer(partial, out_format)
    progress = _progress_bar(args.progress, _count_rows(args.input, in_format))
    n_rows = 0
    try:
        for chunk in _read_chunks(args.input, in_format, args.chunk_size, needed, model):
            if len(chunk) == 0:
                continue
            missing = [c for c in args.keep if c not in chunk.columns]
            if missing:
                raise ValueError(f"--keep names columns that INPUT lacks: {missing}.")
            writer.write(_score(model, chunk, args))
            n_rows += len(chunk)
            if progress is not None:
                progress.update(len(chunk))
        if n_rows == 0:
            raise ValueError(f"{args.input} has no rows to score.")
        writer.close()
        os.replace(partial, args.output)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
        if progress is not None:
            progress.close()
    print(f"{n_rows} rows scored -> {args.output}", file=sys.stderr)
    return 0


def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"{path}: unknown format; use .csv, .csv.gz or .parquet.")


def _pyarrow():
    return import_pyarrow("Parquet files need pyarrow")


def _check_feature_columns(path: Path, fmt: str, names: list[str]) -> None:
    """Refuse an input that lacks some of the model's columns, naming them,
    before any chunk is read."""
    if fmt == "parquet":
        present = set(_pyarrow().parquet.ParquetFile(path).schema_arrow.names)
    else:
        present = {str(c) for c in pd.read_csv(path, nrows=0).columns}
    missing = [n for n in names if n not in present]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ValueError(
            f"{path} is missing columns seen during fit: {missing[:10]}{more} "
            f"({len(missing)} of the model's {len(names)})."
        )


def _read_chunks(path: Path, fmt: str, chunk_size: int, columns: list[str], model) -> Iterator[pd.DataFrame]:
    if fmt == "parquet":
        pq = _pyarrow().parquet
        file = pq.ParquetFile(path)
        present = set(file.schema_arrow.names)
        wanted = [c for c in columns if c in present]  # a missing feature is named by predict
        for batch in file.iter_batches(batch_size=chunk_size, columns=wanted):
            yield batch.to_pandas()
        return
    # Category columns are read as text in every chunk: left to itself pandas
    # would guess each chunk's types anew (a code column turning into floats
    # in a chunk with a missing value, whose levels then no longer match).
    names = list(model.feature_names_in_)
    levels = {names[j]: set(model.schema_.levels_[j]) for j in np.flatnonzero(model.schema_.is_categorical_)}
    header = pd.read_csv(path, nrows=0).columns
    usecols = [c for c in header if c in set(columns)]
    dtype = {c: "string" for c in usecols if c in levels}
    # pandas reads "NA", "None", "null"... as missing: in a category column
    # that holds such a word as a level of the model, it is that level, as
    # predict sees it in a DataFrame of strings.
    na_values = {c: [v for v in _PANDAS_NA if v not in levels.get(c, ())] for c in usecols}
    yield from pd.read_csv(path, usecols=usecols, dtype=dtype, chunksize=chunk_size,
                           keep_default_na=False, na_values=na_values)


# pandas' default missing-value markers (read_csv's documented ``na_values``).
_PANDAS_NA = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def _check_field_counts(path: Path) -> None:
    """Refuse a CSV with a row of more or fewer fields than its header.

    pandas fills a short row with missing values and, reading only some
    columns, drops a long row's extra fields, shifting nothing it reports:
    either would score a row silently wrong. One streaming pass of the
    standard library's CSV reader (pandas' dialect) checks every row first.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        n_fields = len(next(reader, []))
        for row in reader:
            if row and len(row) != n_fields:  # blank lines are skipped, as pandas does
                raise ValueError(
                    f"{path}, line {reader.line_num}: {len(row)} fields, but the header has "
                    f"{n_fields}. Fix or remove that row."
                )


def _output_columns(model, args) -> set[str]:
    """The columns the output writes besides the kept ones."""
    if args.proba:
        columns = {"prediction", *proba_columns(model.classes_)}
    else:
        columns = set(prediction_columns(getattr(model, "n_outputs_", 1)))
    return columns | ({"expert", "expert_2"} if args.expert else set())


def _count_rows(path: Path, fmt: str) -> int | None:
    if fmt == "parquet":
        return _pyarrow().parquet.ParquetFile(path).metadata.num_rows
    return None  # a CSV would have to be read twice to count its rows


def _score(model, chunk: pd.DataFrame, args) -> pd.DataFrame:
    X = chunk[list(model.feature_names_in_)] if set(model.feature_names_in_) <= set(chunk.columns) else chunk
    out = pd.DataFrame(index=chunk.index)
    for column in args.keep:
        out[column] = chunk[column].to_numpy()
    if args.proba:
        proba = model.predict_proba(X)
        out["prediction"] = model.classes_[proba.argmax(axis=1)]
        for k, name in enumerate(proba_columns(model.classes_)):
            out[name] = proba[:, k]
    else:
        pred = model.predict(X)
        columns = prediction_columns(1 if pred.ndim == 1 else pred.shape[1])
        for k, name in enumerate(columns):
            out[name] = pred if pred.ndim == 1 else pred[:, k]
    if args.expert:
        experts = model.apply(X)
        if experts.ndim == 1:
            out["expert"] = experts
        else:
            out["expert"], out["expert_2"] = experts[:, 0], experts[:, 1]
    return out.reset_index(drop=True)


class _Writer:
    """Appends DataFrames to one CSV or Parquet file."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self._parquet = None
        self._started = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.fmt == "csv":
            frame.to_csv(self.path, mode="a" if self._started else "w", header=not self._started, index=False)
        else:
            pa = _pyarrow()
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pa.parquet.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self._started = True

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


def _progress_bar(mode: str, total: int | None):
    if mode == "off" or (mode == "auto" and not sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        if mode == "on":
            print('skmoe: the progress bar needs tqdm (pip install "skmoe[progress]").', file=sys.stderr)
        return None
    return tqdm(total=total, unit="rows", unit_scale=True, file=sys.stderr)


# -- info ------------------------------------------------------------------------------
def _info(args) -> int:
    model = load(args.model, lazy=True)  # reads the encoding and router, no expert
    with warnings.catch_warnings():  # load() has warned about versions already
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        header = read_header(args.model)
    size = sum(f.stat().st_size for f in Path(args.model).rglob("*") if f.is_file())
    usage = np.asarray(model.expert_usage_)
    arch = engine.architecture(model.network_)
    names = getattr(model, "feature_names_in_", None)
    categorical = np.flatnonzero(model.schema_.is_categorical_)
    summary = {
        "estimator": header["estimator"],
        "saved_with": header["versions"],
        "format_version": header["format_version"],
        "router": header["network"]["router"]["kind"],
        "top_k": arch["top_k"],
        "n_experts": int(model.n_experts_),
        "expert_depth": arch["expert_depth"],
        "expert_width": arch["expert_width"],
        "expert_members": arch["expert_members"],
        "prelu": arch["prelu"],
        "n_features_in": int(model.n_features_in_),
        "features": None if names is None else [str(n) for n in names],
        "categorical_features": [str(names[j]) if names is not None else int(j) for j in categorical],
        "n_outputs": arch["n_outputs"],
        "classes": [str(c) for c in model.classes_] if hasattr(model, "classes_") else None,
        "n_params_total": int(model.n_params_total_),
        "n_params_active": int(model.n_params_active_),
        "expert_usage": usage.tolist(),
        "dead_experts": int((usage == 0).sum()),
        "epochs": int(model.n_iter_),
        "size_on_disk_bytes": int(size),
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{summary['estimator']} (format {summary['format_version']}, saved with skmoe "
          f"{summary['saved_with'].get('skmoe')}, torch {summary['saved_with'].get('torch')})")
    print(f"  router          {summary['router']}, top_k={summary['top_k']}")
    print(f"  experts         {summary['n_experts']} x (P)ReLU MLP, depth {summary['expert_depth']}, "
          f"width {summary['expert_width']}, members {summary['expert_members']}, prelu={summary['prelu']}")
    features = summary["features"] or []
    shown = ", ".join(features[:8]) + (", ..." if len(features) > 8 else "")
    print(f"  inputs          {summary['n_features_in']} columns ({len(categorical)} categorical)"
          + (f": {shown}" if shown else ""))
    if summary["classes"] is not None:
        print(f"  classes         {', '.join(summary['classes'][:10])}")
    print(f"  parameters      {summary['n_params_total']:,} total, {summary['n_params_active']:,} active per row")
    print(f"  expert usage    min {usage.min():.3f}, median {np.median(usage):.3f}, max {usage.max():.3f}"
          f" (share of training rows); {summary['dead_experts']} serve no row")
    print(f"  training        {summary['epochs']} epochs")
    print(f"  size on disk    {_human(size)}")
    return 0


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
