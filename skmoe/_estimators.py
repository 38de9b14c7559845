"""The scikit-learn front: ``MoERegressor`` and ``MoEClassifier``.

The estimators validate parameters and data, encode targets, and hand arrays
to the engine in :mod:`skmoe._torch`. Fitted state lives in attributes with a
trailing underscore.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    is_classifier,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    _check_sample_weight,
    _check_y,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from threadpoolctl import threadpool_limits

from . import _persistence
from ._preprocessing import TableEncoder, collapse_duplicates, expand_duplicates
from ._table import TableSchema
from ._prototypes import fit_prototypes, fit_routing_tree
from ._steering import grow_network, prune_network
from ._torch.device import inference_dtype, resolve_device
from ._torch.experts import ExpertBank, MemberLoss
from ._torch.routing import LearnedRouter, PrototypeTree, VoronoiRouter, route_in_chunks
from ._torch.state import network_from_arrays, network_to_arrays
from ._torch.training import Split, TrainConfig, Trainer, log_loss, squared_error

# Early stopping "auto" turns on from this many training rows (or with X_val).
_AUTO_EARLY_STOPPING_MIN_ROWS = 1_000
_PREDICT_CHUNK = 65_536
_MIN_PREDICT_CHUNK = 256  # out of GPU memory below this many rows: give up
_BALANCE_RATE = 1e-2
# voronoi_search="auto" searches the prototypes through a tree from this many experts.
_AUTO_TREE_MIN_EXPERTS = 256
# Marks a network stored as plain arrays in a pickle (see _BaseMoE.__getstate__).
_PICKLED_NETWORK = "skmoe-network-arrays"


class _BaseMoE(BaseEstimator):
    """Shared fitting and prediction logic of the two estimators."""

    _parameter_constraints: dict = {
        "categorical_features": [StrOptions({"from_dtype"}), "array-like", None],
        "numeric_bins": [Interval(Integral, 0, None, closed="left")],
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "expert_depth": [Interval(Integral, 0, None, closed="left")],
        "expert_width": [Interval(Integral, 1, None, closed="left")],
        "expert_members": [Interval(Integral, 1, None, closed="left")],
        "prelu": ["boolean"],
        "router": [StrOptions({"voronoi", "learned"})],
        "voronoi_search": [StrOptions({"auto", "exact", "tree"})],
        "top_k": [Interval(Integral, 1, 2, closed="both")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "checkpoint_dir": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Integral, None],
        "autocast": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        n_experts: int = 4,
        expert_depth: int = 2,
        expert_width: int = 128,
        expert_members: int = 8,
        prelu: bool = True,
        router: str = "voronoi",
        voronoi_search: str = "auto",
        top_k: int = 1,
        categorical_features="from_dtype",
        numeric_bins: int = 16,
        learning_rate: float = 1e-3,
        batch_size: int | str = "auto",
        max_epochs: int = 200,
        weight_decay: float = 1e-4,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 20,
        warm_start: bool = False,
        checkpoint_dir=None,
        checkpoint_every: int = 10,
        random_state=None,
        device: str = "auto",
        n_threads: int | None = None,
        n_jobs: int | None = None,
        autocast: bool = False,
        verbose: int = 0,
    ) -> None:
        self.categorical_features = categorical_features
        self.numeric_bins = numeric_bins
        self.n_experts = n_experts
        self.expert_depth = expert_depth
        self.expert_width = expert_width
        self.expert_members = expert_members
        self.prelu = prelu
        self.router = router
        self.voronoi_search = voronoi_search
        self.top_k = top_k
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.n_jobs = n_jobs
        self.autocast = autocast
        self.verbose = verbose

    # -- hooks for the subclasses ---------------------------------------------
    def _encode_y(self, y: np.ndarray, fitting: bool, name: str = "y_val") -> np.ndarray:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _y_tensor(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    def _member_loss(self) -> MemberLoss:
        """The training loss, averaged over the members of ensemble experts."""
        return MemberLoss(self._loss, self.expert_members, self._n_outputs())

    # -- fitting ---------------------------------------------------------------
    def _check_params(self) -> None:
        if self.top_k > self.n_experts:
            raise ValueError(
                f"top_k={self.top_k} must be <= n_experts={self.n_experts}."
            )
        if self.router == "voronoi" and self.top_k != 1:
            raise ValueError(
                f"router='voronoi' sends each row to exactly one expert, so top_k "
                f"must be 1, got top_k={self.top_k}; use router='learned' for top_k=2."
            )

    def _threads(self):
        """Limit the CPU threads of torch's kernels to ``n_threads``, if set."""
        if self.n_threads is None:
            return contextlib.nullcontext()
        return threadpool_limits(limits=self.n_threads, user_api="openmp")

    def _autocast(self, device: torch.device):
        """bfloat16 autocast for training when ``autocast=True``."""
        if not self.autocast:
            return contextlib.nullcontext()
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"autocast=True needs a CPU or CUDA device, got {device}.")
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def _fit(self, X, y, sample_weight, X_val, y_val):
        # A warm-start fit of a fitted model leaves it as it was when it fails
        # (it only replaces network_ at the end); any other failed fit leaves
        # the estimator unfitted, never a new encoding with an old network.
        growing = self.warm_start and hasattr(self, "network_")
        try:
            with self._threads():
                return self._fit_unlimited(X, y, sample_weight, X_val, y_val)
        except BaseException:
            if not growing:
                for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
                    delattr(self, name)
            raise

    def _fit_unlimited(self, X, y, sample_weight, X_val, y_val):
        self._check_params()
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together.")
        if X_val is not None and self.early_stopping is False:
            raise ValueError(
                "X_val and y_val are only used for early stopping, but "
                "early_stopping=False; set early_stopping=True or 'auto'."
            )
        if self.checkpoint_dir is not None:
            self._check_checkpoint_dir()
        if self.warm_start and not hasattr(self, "network_"):
            self._resume_from_checkpoint()
        grow = bool(self.warm_start) and hasattr(self, "network_")
        if grow:
            self._check_warm_start()
        device = resolve_device(self.device)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X = self._validate_X(X, reset=not grow)
        y = _check_y(y, multi_output=self._multi_output, y_numeric=not is_classifier(self))
        check_consistent_length(X, y)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if (sample_weight < 0).any():
            raise ValueError(
                f"sample_weight must be non-negative, got {sample_weight.min()!r} at row "
                f"{int(np.argmin(sample_weight))}."
            )
        y = self._encode_y(y, fitting=not grow, name="y")
        sample_weight = self._weight_classes(y, sample_weight)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))

        # Canonical rows: the same data whether weights or repetitions express it.
        collapsed = collapse_duplicates(X, y, sample_weight)
        n_distinct = len(collapsed[0])
        if n_distinct == 0:
            raise ValueError("All sample weights are zero: there is nothing to fit.")
        if n_distinct < self.n_experts:
            raise ValueError(
                f"n_experts={self.n_experts} needs at least as many distinct training "
                f"rows, got n_samples={n_distinct}; lower n_experts."
            )
        X, y, w = expand_duplicates(*collapsed)
        use_val = self.early_stopping is True or (
            self.early_stopping == "auto"
            and (X_val is not None or n_distinct >= _AUTO_EARLY_STOPPING_MIN_ROWS)
        )
        if X_val is not None:
            X_val = self._validate_X(X_val, reset=False)
            y_val = self._encode_y(self._check_y_val(y_val, len(X_val)), fitting=False)
            w_val = np.ones(len(X_val))
            X_tr, y_tr, w_tr = X, y, w
        elif use_val:
            X_tr, X_val, y_tr, y_val, w_tr, w_val = self._split(X, y, w, seed)
        else:
            X_tr, y_tr, w_tr = X, y, w
            X_val = None

        if grow:  # the grown experts keep the encoding they were trained on
            y_tr = self._scale_target(y_tr)
            Z_tr = self.encoder_.transform(X_tr)
        else:
            y_tr = self._fit_target_scaling(y_tr, w_tr)
            self.encoder_ = TableEncoder(self.schema_.is_categorical_, self.numeric_bins)
            Z_tr = self.encoder_.fit_transform(X_tr, w_tr, *self._encoding_target(y_tr), seed)

        generator = torch.Generator().manual_seed(seed)
        torch_state = torch.random.get_rng_state()
        config = TrainConfig(
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            batch_size=self._resolve_batch_size(len(X_tr)),
            max_epochs=self.max_epochs,
            n_iter_no_change=self.n_iter_no_change,
            early_stopping=X_val is not None,
            verbose=self.verbose,
            n_jobs=self.n_jobs,
            device=self.device,
            autocast=self.autocast,
        )
        try:
            # The training rows live on the device for the whole fit.
            train = self._to_split(Z_tr, y_tr, w_tr, device)
            val = None
            if X_val is not None:
                val = self._to_split(
                    self.encoder_.transform(X_val), self._scale_target(y_val), w_val, device
                )
            checkpoint = {}
            if self.checkpoint_dir is not None:
                checkpoint = dict(
                    checkpoint=lambda net, history: self._checkpoint(net, history, grow),
                    checkpoint_every=self.checkpoint_every,
                )
            if grow:
                network, source = grow_network(
                    self.network_, Z_tr, w_tr, self.n_experts, seed, self._use_tree(self.n_experts)
                )
                trainer = Trainer(
                    self._member_loss(), config, generator, epoch_offset=self.n_iter_, **checkpoint
                )
                with self._autocast(device):
                    network = trainer.fit_more(network, train, val, self.best_epoch_[source])
            else:
                trainer = Trainer(self._member_loss(), config, generator, **checkpoint)
                bank, router = self._new_network(Z_tr, w_tr, seed, generator)
                with self._autocast(device):
                    network = trainer.fit(bank, router, train, val)
        except torch.OutOfMemoryError as exc:
            _free_cuda_cache(device)
            mb = (Z_tr.shape[0] * Z_tr.shape[1] * 4) / 2**20
            raise torch.OutOfMemoryError(
                f"Out of GPU memory while fitting on {device}, with batch_size="
                f"{config.batch_size}, expert_width={self.expert_width}, "
                f"expert_depth={self.expert_depth} and {Z_tr.shape[0]} training rows "
                f"(about {mb:.0f} MiB once encoded, held on the device). Lower "
                "batch_size first, then expert_width, or fit with device='cpu'."
            ) from exc
        finally:
            torch.random.set_rng_state(torch_state)
        if trainer.interrupted:
            if not trainer.history.phase:  # not one epoch done: nothing to keep
                raise KeyboardInterrupt
            warnings.warn(
                f"Training was interrupted (KeyboardInterrupt) in the {trainer.interrupted} "
                f"phase after {len(trainer.history.phase)} epochs. The model keeps the best "
                "weights found so far and can be used; fit again to train it fully.",
                UserWarning,
            )
        network.eval()
        self.network_ = network
        self._set_history(trainer.history, append=grow)
        self._set_model_summary(train.X)
        return self

    def _checkpoint(self, network, history, append: bool) -> None:
        """Save the best weights so far to ``checkpoint_dir`` as a loadable model."""
        snapshot = copy.copy(self)  # shares the fitted encoding; fitted state below is its own
        snapshot.network_ = network
        snapshot._set_history(history, append=append)
        snapshot.best_epoch_ = np.full(network.bank.n_experts, snapshot.n_iter_ - 1)
        load = np.asarray(history.expert_load[-1], dtype=float)
        if len(load) != network.bank.n_experts:  # shared phase: one expert so far
            load = np.full(network.bank.n_experts, 1.0)
        snapshot.expert_usage_ = load / max(load.sum(), 1e-12)
        snapshot._set_param_counts()
        snapshot.save(self.checkpoint_dir, overwrite=True)

    def _check_checkpoint_dir(self) -> None:
        """Refuse up front a checkpoint folder that a checkpoint would clobber."""
        if not _persistence.replaceable(self.checkpoint_dir):
            raise ValueError(
                f"checkpoint_dir={str(self.checkpoint_dir)!r} exists and is not a saved "
                "skmoe model; checkpoints would replace it. Choose a new or empty folder."
            )

    def _resume_from_checkpoint(self) -> None:
        """With ``warm_start=True``, an unfitted estimator takes up the model
        saved in ``checkpoint_dir`` (if any) and fit goes on from it."""
        if self.checkpoint_dir is None or not (Path(self.checkpoint_dir) / "model.json").is_file():
            return
        saved = _persistence.load(self.checkpoint_dir)
        if not isinstance(self, type(saved)):
            raise ValueError(
                f"checkpoint_dir={str(self.checkpoint_dir)!r} holds a {type(saved).__name__}, "
                f"not a {type(self).__name__}; point checkpoint_dir elsewhere."
            )
        for name, value in vars(saved).items():
            if name.endswith("_") or name in ("_y_1d", "_label_encoder"):
                setattr(self, name, value)

    def _new_network(self, Z, w, seed, generator) -> tuple[ExpertBank, torch.nn.Module]:
        """A single shared expert (trained first) and the router of the mixture."""
        bank = ExpertBank(
            1, Z.shape[1], self._n_outputs(), self.expert_depth, self.expert_width, self.prelu,
            self.expert_members,
        )
        bank.reset_parameters(generator)
        if self.router == "learned":
            return bank, LearnedRouter(Z.shape[1], self.n_experts, self.top_k, _BALANCE_RATE)
        prototypes = fit_prototypes(Z, w, self.n_experts, seed)
        tree = None
        if self._use_tree(self.n_experts):
            tree = PrototypeTree.from_numpy(*fit_routing_tree(prototypes, Z, w, seed))
        return bank, VoronoiRouter(torch.from_numpy(prototypes), tree)

    def _use_tree(self, n_experts: int) -> bool:
        if self.router != "voronoi" or self.voronoi_search == "exact":
            return False
        return self.voronoi_search == "tree" or n_experts >= _AUTO_TREE_MIN_EXPERTS

    def _check_warm_start(self) -> None:
        """A warm start grows the fitted model: its architecture must not change."""
        bank, router = self.network_.bank, self.network_.router
        fitted = {
            "router": "learned" if isinstance(router, LearnedRouter) else "voronoi",
            "top_k": router.top_k,
            "expert_depth": bank.depth,
            "expert_width": bank.width if bank.depth else self.expert_width,
            "prelu": bank.prelu,
            "expert_members": bank.members,
        }
        changed = {k: v for k, v in fitted.items() if getattr(self, k) != v}
        if changed:
            detail = ", ".join(f"{k}={getattr(self, k)!r} (fitted: {v!r})" for k, v in changed.items())
            raise ValueError(
                f"warm_start=True continues the fitted model, whose architecture cannot "
                f"change: {detail}. Set warm_start=False to fit a new model."
            )
        if self.n_experts < router.n_experts:
            raise ValueError(
                f"warm_start=True can only grow the model: n_experts={self.n_experts} is "
                f"less than the {router.n_experts} fitted experts. Use prune_experts() to "
                "retire experts, or warm_start=False to fit a new model."
            )

    def _set_model_summary(self, Z_train: torch.Tensor) -> None:
        """Parameter counts and the training rows' share of each expert."""
        self._set_param_counts()
        with torch.inference_mode():
            routed = route_in_chunks(self.network_.router, Z_train, _PREDICT_CHUNK)
        self.expert_usage_ = _shares(routed.cpu().numpy(), self.n_experts_)

    def _set_param_counts(self) -> None:
        router, bank = self.network_.router, self.network_.bank
        per_expert = bank.n_params_per_expert()
        router_params = sum(t.numel() for t in router.parameters())
        if isinstance(router, VoronoiRouter):
            router_params += router.prototypes.numel()
        self.n_experts_ = int(bank.n_experts)
        self.n_params_total_ = int(bank.n_experts * per_expert + router_params)
        self.n_params_active_ = int(router.top_k * per_expert + router_params)

    def _validate_X(self, X, *, reset: bool) -> np.ndarray:
        """Check ``X`` and turn it into numeric values and category codes.

        DataFrames keep their column types (categorical columns are found by
        dtype); at predict time their columns are matched by name. Arrays go
        through scikit-learn's ``validate_data``, as objects when some of their
        columns are categorical.
        """
        if isinstance(X, pd.DataFrame):
            duplicated = X.columns[X.columns.duplicated()].unique().tolist()
            if duplicated:
                raise ValueError(
                    f"X has duplicated column names: {duplicated}. Rename or drop the "
                    "duplicates; skmoe matches columns by name."
                )
            if not reset and hasattr(self, "feature_names_in_"):
                X = self._align_columns(X)
            _check_feature_names(self, X, reset=reset)
            _check_n_features(self, X, reset=reset)
            if X.shape[0] == 0 or X.shape[1] == 0:
                raise ValueError(
                    f"Found array with shape {X.shape}: at least 1 sample and 1 "
                    "feature are required."
                )
        else:
            # Arrays have categorical columns only when named by index or mask.
            if reset:
                spec = self.categorical_features
                as_objects = spec is not None and not isinstance(spec, str)
            else:
                as_objects = bool(self.schema_.is_categorical_.any())
            X = validate_data(
                self,
                X,
                reset=reset,
                dtype=None if as_objects else np.float64,
                ensure_all_finite=False if as_objects else "allow-nan",
            )
        if reset:
            names = getattr(self, "feature_names_in_", None)
            self.schema_ = TableSchema(self.categorical_features).fit(X, names)
        return self.schema_.to_codes(X)

    def _align_columns(self, X: pd.DataFrame) -> pd.DataFrame:
        """Reorder a DataFrame's columns by name as in fit; extra ones are ignored."""
        names = list(self.feature_names_in_)
        columns = [str(c) for c in X.columns]
        if columns == names:
            return X
        missing = [n for n in names if n not in set(columns)]
        if missing:
            raise ValueError(f"X is missing columns seen during fit: {missing}.")
        extra = [c for c in columns if c not in set(names)]
        if extra:
            warnings.warn(f"X has columns not seen during fit, ignored: {extra}.", UserWarning)
        X = X.set_axis(columns, axis=1)
        return X[names]

    def _check_y_val(self, y_val, n: int) -> np.ndarray:
        y_val = np.asarray(y_val)
        if y_val.shape[0] != n:
            raise ValueError(
                f"X_val and y_val have inconsistent numbers of samples: {n} and "
                f"{y_val.shape[0]}."
            )
        return y_val

    def _split(self, X, y, w, seed):
        stratify = y if is_classifier(self) else None
        try:
            return train_test_split(
                X, y, w, test_size=self.validation_fraction, random_state=seed, stratify=stratify
            )
        except ValueError:  # a class too rare to stratify
            return train_test_split(X, y, w, test_size=self.validation_fraction, random_state=seed)

    def _resolve_batch_size(self, n_train: int) -> int:
        if self.batch_size == "auto":
            # At least ~16 steps per epoch on small tables, 256 rows from 4,096 on.
            return int(np.clip(2 ** np.floor(np.log2(max(n_train, 1) / 16)), 32, 256))
        return min(self.batch_size, n_train)

    def _weight_classes(self, y: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
        return sample_weight

    def _encoding_target(self, y: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        """Target and its type for target-encoding high-cardinality columns."""
        raise NotImplementedError

    def _fit_target_scaling(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y

    def _scale_target(self, y: np.ndarray) -> np.ndarray:
        return y

    def _to_split(self, Z, y, w, device) -> Split:
        return Split(
            X=torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32)).to(device),
            y=self._y_tensor(y, device),
            w=torch.from_numpy(np.asarray(w, dtype=np.float32)).to(device),
        )

    def _set_history(self, history, append: bool = False) -> None:
        """Per-epoch records; a warm start appends its epochs to the earlier ones."""
        new = {
            "phase": list(history.phase),
            "train_loss": list(history.train_loss),
            "validation_loss": list(history.validation_loss),
            "expert_load": [np.asarray(x) for x in history.expert_load],
            "load_cv": list(history.load_cv),
            "dead_experts": list(history.dead_experts),
            "routing_entropy": list(history.routing_entropy),
            "seconds": list(history.seconds),
        }
        if append:
            new = {k: self.history_[k] + v for k, v in new.items()}
        self._set_history_dict(new)
        self.best_epoch_ = np.asarray(history.best_epoch)

    def _set_history_dict(self, history: dict) -> None:
        self.history_ = history
        self.loss_curve_ = list(history["train_loss"])
        self.validation_scores_ = [-v for v in history["validation_loss"]]
        self.n_iter_ = len(history["train_loss"])

    # -- prediction ------------------------------------------------------------
    def _map_chunks(self, X, fn) -> list:
        """``fn`` over the encoded rows of ``X``, a chunk at a time, in row order.

        A chunk that runs out of GPU memory is halved and retried; a row's
        result does not depend on the rows it shares a chunk with (see
        :class:`skmoe._torch.experts.ExpertBank`), so the answer is the same.
        """
        check_is_fitted(self, "network_")
        X = self._validate_X(X, reset=False)
        device = self._network_device()
        # apply() routes the same chunks, so it names the expert predict() used.
        dtype = inference_dtype(device)
        results, start, chunk = [], 0, _PREDICT_CHUNK
        with torch.inference_mode(), self._threads():
            while start < len(X):
                # Encoded a chunk at a time: the encoding is about 18 numbers
                # per numeric column, too many to hold for all rows at once.
                x = torch.from_numpy(self.encoder_.transform(X[start : start + chunk]))
                try:
                    results.append(fn(x.to(device, dtype)))
                except torch.OutOfMemoryError as exc:
                    if chunk <= _MIN_PREDICT_CHUNK:
                        raise torch.OutOfMemoryError(
                            f"Out of GPU memory predicting {chunk} rows at a time on {device}: "
                            "the model itself barely fits. Free GPU memory (other models, "
                            "tensors), or load the model on the CPU (skmoe.load, or pickle, "
                            "gives a CPU model)."
                        ) from exc
                    _free_cuda_cache(device)
                    chunk //= 2
                    continue
                start += len(x)
        return results

    def _raw_predict(self, X) -> np.ndarray:
        """Network outputs (standardised target or logits) as float64."""
        outputs = self._map_chunks(X, lambda x: self.network_(x).double().cpu().numpy())
        return np.concatenate(outputs)

    def apply(self, X, *, return_gates: bool = False):
        """The expert(s) that serve each row, as in ``RandomForestRegressor.apply``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_gates : bool, default=False
            Also return the weight of each expert in the row's prediction.

        Returns
        -------
        experts : ndarray of shape (n_samples,) or (n_samples, 2)
            Expert index of each row (``0 <= index < n_experts_``); two
            columns with ``top_k=2``, the first one the highest-gated.
        gates : ndarray of the same shape, float64
            Only with ``return_gates=True``: the mixing weight of each expert
            (ones with one expert per row; summing to one across a row's two
            experts with ``top_k=2``).
        """
        experts, gates = self._route(X)
        if experts.shape[1] == 1:
            experts, gates = experts[:, 0], gates[:, 0]
        return (experts, gates) if return_gates else experts

    def _route(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Experts ``(n, k)`` of each row, highest gate first, and their gates."""
        def route(x):
            e, g = self.network_.router(x)
            if g is not None and e.shape[1] > 1:  # highest gate first
                g, order = g.sort(dim=1, descending=True, stable=True)
                e = e.gather(1, order)
            return e.cpu().numpy(), np.ones(e.shape) if g is None else g.double().cpu().numpy()

        experts, gates = zip(*self._map_chunks(X, route))
        return np.concatenate(experts), np.concatenate(gates)

    def routing_report(self, X=None, y=None) -> pd.DataFrame:
        """One row per expert: its load, its prototype and, given ``y``, its score.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            Rows to route. Without ``X``, the shares are those of the training
            rows (``expert_usage_``).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets of ``X``: adds each expert's ``score`` (R² for
            regressors, accuracy for classifiers, as ``score`` computes it) on
            the rows it serves first, NaN where it serves fewer than two.

        Returns
        -------
        pandas.DataFrame
            Indexed by expert, with columns ``share`` (share of rows, or of
            row-expert pairs with ``top_k=2``), ``n_rows`` (with ``X``),
            ``score`` (with ``y``), ``n_params`` (parameters of the expert)
            and, for Voronoi routing, the prototype in the original units of
            every input column: a typical value for numeric columns, the
            dominant level for categorical ones.
        """
        check_is_fitted(self, "network_")
        report = pd.DataFrame(index=pd.RangeIndex(self.n_experts_, name="expert"))
        if X is None:
            if y is not None:
                raise ValueError("routing_report needs X to score the experts on y.")
            report["share"] = self.expert_usage_
        else:
            routed = self._route(X)[0]  # (n, k)
            report["share"] = _shares(routed, self.n_experts_)
            report["n_rows"] = np.bincount(routed[:, 0], minlength=self.n_experts_)
            if y is not None:
                report["score"] = self._score_by_expert(X, y, routed[:, 0])
        report["n_params"] = self.network_.bank.n_params_per_expert()
        router = self.network_.router
        if isinstance(router, VoronoiRouter):
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                names = [f"x{j}" for j in range(self.n_features_in_)]
            prototypes = router.prototypes.double().cpu().numpy()
            for name, values in zip(names, self.encoder_.describe(prototypes, self.schema_.levels_)):
                report[f"prototype[{name}]"] = values
        return report

    def _score_by_expert(self, X, y, first: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if len(y) != len(first):
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {len(first)} and {len(y)}."
            )
        scores = np.full(self.n_experts_, np.nan)
        for e in np.unique(first):
            rows = np.flatnonzero(first == e)
            if len(rows) >= 2:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # R² of a constant cell
                    scores[e] = self.score(_safe_indexing(X, rows), y[rows])
        return scores

    def prune_experts(self, min_share: float = 0.0, X=None):
        """Retire the experts that serve at most ``min_share`` of the rows.

        The rows of a retired expert go to their next best kept expert (the
        next nearest prototype with Voronoi routing); every other row keeps its
        expert and its prediction, bit for bit. Kept experts are renumbered in
        their original order.

        Parameters
        ----------
        min_share : float, default=0.0
            Experts whose share of rows is at most this are retired. The
            default retires the experts that serve no row.
        X : array-like of shape (n_samples, n_features), default=None
            Rows to measure the shares on. Without ``X`` the shares are
            ``expert_usage_`` (training rows); ``expert_usage_`` is then
            renormalised over the kept experts, since the training rows of the
            retired ones are not stored (pass ``X`` to re-measure it).

        Returns
        -------
        self
            The estimator, with fewer experts (``n_experts_``). The
            ``n_experts`` parameter is unchanged, so a later fit with
            ``warm_start=True`` grows the model back to ``n_experts``.
        """
        check_is_fitted(self, "network_")
        if not 0.0 <= min_share < 1.0:
            raise ValueError(f"min_share must be in [0, 1), got {min_share!r}.")
        if X is None:
            share = self.expert_usage_
        else:
            share = _shares(self._route(X)[0], self.n_experts_)
        keep = np.flatnonzero(share > min_share)
        needed = self.network_.router.top_k
        if len(keep) < needed:
            raise ValueError(
                f"min_share={min_share} would leave {len(keep)} expert(s), but each row "
                f"needs {needed}; lower min_share."
            )
        self.network_ = prune_network(self.network_, keep)
        self.best_epoch_ = self.best_epoch_[keep]
        self._set_param_counts()
        if X is None:
            self.expert_usage_ = share[keep] / share[keep].sum()
        else:
            self.expert_usage_ = _shares(self._route(X)[0], self.n_experts_)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _network_device(self) -> torch.device:
        return self.network_.bank.device

    # -- persistence -----------------------------------------------------------
    def save(self, path, *, overwrite: bool = False):
        """Write the fitted model to a folder that loads without running code.

        The folder holds a JSON header (parameters, versions, fitted values,
        checksums) and NumPy ``.npz`` arrays: the input encoding and router in
        one file, and one file per expert. :func:`skmoe.load` reads it back
        with no pickle involved, so a model file from an untrusted source
        cannot execute code; see the persistence page of the user guide.

        Parameters
        ----------
        path : str or path-like
            Folder to create.
        overwrite : bool, default=False
            Replace an existing saved model at ``path``. The new model is
            written beside it first, so a failure leaves the old one intact.

        Returns
        -------
        pathlib.Path
            The folder written.
        """
        from ._persistence import save

        check_is_fitted(self, "network_")
        return save(self, path, overwrite=overwrite)

    def __getstate__(self):
        # A copy: BaseEstimator may hand back the live __dict__ itself.
        state = dict(super().__getstate__())
        # The network is pickled as NumPy arrays, never as torch tensors: a
        # pickle then loads without a GPU whatever device it was fitted on, and
        # does not depend on torch's own serialisation (weights_only & co.).
        if "network_" in state:
            spec, arrays = network_to_arrays(state["network_"])
            state["network_"] = {_PICKLED_NETWORK: 1, "spec": spec, "arrays": arrays}
        state["_skmoe_versions"] = _persistence.versions()
        return state

    def __setstate__(self, state):
        saved = state.pop("_skmoe_versions", None)
        if saved is not None:
            _persistence.warn_on_version_change(saved, f"This pickled {type(self).__name__}")
        network = state.get("network_")
        if isinstance(network, dict) and _PICKLED_NETWORK in network:
            state["network_"] = network_from_arrays(network["spec"], network["arrays"])
        super().__setstate__(state)


def _free_cuda_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _shares(routed: np.ndarray, n_experts: int) -> np.ndarray:
    """Share of the row-expert pairs ``routed`` ``(n, k)`` that each expert serves."""
    return np.bincount(routed.reshape(-1), minlength=n_experts) / routed.size


_COMMON_PARAMS_DOC = """
    n_experts : int, default=4
        Number of experts (L in the paper). Each row is served by one expert
        (two with ``router="learned", top_k=2``).
    expert_depth : int, default=2
        Hidden layers per expert (J). ``0`` gives linear experts.
    expert_width : int, default=128
        Units per hidden layer (W).
    expert_members : int, default=8
        Makes each expert a parameter-efficient ensemble of this many MLPs
        (as in TabM-mini): the members share the hidden layers, differ by a
        learned scale of the inputs and by their output layers, each learns
        with its own loss, and the expert predicts their mean. A row still
        runs through one expert, whose cost grows with the members.
    prelu : bool, default=True
        Learnable PReLU activations when True, ReLU when False.
    router : {"voronoi", "learned"}, default="voronoi"
        ``"voronoi"``: the MoMLP of Kratsios et al.; prototypes are fitted by
        k-means on the preprocessed inputs and each row goes to the expert of
        its nearest prototype. ``"learned"``: a linear gate trained with the
        experts, balanced by the auxiliary-loss-free bias of DeepSeek-V3.
    voronoi_search : {"auto", "exact", "tree"}, default="auto"
        How a row finds its nearest prototype with ``router="voronoi"``.
        ``"exact"`` compares it with every prototype; ``"tree"`` descends a
        two-level tree of prototypes (about ``2 * sqrt(n_experts)``
        comparisons), built so that every training row gets its exact nearest
        prototype; new rows near a cell boundary may get a neighbouring one.
        ``"auto"`` uses the tree from 256 experts on, where it measured
        faster than the exhaustive search (``docs/benchmarks.md``). Training
        and prediction always route the same way.
    top_k : {1, 2}, default=1
        Experts per row with ``router="learned"``; must be 1 for Voronoi.
    categorical_features : "from_dtype", array-like of str, int or bool, or None, \
            default="from_dtype"
        Columns encoded as categories. ``"from_dtype"``: the pandas
        ``category``, ``object``, ``string`` and ``bool`` columns of a
        DataFrame (none for arrays); a list of column names or indices, or a
        boolean mask; ``None`` for none. Levels seen at least 5 times get
        their own one-hot slot (up to the 64 most frequent of a column, which
        is then also target-encoded); missing values are a level of their
        own; rare and unseen levels share an ``other`` slot.
    numeric_bins : int, default=16
        Each numeric column is given to the network in three views: robust
        scaled, quantile-normalised, and a piecewise-linear encoding over
        this many quantile bins (``numeric_bins`` numbers in [0, 1] per
        column; Gorishniy et al., NeurIPS 2022). ``0`` leaves the third view
        out. The bins let an expert bend a column's effect at every bin edge;
        they widen the experts' input (and the routing space) by
        ``numeric_bins`` per numeric column. A table with fewer than
        ``32 * numeric_bins`` distinct training rows gets one bin per 32 rows
        (``encoder_.numeric_.n_bins_``), so that no bin is learned from a
        handful of rows.
    learning_rate : float, default=1e-3
        AdamW learning rate.
    batch_size : int or "auto", default="auto"
        Rows per minibatch (per expert during specialisation). ``"auto"`` is
        a power of two near ``n_samples / 16`` between 32 and 256, so that
        small tables still get about 16 steps per epoch.
    max_epochs : int, default=200
        Maximum epochs of each training phase (shared, then specialise).
    weight_decay : float, default=1e-4
        Decoupled (AdamW) weight decay.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the rows (or use ``X_val``) and
        keep the weights of the best validation epoch; with Voronoi routing
        each expert stops on its own cell. ``"auto"`` enables it from 1,000
        distinct training rows or when ``X_val`` is passed to ``fit``.
    validation_fraction : float, default=0.1
        Share of the training rows held out for early stopping.
    n_iter_no_change : int, default=20
        Epochs without improvement before a phase (or an expert) stops.
    warm_start : bool, default=False
        When True and the estimator is fitted, ``fit`` goes on from the fitted
        model instead of starting over: if ``n_experts`` was raised, the
        busiest experts are split (each half starts as a copy of its expert)
        until there are ``n_experts``, then the experts train further on the
        new data, each keeping its current weights unless training beats them
        on its validation rows. The input encoding, the target scaling and the
        architecture (``router``, ``top_k``, ``expert_depth``,
        ``expert_width``, ``prelu``) are those of the first fit.
    checkpoint_dir : str, path-like or None, default=None
        Folder to which the best weights so far are saved every
        ``checkpoint_every`` epochs, as a model :func:`skmoe.load` reads. To
        resume after a crash, fit again with ``warm_start=True`` and the same
        ``checkpoint_dir``: an unfitted estimator then starts from the saved
        model and trains further (with fresh optimizer state, so the result is
        not bit-identical to an uninterrupted fit).
    checkpoint_every : int, default=10
        Epochs between checkpoints. When the experts train in parallel
        (``n_jobs``, Dask), a checkpoint is written each time a group of
        experts finishes instead.
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, the k-means prototypes, the initial
        weights and the shuffling. On the CPU, the same seed gives the same
        model.
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``.
    n_threads : int or None, default=None
        CPU threads for torch's kernels during ``fit`` and prediction.
        ``None`` leaves torch's own setting, which already respects
        ``threadpoolctl`` limits and ``OMP_NUM_THREADS``: in the worker
        processes of ``GridSearchCV(n_jobs=k)`` or ``cross_val_score(n_jobs=k)``
        joblib sets it to ``n_cpus // k``, so parallel fits do not oversubscribe
        the CPU. The fitted model does not depend on it.
    n_jobs : int or None, default=None
        Parallel jobs for training the experts of ``router="voronoi"`` once
        the router is fitted: the experts are independent, so they are split
        into groups that joblib runs side by side. ``None`` means 1 unless in
        a :func:`joblib.parallel_backend` context, so that inside
        ``with joblib.parallel_backend("dask"):`` the groups run on the
        workers of a Dask cluster (see :doc:`/scaling`); ``-1`` uses all
        processors. The fitted model does not depend on it (bit for bit on
        the CPU). Ignored by ``router="learned"``, whose router trains
        jointly with the experts.
    autocast : bool, default=False
        Train under ``torch.autocast`` with bfloat16: the experts' matrix
        products run in bfloat16 (weights, optimizer and losses stay
        float32), which is faster on GPUs with bfloat16 tensor cores and
        usually slower on CPUs. Routing and prediction always run in float32.
        The accuracy difference is measured in ``docs/benchmarks.md``.
    verbose : int, default=0
        0 is silent; 1 prints one line per epoch (phase, train and validation
        loss, expert load, seconds); 2 also shows a progress bar within each
        epoch (over the expert jobs, when Voronoi experts train in parallel)
        when tqdm is installed."""

_COMMON_ATTRS_DOC = """
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features,)
        Names of the features seen during fit, when ``X`` had string column names.
    schema_ : object
        Column types and category levels: ``schema_.is_categorical_`` (mask
        of the categorical columns) and ``schema_.levels_`` (column index to
        the sorted levels seen in fit).
    encoder_ : object
        The fitted input encoding: robust-scaled and quantile-normal views and
        missing-value indicators of the numeric columns, one-hot slots of the
        categorical ones (``encoder_.categorical_.slots_``).
    network_ : torch.nn.Module
        The fitted router and experts.
    loss_curve_ : list of float
        Training loss at each epoch, across both phases.
    validation_scores_ : list of float
        Negative validation loss at each epoch (NaN without validation data).
    n_iter_ : int
        Number of epochs run, across both phases.
    best_epoch_ : ndarray of shape (n_experts,)
        Epoch (index into ``loss_curve_``) whose weights each expert kept.
    expert_usage_ : ndarray of shape (n_experts,)
        Share of the training rows (of row-expert pairs for ``top_k=2``)
        routed to each expert by the fitted router. A zero marks an expert
        that serves no training row.
    n_experts_ : int
        Number of experts in the fitted model: ``n_experts``, unless
        :meth:`prune_experts` retired some.
    n_params_total_ : int
        Parameters of the model: all experts plus the router (the Voronoi
        prototypes, or the gate).
    n_params_active_ : int
        Parameters one row's prediction touches: its ``top_k`` experts plus
        the router, which compares the row with every prototype (or runs the
        whole gate).
    history_ : dict of lists
        Per-epoch ``phase``, ``train_loss``, ``validation_loss``,
        ``expert_load`` (share of training rows per expert), routing health
        (``load_cv``: coefficient of variation of the load across experts,
        ``dead_experts``: experts that served no training row,
        ``routing_entropy``: entropy of the load in nats, ``log(n_experts)``
        when balanced) and ``seconds``. A warm start appends its epochs."""


class MoERegressor(RegressorMixin, _BaseMoE):
    __doc__ = f"""Mixture of (P)ReLU MLP experts for regression.

    Each row is routed to one expert, by default the one whose Voronoi
    prototype is nearest (the MoMLP of Kratsios et al., TMLR 2025); each
    expert is a small (P)ReLU MLP, by default an ensemble of 8 that share
    their hidden layers. Inputs are scaled internally and the target is standardised; predictions
    are returned in the original units.

    Parameters
    ----------{_COMMON_PARAMS_DOC}

    Attributes
    ----------{_COMMON_ATTRS_DOC}
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        Weighted mean and standard deviation of the training target.

    See Also
    --------
    MoEClassifier : The classifier counterpart.

    Examples
    --------
    >>> from sklearn.datasets import make_friedman1
    >>> from skmoe import MoERegressor
    >>> X, y = make_friedman1(n_samples=500, random_state=0)
    >>> model = MoERegressor(n_experts=4, random_state=0).fit(X, y)
    >>> model.predict(X[:2]).shape
    (2,)
    """

    _multi_output = True

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None):
        """Fit the mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights; an integer weight ``k`` is equivalent to ``k`` copies.
        X_val, y_val : array-like, default=None
            An explicit validation set for early stopping, used instead of
            holding out ``validation_fraction`` of the training rows.

        Returns
        -------
        self : MoERegressor
        """
        return self._fit(X, y, sample_weight, X_val, y_val)

    def predict(self, X) -> np.ndarray:
        """Predict targets in their original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs), float64
        """
        out = self._raw_predict(X) * self.y_scale_ + self.y_mean_
        return out[:, 0] if self._y_1d else out

    def _encode_y(self, y, fitting, name="y_val"):
        y = np.asarray(y, dtype=np.float64)
        if fitting:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        y = y.reshape(len(y), -1)
        if y.shape[1] == 0:
            raise ValueError(f"{name} has shape {y.shape}: no output column to fit.")
        if y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"{name} has {y.shape[1]} outputs, but the fitted target has {self.n_outputs_}."
            )
        if not np.isfinite(y).all():
            raise ValueError("The target y contains NaN or infinity.")
        return y

    def _fit_target_scaling(self, y, w):
        wn = w / w.sum()
        self.y_mean_ = wn @ y
        # The standard deviation of y / m times m: no overflow for |y| near 1e300.
        with np.errstate(over="ignore", invalid="ignore"):
            centred = y - self.y_mean_
            m = np.max(np.abs(centred), axis=0)
            m = np.where(m > 0, m, 1.0)
            std = m * np.sqrt(wn @ (centred / m) ** 2)
        if not (np.isfinite(self.y_mean_).all() and np.isfinite(std).all()):
            raise ValueError(
                "The target y is too large to standardise in float64 (its mean or "
                "spread overflows); rescale y, for example to other units."
            )
        self.y_scale_ = np.where(std > 0, std, 1.0)
        return self._scale_target(y)

    def _scale_target(self, y):
        return (y - self.y_mean_) / self.y_scale_

    def _n_outputs(self):
        return self.n_outputs_

    def _encoding_target(self, y):
        # TargetEncoder takes one continuous target; multi-output skips it.
        return (y[:, 0], "continuous") if y.shape[1] == 1 else (None, None)

    def _y_tensor(self, y, device):
        return torch.from_numpy(np.asarray(y, dtype=np.float32)).to(device)

    _loss = staticmethod(squared_error)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class MoEClassifier(ClassifierMixin, _BaseMoE):
    __doc__ = f"""Mixture of (P)ReLU MLP experts for classification.

    Binary and multiclass targets with labels of any type (strings, integers,
    booleans), mapped through ``classes_``. Each row is routed to one expert,
    by default the one whose Voronoi prototype is nearest (the MoMLP of
    Kratsios et al., TMLR 2025); each expert is a small (P)ReLU MLP, by
    default an ensemble of 8 that share their hidden layers.

    Parameters
    ----------{_COMMON_PARAMS_DOC}
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``; as in
        :class:`sklearn.linear_model.LogisticRegression`.

    Attributes
    ----------{_COMMON_ATTRS_DOC}
    classes_ : ndarray of shape (n_classes,)
        The class labels.

    See Also
    --------
    MoERegressor : The regression counterpart.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from skmoe import MoEClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = MoEClassifier(n_experts=2, random_state=0).fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    _multi_output = False
    _parameter_constraints: dict = {
        **_BaseMoE._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        *,
        n_experts: int = 4,
        expert_depth: int = 2,
        expert_width: int = 128,
        expert_members: int = 8,
        prelu: bool = True,
        router: str = "voronoi",
        voronoi_search: str = "auto",
        top_k: int = 1,
        categorical_features="from_dtype",
        numeric_bins: int = 16,
        learning_rate: float = 1e-3,
        batch_size: int | str = "auto",
        max_epochs: int = 200,
        weight_decay: float = 1e-4,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 20,
        warm_start: bool = False,
        checkpoint_dir=None,
        checkpoint_every: int = 10,
        class_weight=None,
        random_state=None,
        device: str = "auto",
        n_threads: int | None = None,
        n_jobs: int | None = None,
        autocast: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            n_experts=n_experts,
            expert_depth=expert_depth,
            expert_width=expert_width,
            expert_members=expert_members,
            prelu=prelu,
            router=router,
            voronoi_search=voronoi_search,
            top_k=top_k,
            categorical_features=categorical_features,
            numeric_bins=numeric_bins,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_epochs=max_epochs,
            weight_decay=weight_decay,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            warm_start=warm_start,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            random_state=random_state,
            device=device,
            n_threads=n_threads,
            n_jobs=n_jobs,
            autocast=autocast,
            verbose=verbose,
        )
        self.class_weight = class_weight

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None):
        """Fit the mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights; an integer weight ``k`` is equivalent to ``k`` copies.
        X_val, y_val : array-like, default=None
            An explicit validation set for early stopping, used instead of
            holding out ``validation_fraction`` of the training rows.

        Returns
        -------
        self : MoEClassifier
        """
        return self._fit(X, y, sample_weight, X_val, y_val)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64
            Columns follow ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of the class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64
        """
        return F.log_softmax(torch.from_numpy(self._logits(X)), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """Most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def _logits(self, X) -> np.ndarray:
        """One logit per class; a binary network's single logit is class 1's."""
        logits = self._raw_predict(X)
        if len(self.classes_) == 2:
            return np.hstack([np.zeros_like(logits), logits])
        return logits

    def _encode_y(self, y, fitting, name="y_val"):
        y = column_or_1d(y, warn=True)
        if fitting:
            check_classification_targets(y)
            self._label_encoder = LabelEncoder().fit(y)
            self.classes_ = self._label_encoder.classes_
            if len(self.classes_) < 2:
                raise ValueError(
                    f"MoEClassifier needs at least two classes in y, got one class: "
                    f"{self.classes_[0]!r}."
                )
            return self._label_encoder.transform(y)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(
                f"{name} contains classes not seen in the first fit: {unknown.tolist()}."
            )
        return self._label_encoder.transform(y)

    def _weight_classes(self, y, sample_weight):
        if self.class_weight is None:
            return sample_weight
        labels = self.classes_[y]
        return sample_weight * compute_sample_weight(self.class_weight, labels)

    def _n_outputs(self):
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _encoding_target(self, y):
        return y, "binary" if len(self.classes_) == 2 else "multiclass"

    def _y_tensor(self, y, device):
        return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)

    _loss = staticmethod(log_loss)
