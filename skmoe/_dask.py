"""Scoring a ``dask.dataframe`` with a fitted or saved skmoe model."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._outputs import prediction_columns, proba_columns

_METHODS = ("predict", "predict_proba")


def _import_dask():
    try:
        import dask
        import dask.dataframe as dd
    except ImportError as exc:  # an optional extra
        raise ImportError(
            "predict_dask needs dask[dataframe]; install it with "
            "`pip install 'skmoe[dask]'`."
        ) from exc
    return dask, dd


def predict_dask(model, ddf, *, method: str = "predict", lazy: bool = True,
                 max_experts_in_memory: int | None = None, device: str = "cpu"):
    """Predict a :class:`dask.dataframe.DataFrame` partition by partition.

    Each partition is scored with ``model``'s ``method`` on the worker that
    holds it (``map_partitions``); rows keep their index and order.

    Parameters
    ----------
    model : MoERegressor, MoEClassifier, str or path-like
        A fitted estimator, sent once to every worker (scattered with
        ``broadcast=True`` when a Dask client is running, else one node of
        the task graph), not once per partition; or the
        folder of a model saved with ``save``, which every worker loads once
        from that path (it must be reachable from the workers, for example
        on a shared file system). With a folder and ``lazy=True`` each worker
        reads an expert's weights only when one of its rows is routed there.
    ddf : dask.dataframe.DataFrame
        The rows to score, with the columns the model was fitted on.
    method : {"predict", "predict_proba"}, default="predict"
    lazy, max_experts_in_memory, device
        How a model folder is loaded on the workers; see :func:`skmoe.load`.
        Ignored for a fitted estimator.

    Returns
    -------
    dask.dataframe.Series or dask.dataframe.DataFrame
        ``predict``: a Series named ``"prediction"`` (a DataFrame with one
        ``prediction_<k>`` column per output for multi-output regression).
        ``predict_proba``: a DataFrame with one ``proba_<class>`` column per
        class. Nothing is computed until you call ``.compute()`` or write it.

    Examples
    --------
    >>> import dask.dataframe as dd  # doctest: +SKIP
    >>> rows = dd.read_parquet("s3://bucket/customers/")  # doctest: +SKIP
    >>> scores = skmoe.predict_dask("models/churn", rows, method="predict_proba")  # doctest: +SKIP
    >>> scores.to_parquet("s3://bucket/scores/")  # doctest: +SKIP
    """
    dask, dd = _import_dask()
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    if not isinstance(ddf, dd.DataFrame):
        raise TypeError(
            f"predict_dask scores a dask.dataframe.DataFrame, got {type(ddf).__name__}; "
            "use the model's own methods for in-memory data."
        )
    if isinstance(model, (str, os.PathLike)):
        from ._persistence import read_header

        path = str(Path(model).resolve())
        read_header(path)  # fails here, not on every worker, if it holds no model
        mtime = os.stat(Path(path) / "model.json").st_mtime_ns
        # A lazy load reads the header and small arrays, not the experts.
        template = _load_on_worker(path, mtime, True, 1, "cpu")
        source = (path, mtime, lazy, max_experts_in_memory, device)
    else:
        _check_fitted(model)
        template = model
        source = _broadcast(dask, model)
    if method == "predict_proba" and not hasattr(template, "classes_"):
        raise ValueError("method='predict_proba' is for classifiers; this model is a regressor.")
    meta = _meta(template, method, ddf._meta.index[:0])
    return ddf.map_partitions(_score_partition, source, method, meta=meta)


def _broadcast(dask, model):
    """The model as one object of the graph: a copy on every worker of the
    current Dask client if there is one, else a single delayed node."""
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):  # no distributed, or no client
        return dask.delayed(model, pure=True, traverse=False)
    return client.scatter(model, broadcast=True, hash=False)


def _check_fitted(model) -> None:
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "network_") and not hasattr(model, "fit"):
        raise TypeError(
            "model must be a fitted MoERegressor or MoEClassifier, or the folder of a "
            f"saved model; got {type(model).__name__}."
        )
    check_is_fitted(model, "network_")


def _meta(model, method: str, index: pd.Index) -> pd.Series | pd.DataFrame:
    """The empty output of ``method`` with ``index``: its columns and dtypes."""
    if method == "predict_proba":
        columns = proba_columns(model.classes_)
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}).set_index(index)
    if hasattr(model, "classes_"):
        return pd.Series(np.asarray(model.classes_)[:0], index=index, name="prediction")
    columns = prediction_columns(getattr(model, "n_outputs_", 1))
    if len(columns) == 1:
        return pd.Series(np.zeros(0), index=index, name=columns[0])
    return pd.DataFrame(np.zeros((0, len(columns))), index=index, columns=columns)


@functools.lru_cache(maxsize=4)
def _load_on_worker(path: str, mtime: int, lazy: bool, max_experts: int | None, device: str):
    # Cached per worker process and model version (mtime): one load per worker.
    from ._loading import load

    return load(path, lazy=lazy, max_experts_in_memory=max_experts, device=device)


def _score_partition(part: pd.DataFrame, source, method: str):
    model = _load_on_worker(*source) if isinstance(source, tuple) else source
    meta = _meta(model, method, part.index[:0])
    if len(part) == 0:
        return meta
    out = getattr(model, method)(part)
    if isinstance(meta, pd.Series):
        return pd.Series(out, index=part.index, name=meta.name)
    return pd.DataFrame(np.asarray(out).reshape(len(part), -1), index=part.index, columns=meta.columns)
