"""Names of prediction columns, shared by the command line and ``predict_dask``.

A batch job's output has one column per prediction: ``prediction`` (or
``prediction_<k>`` per output of a multi-output regressor) and, with
probabilities, one ``proba_<class>`` column per class.
"""

from __future__ import annotations


def prediction_columns(n_outputs: int) -> list[str]:
    """``["prediction"]`` for one output, else ``prediction_0``, ``prediction_1``, ..."""
    return ["prediction"] if n_outputs == 1 else [f"prediction_{k}" for k in range(n_outputs)]


def proba_columns(classes) -> list[str]:
    """One ``proba_<class>`` name per class, in the order of ``classes``."""
    return [f"proba_{label}" for label in classes]
