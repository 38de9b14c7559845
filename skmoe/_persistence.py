"""Model files that load without running code, and version stamps.

``model.save(path)`` writes a folder::

    model.json         the header: format, versions, estimator class and
                       parameters, fitted scalars, and every array file with
                       its size and SHA-256
    arrays.npz         input encoding, router and fitted arrays
    experts/*.npz      one shard per expert: its weights, biases, slopes and adapters

and :func:`load` reads it back with ``json`` and ``numpy.load(...,
allow_pickle=False)``: nothing in the folder can run code. Every array is
checked against the shape the header implies, file names must stay inside the
folder, and a file whose size or checksum differs from the header is refused.
The checksums catch truncated and corrupted files; they are not a signature
(anyone who can edit the folder can edit the header too), which is why the
shapes are checked as well.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import sklearn
import torch

from ._preprocessing import CategoricalEncoder, NumericEncoder, TableEncoder
from ._table import TableSchema
from ._torch.state import (
    ModelFileError,
    network_to_arrays,
    split_experts,
)

FORMAT = "skmoe-model"
FORMAT_VERSION = 1
_HEADER = "model.json"
_MAX_HEADER_BYTES = 256 * 2**20

_NUMERIC_ATTRS = ("levels_", "quantiles_", "center_", "scale_", "median_", "has_missing_")


class InconsistentVersionWarning(UserWarning):
    """A model is loaded under other skmoe or torch versions than it was saved with.

    Like scikit-learn's warning of the same name: the model may still work,
    but nothing guarantees that it predicts as it did; refit it under the
    current versions when that matters.
    """


def versions() -> dict[str, str]:
    """The versions of the libraries a model's behaviour depends on."""
    from . import __version__

    return {
        "skmoe": __version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }


def warn_on_version_change(saved: dict, what: str, stacklevel: int = 3) -> None:
    """Warn when ``saved`` versions differ from the running ones."""
    current = versions()
    changed = {k: saved.get(k) for k in ("skmoe", "torch") if saved.get(k) != current[k]}
    if changed:
        detail = ", ".join(f"{k} {v} (running {current[k]})" for k, v in changed.items())
        warnings.warn(
            f"{what} was saved under other versions: {detail}. It may behave "
            "differently; refit it under the current versions if that matters.",
            InconsistentVersionWarning,
            stacklevel=stacklevel,
        )


# -- the estimator as JSON and arrays -------------------------------------------
def estimator_state(est) -> tuple[dict, dict[str, np.ndarray], list[dict]]:
    """``(header, arrays, expert shards)`` of a fitted estimator."""
    spec, net_arrays = network_to_arrays(est.network_)
    shared, shards = split_experts(net_arrays)
    arrays = dict(shared)
    fitted = {
        "n_features_in_": int(est.n_features_in_),
        "n_iter_": int(est.n_iter_),
        "history_": _history_to_json(est.history_),
    }
    names = getattr(est, "feature_names_in_", None)
    fitted["feature_names_in_"] = None if names is None else [str(n) for n in names]
    arrays["fitted/best_epoch_"] = np.asarray(est.best_epoch_, dtype=np.int64)
    arrays["fitted/expert_usage_"] = np.asarray(est.expert_usage_, dtype=np.float64)
    if hasattr(est, "classes_"):
        arrays["fitted/classes_"], fitted["classes_dtype"] = _classes_to_array(est.classes_)
    else:
        arrays["fitted/y_mean_"] = np.asarray(est.y_mean_, dtype=np.float64)
        arrays["fitted/y_scale_"] = np.asarray(est.y_scale_, dtype=np.float64)
        fitted["n_outputs_"] = int(est.n_outputs_)
        fitted["y_1d"] = bool(est._y_1d)

    schema = est.schema_
    for j, levels in schema.levels_.items():
        arrays[f"schema/levels/{j}"] = np.asarray(levels, dtype=str)
    numeric, categorical = est.encoder_.numeric_, est.encoder_.categorical_
    for attr in _NUMERIC_ATTRS:
        arrays[f"encoder/numeric/{attr}"] = np.asarray(getattr(numeric, attr))
    for i, slots in enumerate(categorical.slots_):
        arrays[f"encoder/slots/{i}"] = np.asarray(slots, dtype=np.float64)
    for i, (codes, encodings, default) in enumerate(categorical.target_tables_):
        arrays[f"encoder/target/{i}/codes"] = codes
        arrays[f"encoder/target/{i}/encodings"] = encodings
        arrays[f"encoder/target/{i}/default"] = default
    # A subclass is saved as the skmoe estimator it derives from: the format
    # names only skmoe's own classes, so that loading imports nothing else.
    base = _skmoe_class(est)
    params = est.get_params(deep=False)
    dropped = sorted(set(params) - set(base._get_param_names()))
    if dropped:
        warnings.warn(
            f"{type(est).__name__} is saved as {base.__name__}; its parameters "
            f"{dropped} are not saved.",
            UserWarning,
            stacklevel=3,
        )
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "estimator": base.__name__,
        "params": _params_to_json({k: v for k, v in params.items() if k not in dropped}),
        "fitted": fitted,
        "schema": {
            "is_categorical": [bool(b) for b in schema.is_categorical_],
            "levels": sorted(int(j) for j in schema.levels_),
        },
        "encoder": {
            "n_slot_columns": len(categorical.slots_),
            "target_columns": [int(j) for j in categorical.target_columns_],
            "numeric_bins": int(numeric._n_bins),
        },
        "network": spec,
    }
    return header, arrays, shards


