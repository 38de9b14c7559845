"""A fitted estimator as a JSON header and named arrays, and back.

Each fitted component turns itself into arrays and back (the schema, the
encoder and, through the engine's door, the network); this module puts those
parts together with the estimator's own fitted values (target scaling or
classes, history, per-expert records) and its parameters.
:mod:`skmoe._persistence` writes and reads the folder.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from . import _persistence
from ._arrays import ArrayReader
from ._preprocessing import TableEncoder
from ._table import TableSchema
from ._torch import api as engine
from .exceptions import ModelFileError

# Parameters added after models were first saved, with the value that says
# how a model written (or pickled) before each existed was fitted: no
# piecewise-linear view, single-MLP experts, no weight averaging, no refit on
# all rows, an early-stopped fit of all members, and regression predictions
# never clipped (such a model kept no target range).
PARAMS_BEFORE = {
    "numeric_bins": 0,
    "expert_members": 1,
    "weight_averaging": 0.0,
    "refit": False,
    "probe_members": None,
    "clip_predictions": False,  # MoERegressor only
}


def params_before(cls, given) -> dict:
    """The ``PARAMS_BEFORE`` values for the parameters of ``cls`` missing from ``given``."""
    own = cls._get_param_names()
    return {k: v for k, v in PARAMS_BEFORE.items() if k in own and k not in given}


def estimator_state(est) -> tuple[dict, dict[str, np.ndarray], list[dict]]:
    """``(header, arrays, expert shards)`` of a fitted estimator."""
    spec, arrays, shards = engine.network_state(est.network_)
    schema_spec, schema_arrays = est.schema_.to_arrays()
    encoder_spec, encoder_arrays = est.encoder_.to_arrays()
    arrays.update({f"schema/{k}": v for k, v in schema_arrays.items()})
    arrays.update({f"encoder/{k}": v for k, v in encoder_arrays.items()})
    fitted, fitted_arrays = est._fitted_values()
    arrays.update({f"fitted/{k}": v for k, v in fitted_arrays.items()})
    header = {
        "estimator": type(est)._saved_as.__name__,
        "params": _params_to_json(_saved_params(est)),
        "fitted": fitted,
        "schema": schema_spec,
        "encoder": encoder_spec,
        "network": spec,
    }
    return header, arrays, shards


def _saved_params(est) -> dict:
    """The parameters of the skmoe estimator ``est`` is saved as.

    A subclass is saved as the skmoe estimator it derives from: the format
    names only skmoe's own classes, so that loading imports nothing else.
    """
    base = type(est)._saved_as
    params = est.get_params(deep=False)
    dropped = sorted(set(params) - set(base._get_param_names()))
    if dropped:
        warnings.warn(
            f"{type(est).__name__} is saved as {base.__name__}; its parameters "
            f"{dropped} are not saved.",
            UserWarning,
            stacklevel=4,
        )
    return {k: v for k, v in params.items() if k not in dropped}


def read_estimator(path, classes: dict[str, type], *, lazy: bool = False,
                   max_experts_in_memory: int | None = None, device="cpu"):
    """The estimator saved in the folder ``path``, one of ``classes`` (by name)."""
    if max_experts_in_memory is not None and (
        not isinstance(max_experts_in_memory, int) or max_experts_in_memory < 1
    ):
        raise ValueError(f"max_experts_in_memory must be a positive int or None, got {max_experts_in_memory!r}.")
    engine.check_device(device)
    try:
        header, arrays, read_shard = _persistence.read_model(path)
        network = engine.open_network(
            header["network"], arrays, read_shard, lazy=lazy,
            max_experts_in_memory=max_experts_in_memory, device=device,
        )
        return estimator_from_state(header, arrays, network, classes)
    except ModelFileError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, RecursionError, MemoryError, ValueError) as exc:
        # A malformed header or array of a kind no check names: still a bad model file.
        raise ModelFileError(
            f"{path} is not a readable skmoe model ({type(exc).__name__}: {exc})."
        ) from None


def estimator_from_state(header: dict, arrays: dict, network, classes: dict[str, type]):
    """Rebuild the estimator of :func:`estimator_state` around its ``network``
    (eager or lazy), checking that everything is consistent."""
    name = header.get("estimator")
    if name not in classes:
        raise ModelFileError(f"Unknown estimator {name!r}; expected one of {sorted(classes)}.")
    try:
        est = classes[name](**_params_from_json(header["params"]))
        fitted = header["fitted"]
        est.set_params(**params_before(type(est), header["params"]))
        n_features = int(fitted["n_features_in_"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The model header is incomplete or malformed: {exc!r}.") from None
    reader = ArrayReader(arrays)
    schema = TableSchema.from_arrays(header.get("schema"), reader.sub("schema/"), est.categorical_features, n_features)
    encoder = TableEncoder.from_arrays(
        header.get("encoder") or {}, reader.sub("encoder/"), schema.is_categorical_, schema.levels_
    )
    arch = engine.architecture(network)
    if arch["n_inputs"] != encoder.n_outputs:
        raise ModelFileError(
            f"The experts take {arch['n_inputs']} inputs, but the encoding gives {encoder.n_outputs}."
        )
    est.schema_, est.encoder_, est.network_ = schema, encoder, network
    est.n_features_in_ = n_features
    if fitted.get("feature_names_in_") is not None:
        names = np.asarray(fitted["feature_names_in_"], dtype=object)
        if names.shape != (n_features,):
            raise ModelFileError("feature_names_in_ does not match the number of features.")
        est.feature_names_in_ = names
    est._set_fitted_values(fitted, reader.sub("fitted/"), arch)
    return est


# -- pickles ---------------------------------------------------------------------
# Marks a fitted component stored as its spec and arrays in a pickle.
_PICKLED_NETWORK = "skmoe-network-arrays"
_PICKLED_PART = "skmoe-part-arrays"


def components_to_plain(state: dict) -> dict:
    """An estimator's ``__dict__`` with its fitted components (network, schema,
    encoder) as JSON-ready specs and NumPy arrays, as in a model file."""
    if "network_" in state:
        spec, arrays = engine.network_to_arrays(state["network_"])
        state["network_"] = {_PICKLED_NETWORK: 1, "spec": spec, "arrays": arrays}
    for name in ("schema_", "encoder_"):
        if name in state:
            spec, arrays = state[name].to_arrays()
            state[name] = {_PICKLED_PART: 1, "spec": spec, "arrays": arrays}
    return state


def components_from_plain(state: dict) -> dict:
    """The inverse of :func:`components_to_plain`; the components of pickles
    written before 2026-12-01 (skmoe objects) are taken as they are."""
    if _is_plain(state.get("schema_")):
        part = state["schema_"]
        state["schema_"] = TableSchema.from_arrays(
            part["spec"], ArrayReader(part["arrays"]),
            state.get("categorical_features"), int(state["n_features_in_"]),
        )
    if _is_plain(state.get("encoder_")):
        part, schema = state["encoder_"], state["schema_"]
        state["encoder_"] = TableEncoder.from_arrays(
            part["spec"], ArrayReader(part["arrays"]), schema.is_categorical_, schema.levels_
        )
    network = state.get("network_")
    if isinstance(network, dict) and _PICKLED_NETWORK in network:
        state["network_"] = engine.network_from_arrays(network["spec"], network["arrays"])
    return state


def _is_plain(part) -> bool:
    return isinstance(part, dict) and _PICKLED_PART in part


# -- plain values of the header ---------------------------------------------------
def fitted_common(est) -> tuple[dict, dict[str, np.ndarray]]:
    """The fitted values every estimator saves: features, history, per-expert records."""
    names = getattr(est, "feature_names_in_", None)
    fitted = {
        "n_features_in_": int(est.n_features_in_),
        "n_iter_": int(est.n_iter_),
        "history_": _history_to_json(est.history_),
        "feature_names_in_": None if names is None else [str(n) for n in names],
    }
    arrays = {
        "best_epoch_": np.asarray(est.best_epoch_, dtype=np.int64),
        "expert_usage_": np.asarray(est.expert_usage_, dtype=np.float64),
    }
    return fitted, arrays


def set_fitted_common(est, fitted: dict, arrays: ArrayReader, n_experts: int) -> None:
    """The inverse of :func:`fitted_common`, checked against ``n_experts``."""
    est.best_epoch_ = arrays.get("best_epoch_", "iu").astype(np.int64)
    est.expert_usage_ = arrays.finite("expert_usage_")
    if est.best_epoch_.shape != (n_experts,) or est.expert_usage_.shape != (n_experts,):
        raise ModelFileError("best_epoch_ or expert_usage_ does not match the number of experts.")
    try:
        est._set_history_dict(_history_from_json(fitted["history_"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The saved training history is malformed: {exc!r}.") from None
    est._set_param_counts()


def _params_to_json(params: dict) -> dict:
    return {key: _param_to_json(key, value) for key, value in params.items()}


def _param_to_json(key: str, value):
    original = value
    if key == "random_state" and isinstance(value, np.random.RandomState):
        warnings.warn(
            "random_state is a RandomState instance, which a model file cannot hold: "
            "it is saved as None (it only matters if the loaded model is refitted).",
            UserWarning,
            stacklevel=6,
        )
        value = None
    elif key == "class_weight" and isinstance(value, dict):
        value = {"__pairs__": [[_scalar(k), float(v)] for k, v in value.items()]}
    elif isinstance(value, os.PathLike):
        value = os.fspath(value)
    elif isinstance(value, np.ndarray):
        value = [_scalar(v) for v in value.tolist()]
    elif isinstance(value, (list, tuple)):
        value = [_scalar(v) for v in value]
    else:
        value = _scalar(value)
    try:
        json.dumps(value)
    except TypeError:
        raise TypeError(
            f"The parameter {key}={original!r} cannot be written to a model file; "
            "set it to a plain value (or pickle the model instead)."
        ) from None
    return value


def _params_from_json(params: dict) -> dict:
    out = dict(params)
    weights = out.get("class_weight")
    if isinstance(weights, dict) and "__pairs__" in weights:
        out["class_weight"] = {k: v for k, v in weights["__pairs__"]}
    return out


def _scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def classes_to_array(classes: np.ndarray) -> tuple[np.ndarray, str]:
    """Labels as a plain array, and the dtype to restore (object labels stay objects)."""
    if classes.dtype != object:
        return classes, str(classes.dtype)
    for kind in (str, (bool, np.bool_), (int, np.integer), (float, np.floating)):
        if all(isinstance(c, kind) for c in classes):
            return np.asarray(classes.tolist()), "object"
    raise TypeError(
        "Class labels of mixed or non-scalar Python types cannot be written to a model "
        f"file (got {sorted({type(c).__name__ for c in classes})}); encode them as "
        "strings or integers, or pickle the model instead."
    )


def classes_from_array(classes: np.ndarray, dtype: str | None) -> np.ndarray:
    if classes.ndim != 1 or len(classes) < 2:
        raise ModelFileError("The saved classes_ must list at least two classes.")
    return classes.astype(object) if dtype == "object" else classes


def _history_to_json(history: dict) -> dict:
    out = {k: [float(x) if not isinstance(x, str) else x for x in v] for k, v in history.items() if k != "expert_load"}
    out["expert_load"] = [np.asarray(x, dtype=float).tolist() for x in history["expert_load"]]
    return out


def _history_from_json(history: dict) -> dict:
    if not isinstance(history, dict):
        raise ModelFileError("The saved training history is malformed.")
    out = {k: list(v) for k, v in history.items()}
    out["expert_load"] = [np.asarray(x, dtype=float) for x in history.get("expert_load", [])]
    for key in ("dead_experts",):
        out[key] = [int(x) for x in out.get(key, [])]
    return out
