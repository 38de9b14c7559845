"""``skmoe.load``: a saved model folder back to a fitted estimator."""

from __future__ import annotations

from ._estimators import MoEClassifier, MoERegressor
from ._model_state import read_estimator

_CLASSES = {cls.__name__: cls for cls in (MoERegressor, MoEClassifier)}


def load(path, *, lazy: bool = False, max_experts_in_memory: int | None = None, device="cpu"):
    """Load a model saved by ``save``: no code in the files runs.

    Parameters
    ----------
    path : str or path-like
        The folder written by :meth:`MoERegressor.save` or
        :meth:`MoEClassifier.save`.
    lazy : bool, default=False
        Read only the header, the input encoding and the router now, and each
        expert's weights when a batch first routes rows to it. Predictions
        are identical to an eagerly loaded model's; memory holds only the
        experts the data needs.
    max_experts_in_memory : int or None, default=None
        With ``lazy=True``, the most experts held at once (least recently
        used out first); ``None`` keeps every expert once read.
    device : str, default="cpu"
        Device to predict on: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
        ``"auto"``. With ``lazy=True`` an expert is moved there when needed.

    Returns
    -------
    MoERegressor or MoEClassifier
        The fitted estimator.

    Raises
    ------
    skmoe.ModelFileError
        When a file is missing, truncated, modified without its header, of
        the wrong shape, or named outside the folder. With ``lazy=True`` an
        expert's shard is checked when it is read.

    Warns
    -----
    skmoe.InconsistentVersionWarning
        When the model was saved under another skmoe or torch version.
    """
    return read_estimator(
        path, _CLASSES, lazy=lazy, max_experts_in_memory=max_experts_in_memory, device=device
    )