def _skmoe_class(est):
    from ._estimators import MoEClassifier, MoERegressor

    return MoEClassifier if isinstance(est, MoEClassifier) else MoERegressor


def estimator_from_state(header: dict, arrays: dict, network):
    """Rebuild the estimator of :func:`estimator_state` around its ``network``
    (eager or lazy), checking that everything is consistent."""
    from ._estimators import MoEClassifier, MoERegressor

    classes = {"MoERegressor": MoERegressor, "MoEClassifier": MoEClassifier}
    name = header.get("estimator")
    if name not in classes:
        raise ModelFileError(f"Unknown estimator {name!r}; expected one of {sorted(classes)}.")
    try:
        est = classes[name](**_params_from_json(header["params"]))
        fitted, schema_spec, enc_spec = header["fitted"], header["schema"], header["encoder"]
        is_categorical = np.asarray(schema_spec["is_categorical"], dtype=bool)
        level_columns = [int(j) for j in schema_spec["levels"]]
        target_columns = [int(j) for j in enc_spec["target_columns"]]
        n_slot_columns = int(enc_spec["n_slot_columns"])
        # Files written before the piecewise-linear view have no bins.
        numeric_bins = int(enc_spec.get("numeric_bins", 0))
        if "numeric_bins" not in header["params"]:
            est.set_params(numeric_bins=0)
        if "expert_members" not in header["params"]:  # written before ensemble experts
            est.set_params(expert_members=1)
        n_features = int(fitted["n_features_in_"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The model header is incomplete or malformed: {exc!r}.") from None

    def get(key: str, kinds: str = "fiub") -> np.ndarray:
        if key not in arrays:
            raise ModelFileError(f"The array {key!r} is missing.")
        a = arrays[key]
        if a.dtype.kind not in kinds:
            raise ModelFileError(f"The array {key!r} has dtype {a.dtype}, expected kind {kinds!r}.")
        return a

    n_categorical = int(is_categorical.sum())
    if is_categorical.shape != (n_features,) or sorted(level_columns) != list(np.flatnonzero(is_categorical)):
        raise ModelFileError("The schema does not match the number of features or the categorical columns.")
    schema = TableSchema(est.categorical_features)
    schema.is_categorical_ = is_categorical
    schema.levels_ = {j: get(f"schema/levels/{j}", "U") for j in level_columns}

    if numeric_bins < 0:
        raise ModelFileError(f"The number of numeric bins must be >= 0, got {numeric_bins}.")
    numeric = NumericEncoder(numeric_bins)
    numeric.n_bins_ = numeric_bins
    for attr in _NUMERIC_ATTRS:
        setattr(numeric, attr, get(f"encoder/numeric/{attr}", "b" if attr == "has_missing_" else "f"))
    n_numeric = n_features - n_categorical
    expected = {
        "levels_": (numeric.n_quantiles,),
        "quantiles_": (numeric.n_quantiles, n_numeric),
        "center_": (n_numeric,),
        "scale_": (n_numeric,),
        "median_": (n_numeric,),
        "has_missing_": (n_numeric,),
    }
    for attr, shape in expected.items():
        if getattr(numeric, attr).shape != shape:
            raise ModelFileError(
                f"The array 'encoder/numeric/{attr}' has shape {getattr(numeric, attr).shape}, "
                f"expected {shape}."
            )
    if not (np.isfinite(numeric.quantiles_).all() and (np.diff(numeric.quantiles_, axis=0) >= 0).all()):
        raise ModelFileError("The array 'encoder/numeric/quantiles_' must be finite and sorted in each column.")
    categorical = CategoricalEncoder()
    if n_slot_columns != n_categorical or any(not 0 <= j < n_categorical for j in target_columns):
        raise ModelFileError("The categorical encoding does not match the categorical columns.")
    categorical.slots_ = [get(f"encoder/slots/{i}", "f") for i in range(n_slot_columns)]
    for slots, j in zip(categorical.slots_, np.flatnonzero(is_categorical)):
        if slots.ndim != 1 or len(slots) and (slots.min() < -1 or slots.max() >= len(schema.levels_[j])):
            raise ModelFileError(f"The one-hot slots of column {j} name levels that do not exist.")
    categorical.target_columns_ = target_columns
    categorical.target_tables_ = []
    for i in range(len(target_columns)):
        codes = get(f"encoder/target/{i}/codes", "f")
        encodings = get(f"encoder/target/{i}/encodings", "f")
        default = get(f"encoder/target/{i}/default", "f")
        if codes.ndim != 1 or default.ndim != 1 or encodings.shape != (len(codes), len(default)):
            raise ModelFileError(f"The target-encoding table {i} has inconsistent shapes.")
        categorical.target_tables_.append((codes, encodings, default))
    encoder = TableEncoder(is_categorical)
    encoder.numeric_, encoder.categorical_ = numeric, categorical

    if network.bank.n_inputs != encoder.n_outputs:
        raise ModelFileError(
            f"The experts take {network.bank.n_inputs} inputs, but the encoding "
            f"gives {encoder.n_outputs}."
        )
    n_experts = network.bank.n_experts
    est.schema_, est.encoder_, est.network_ = schema, encoder, network
    est.n_features_in_ = n_features
    if fitted.get("feature_names_in_") is not None:
        names = np.asarray(fitted["feature_names_in_"], dtype=object)
        if names.shape != (n_features,):
            raise ModelFileError("feature_names_in_ does not match the number of features.")
        est.feature_names_in_ = names
    if name == "MoEClassifier":
        from sklearn.preprocessing import LabelEncoder

        est.classes_ = _classes_from_array(get("fitted/classes_", "fiubU"), fitted.get("classes_dtype"))
        n_outputs = 1 if len(est.classes_) == 2 else len(est.classes_)
        est._label_encoder = LabelEncoder()
        est._label_encoder.classes_ = est.classes_
    else:
        est.y_mean_, est.y_scale_ = get("fitted/y_mean_", "f"), get("fitted/y_scale_", "f")
        est.n_outputs_, est._y_1d = int(fitted["n_outputs_"]), bool(fitted["y_1d"])
        n_outputs = est.n_outputs_
        if est.y_mean_.shape != (n_outputs,) or est.y_scale_.shape != (n_outputs,):
            raise ModelFileError("The target scaling does not match the number of outputs.")
    if network.bank.n_outputs != n_outputs:
        raise ModelFileError(
            f"The experts give {network.bank.n_outputs} outputs, but the target "
            f"needs {n_outputs}."
        )
    est.best_epoch_ = get("fitted/best_epoch_", "iu").astype(np.int64)
    est.expert_usage_ = get("fitted/expert_usage_", "f")
    if est.best_epoch_.shape != (n_experts,) or est.expert_usage_.shape != (n_experts,):
        raise ModelFileError("best_epoch_ or expert_usage_ does not match the number of experts.")
    try:
        est._set_history_dict(_history_from_json(fitted["history_"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The saved training history is malformed: {exc!r}.") from None
    est._set_param_counts()
    return est


# -- files ----------------------------------------------------------------------
def save(est, path, *, overwrite: bool = False) -> Path:
    """Write ``est`` to the folder ``path``; see :meth:`MoERegressor.save`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    if not replaceable(path):
        raise FileExistsError(
            f"{path} exists and is not a saved skmoe model; refusing to replace it."
        )
    header, arrays, shards = estimator_state(est)
    # Write next to the target, then swap: a failure never leaves half a model.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "experts").mkdir(parents=True)
        files = {"arrays": _write_npz(tmp, "arrays.npz", arrays)}
        files["experts"] = [
            _write_npz(tmp, f"experts/{e:05d}.npz", shard) for e, shard in enumerate(shards)
        ]
        header["files"] = files
        (tmp / _HEADER).write_text(json.dumps(header, indent=1))
        if path.exists():
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


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
    from ._torch.device import resolve_device
    from ._torch.lazy import LazyExpertBank
    from ._torch.routing import MoENetwork
    from ._torch.state import router_from_arrays

    if max_experts_in_memory is not None and (
        not isinstance(max_experts_in_memory, int) or max_experts_in_memory < 1
    ):
        raise ValueError(f"max_experts_in_memory must be a positive int or None, got {max_experts_in_memory!r}.")
    target = resolve_device(device)
    root = Path(path)
    header = _read_header(root)
    files = header["files"]
    arrays = _read_npz(root, files.get("arrays"))
    spec = header.get("network")
    entries = files["experts"]
    for entry in entries:  # fail now, not in the middle of a batch job
        _entry_file(root, entry)
    if not isinstance(spec, dict) or len(entries) != spec.get("n_experts"):
        raise ModelFileError(f"{root} lists {len(entries)} expert shards for a network of "
                             f"{spec.get('n_experts') if isinstance(spec, dict) else '?'} experts.")
    bank = LazyExpertBank(spec, lambda e: _read_npz(root, entries[e]), max_experts_in_memory, target)
    if not lazy:  # read the shards one by one into the bank: peak memory ~ the weights once
        bank = bank.materialize()
    network = MoENetwork(router_from_arrays(spec, arrays), bank)
    network.eval()
    network.router.to(target)
    network.bank.to(target)
    return estimator_from_state(header, arrays, network)


def read_header(path) -> dict:
    """The checked JSON header of a saved model (nothing else is read)."""
    return _read_header(Path(path))


def _read_header(root: Path) -> dict:
    header_file = root / _HEADER
    if not header_file.is_file():
        raise ModelFileError(f"{root} is not a saved skmoe model: {_HEADER} is missing.")
    if header_file.stat().st_size > _MAX_HEADER_BYTES:
        raise ModelFileError(f"{header_file} is too large to be a model header.")
    try:
        header = json.loads(header_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{header_file} is not valid JSON: {exc}.") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{header_file} is not a skmoe model header.")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{root} uses model format {version!r}; this skmoe reads format "
            f"{FORMAT_VERSION} and older. Upgrade skmoe to load it."
        )
    warn_on_version_change(header.get("versions") or {}, f"The model in {root}", stacklevel=4)
    files = header.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("experts"), list) or not files["experts"]:
        raise ModelFileError(f"{header_file} does not list the model's array files.")
    return header


def replaceable(path) -> bool:
    """Whether ``save`` may write to ``path``: nothing there, an empty folder,
    or a saved model."""
    path = Path(path)
    if not path.exists() or (path / _HEADER).is_file():
        return True
    return path.is_dir() and not any(path.iterdir())


def _write_npz(root: Path, name: str, arrays: dict[str, np.ndarray]) -> dict:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    (root / name).write_bytes(data)
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _entry_file(root: Path, entry) -> Path:
    """The file a header entry names, checked to be well-formed and inside ``root``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ModelFileError(f"Malformed file entry in the model header: {entry!r}.")
    return _inside(root, entry["path"])


def _read_npz(root: Path, entry) -> dict[str, np.ndarray]:
    file = _entry_file(root, entry)
    name = entry["path"]
    data = file.read_bytes()
    if len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise ModelFileError(
            f"{name} has {len(data)} bytes or content that does not match the model "
            "header: it is truncated or was modified."
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{name} is not a readable array file: {exc}.") from None


def _inside(root: Path, name: str) -> Path:
    """``root / name``, refusing names that lead outside ``root`` (also via links)."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ModelFileError(f"The model header names a file outside the model folder: {name!r}.")
    file = (root / relative).resolve()
    if not file.is_relative_to(root.resolve()):
        raise ModelFileError(f"The model header names a file outside the model folder: {name!r}.")
    if not file.is_file():
        raise ModelFileError(f"The model file {name} is missing.")
    return file


def _params_to_json(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if key == "random_state" and isinstance(value, np.random.RandomState):
            warnings.warn(
                "random_state is a RandomState instance, which a model file cannot hold: "
                "it is saved as None (it only matters if the loaded model is refitted).",
                UserWarning,
                stacklevel=4,
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
                f"The parameter {key}={params[key]!r} cannot be written to a model file; "
                "set it to a plain value (or pickle the model instead)."
            ) from None
        out[key] = value
    return out


def _params_from_json(params: dict) -> dict:
    out = dict(params)
    weights = out.get("class_weight")
    if isinstance(weights, dict) and "__pairs__" in weights:
        out["class_weight"] = {k: v for k, v in weights["__pairs__"]}
    return out


def _scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _classes_to_array(classes: np.ndarray) -> tuple[np.ndarray, str]:
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


def _classes_from_array(classes: np.ndarray, dtype: str | None) -> np.ndarray:
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
