"""The scikit-learn front: ``MoERegressor`` and ``MoEClassifier``.

The estimators validate parameters and data, encode targets and inputs, and
hand NumPy arrays to the engine through its one door,
:mod:`skmoe._torch.api`. Fitted state lives in attributes with a trailing
underscore; ``network_`` is the engine's fitted network.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import threading
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    _check_y,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from . import _model_state, _persistence
from ._docs import COMMON_ATTRS_DOC, COMMON_PARAMS_DOC
from ._preprocessing import TableEncoder, collapse_duplicates, expand_duplicates
from ._torch import api as engine
from ._validation import check_y_val, validate_X, validate_X_val
from .exceptions import ModelFileError

# Early stopping "auto" turns on from this many training rows (or with X_val).
_AUTO_EARLY_STOPPING_MIN_ROWS = 1_000

# validation_fraction="auto" holds out 10% of the rows, at most this many: a
# validation loss on 32,768 rows is precise enough to stop on, and on a
# million rows evaluating 100,000 of them every epoch took a third of it.
_AUTO_VALIDATION_SHARE = 0.1
_AUTO_VALIDATION_MAX_ROWS = 32_768

# refit="auto" refits when the held-out rows are at least this share of the
# rows: a refit costs about another fit, for the rows it gives back.
_AUTO_REFIT_MIN_SHARE = 0.05



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
        "lr_schedule": [StrOptions({"constant", "cosine"})],
        "weight_averaging": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "refit": [StrOptions({"auto"}), "boolean"],
        "probe_members": [Interval(Integral, 1, None, closed="left"), None],
        "warm_start": ["boolean"],
        "checkpoint_dir": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Integral, None],
        "autocast": ["boolean", StrOptions({"auto"})],
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
        numeric_bins: int = 64,
        learning_rate: float = 2e-3,
        lr_schedule: str = "constant",
        weight_averaging: float = 2.0,
        batch_size: int | str = "auto",
        max_epochs: int = 200,
        weight_decay: float = 1e-4,
        early_stopping: bool | str = "auto",
        validation_fraction: float | str = "auto",
        n_iter_no_change: int = 10,
        refit: bool | str = "auto",
        probe_members: int | None = 2,
        warm_start: bool = False,
        checkpoint_dir=None,
        checkpoint_every: int = 10,
        random_state=None,
        device: str = "auto",
        n_threads: int | None = None,
        n_jobs: int | None = None,
        autocast: bool | str = "auto",
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
        self.lr_schedule = lr_schedule
        self.weight_averaging = weight_averaging
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.refit = refit
        self.probe_members = probe_members
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
    # _loss: the per-row loss on predictions, ``(n, o), targets -> (n,)``.
    def _encode_y(self, y: np.ndarray, fitting: bool, name: str = "y_val") -> np.ndarray:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _y_array(self, y: np.ndarray) -> np.ndarray:
        """Encoded targets in the engine's dtype (float32 values or int64 codes)."""
        raise NotImplementedError

    def _encoding_target(self, y: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        """Target and its type for target-encoding high-cardinality columns."""
        raise NotImplementedError

    def _weight_classes(self, y: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
        return sample_weight

    def _fit_target_scaling(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y

    def _scale_target(self, y: np.ndarray) -> np.ndarray:
        return y

    def _fit_target_range(self, y: np.ndarray, grow: bool) -> None:
        """Keep what prediction needs of the training targets ``y`` (regression: their range)."""

    # -- fitting ---------------------------------------------------------------
    def _threads(self):
        """Limit the CPU threads of torch's kernels to ``n_threads``, if set."""
        return engine.limit_threads(self.n_threads)

    def _fit(self, X, y, sample_weight, X_val, y_val):
        # A warm-start fit of a fitted model leaves it as it was when it fails
        # (it only replaces network_ at the end); any other failed fit leaves
        # the estimator unfitted, never a new encoding with an old network.
        with _one_fit_at_a_time(self):
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
        grow = self._check_fit_arguments(X_val, y_val)
        given_val = X_val is not None
        X, y, w, seed, n_distinct = self._training_rows(X, y, sample_weight, grow)
        X_tr, y_tr, w_tr, val = self._hold_out(X, y, w, X_val, y_val, seed, n_distinct)
        X_val = None if val is None else val[0]
        if grow:  # the grown experts keep the encoding they were trained on
            y_tr = self._scale_target(y_tr)
            Z = self.encoder_.transform(X_tr if X_val is None else np.concatenate([X_tr, X_val]))
        else:
            y_tr = self._fit_target_scaling(y_tr, w_tr)
            self.encoder_ = TableEncoder(self.schema_.is_categorical_, self.numeric_bins)
            Z = self.encoder_.fit_transform(X_tr, w_tr, *self._encoding_target(y_tr), seed, then=X_val)
        # One array of the encoded rows, training rows first: the fit sees two
        # views of it, the refit all of it.
        n_train = len(X_tr)
        train = (Z[:n_train], self._y_array(y_tr), w_tr)
        if val is not None:
            val = (Z[n_train:], self._y_array(self._scale_target(val[1])), val[2])
        config = self._train_config(n_train, val is not None)
        held_out = 0 if val is None else len(val[0])
        refits = self._refits(given_val, grow, held_out, n_train)
        first = outcome = self._train(train, val, config, seed, grow, probe=refits)
        if not outcome.interrupted and refits:
            rows = (Z, *(np.concatenate(parts) for parts in zip(train[1:], val[1:])))
            outcome = self._refit(outcome, rows, config, seed)
        if outcome.interrupted:
            if not outcome.history.phase:  # not one epoch done: nothing to keep
                raise KeyboardInterrupt
            warnings.warn(
                f"Training was interrupted (KeyboardInterrupt) in the {outcome.interrupted} "
                f"phase after {len(outcome.history.phase)} epochs. The model keeps the best "
                "weights found so far and can be used; fit again to train it fully.",
                UserWarning,
            )
        self.network_ = outcome.network
        self._fit_target_range(y, grow)
        self._set_history(outcome.history, append=grow)
        self._set_param_counts()
        self.expert_usage_ = outcome.usage
        if outcome is not first and self.checkpoint_dir is not None:
            self._write_checkpoint(self)  # the refit wrote none: the final model
        return self

    def _check_fit_arguments(self, X_val, y_val) -> bool:
        """Check the parameters that depend on one another; whether this fit grows."""
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k={self.top_k} must be <= n_experts={self.n_experts}.")
        if self.router == "voronoi" and self.top_k != 1:
            raise ValueError(
                f"router='voronoi' sends each row to exactly one expert, so top_k "
                f"must be 1, got top_k={self.top_k}; use router='learned' for top_k=2."
            )
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together.")
        if X_val is not None and self.early_stopping is False:
            raise ValueError(
                "X_val and y_val are only used for early stopping, but "
                "early_stopping=False; set early_stopping=True or 'auto'."
            )
        if self.refit is True and (X_val is not None or self.early_stopping is False):
            raise ValueError(
                "refit=True fits again on the training rows early stopping held out, "
                "so it needs early_stopping=True or 'auto' and no X_val; got "
                + ("X_val." if X_val is not None else "early_stopping=False.")
            )
        if self.checkpoint_dir is not None and not _persistence.replaceable(self.checkpoint_dir):
            raise ValueError(
                f"checkpoint_dir={str(self.checkpoint_dir)!r} exists and is not a saved "
                "skmoe model; checkpoints would replace it. Choose a new or empty folder."
            )
        if self.warm_start and not hasattr(self, "network_"):
            self._resume_from_checkpoint()
        grow = bool(self.warm_start) and hasattr(self, "network_")
        if grow:
            self._check_warm_start()
            if self.refit is True:
                raise ValueError(
                    "refit=True applies to a new fit; this warm start would grow the "
                    "fitted model. Set refit=False to grow it, or warm_start=False."
                )
        engine.check_device(self.device)
        return grow

    def _training_rows(self, X, y, sample_weight, grow: bool):
        """Validated rows, targets and weights (duplicates canonical), a seed and
        the number of distinct rows."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X = validate_X(self, X, reset=not grow)
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
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
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
        return (*expand_duplicates(*collapsed), seed, n_distinct)

    def _hold_out(self, X, y, w, X_val, y_val, seed: int, n_distinct: int):
        """``(X_tr, y_tr, w_tr, val)``; ``val`` is ``(X, y, w)`` for early stopping, or None."""
        use_val = self.early_stopping is True or (
            self.early_stopping == "auto"
            and (X_val is not None or n_distinct >= _AUTO_EARLY_STOPPING_MIN_ROWS)
        )
        if X_val is not None:
            X_val = validate_X_val(self, X_val)
            y_val = self._encode_y(check_y_val(y_val, len(X_val)), fitting=False)
            return X, y, w, (X_val, y_val, np.ones(len(X_val)))
        if not use_val:
            return X, y, w, None
        stratify = y if is_classifier(self) else None
        size = self._validation_size(len(X))
        try:
            parts = train_test_split(X, y, w, test_size=size, random_state=seed, stratify=stratify)
        except ValueError:  # a class too rare to stratify
            parts = train_test_split(X, y, w, test_size=size, random_state=seed)
        X_tr, X_val, y_tr, y_val, w_tr, w_val = parts
        return X_tr, y_tr, w_tr, (X_val, y_val, w_val)

    def _validation_size(self, n_rows: int) -> float | int:
        """``test_size`` of the validation split: a share, or a number of rows."""
        if self.validation_fraction != "auto":
            return self.validation_fraction
        if math.ceil(_AUTO_VALIDATION_SHARE * n_rows) <= _AUTO_VALIDATION_MAX_ROWS:
            return _AUTO_VALIDATION_SHARE
        return _AUTO_VALIDATION_MAX_ROWS

    def _train_config(self, n_train: int, early_stopping: bool) -> engine.TrainConfig:
        return engine.TrainConfig(
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            batch_size=self._resolve_batch_size(n_train),
            max_epochs=self.max_epochs,
            n_iter_no_change=self.n_iter_no_change,
            early_stopping=early_stopping,
            verbose=self.verbose,
            n_jobs=self.n_jobs,
            device=self.device,
            autocast=self.autocast,
            lr_schedule=self.lr_schedule,
            average_epochs=self.weight_averaging,
        )

    def _train(
        self, train, val, config: engine.TrainConfig, seed: int, grow: bool, probe: bool = False
    ) -> engine.FitOutcome:
        """Hand the encoded rows to the engine: a new fit, or a warm start that grows.

        ``probe``: a refit follows, so this fit only chooses its epochs and
        runs ``probe_members`` members (see ``probe_members``).
        """
        checkpoint = {}
        if self.checkpoint_dir is not None:
            checkpoint = dict(
                checkpoint=lambda net, history: self._checkpoint(net, history, grow),
                checkpoint_every=self.checkpoint_every,
            )
        if grow:
            return engine.fit_grown(
                self._architecture(), self.network_, self.best_epoch_, train, val, config, seed,
                self._loss, epoch_offset=self.n_iter_, **checkpoint,
            )
        arch = self._architecture()
        if probe and self.probe_members is not None and self.checkpoint_dir is None:
            arch = dataclasses.replace(arch, members=min(self.probe_members, arch.members))
        return engine.fit_new(arch, self._n_outputs(), train, val, config, seed, self._loss, **checkpoint)

    def _refits(self, given_val: bool, grow: bool, held_out: int, n_train: int) -> bool:
        """Whether a refit on all rows follows this fit (see ``refit``)."""
        if self.refit is False or given_val or grow or not held_out:
            return False
        # "auto": where the held-out rows are a small share of the table (from
        # 655,360 rows on, with the "auto" split) they are not worth another fit.
        return self.refit is True or held_out >= _AUTO_REFIT_MIN_SHARE * (n_train + held_out)

    def _refit(self, first: engine.FitOutcome, rows, config: engine.TrainConfig, seed: int):
        """``first`` fitted again on ``rows``, the training and validation rows together.

        The same encoding, routing, minibatch size and seed; the epochs early
        stopping kept in ``first``, which may have run fewer members (a probe,
        see ``probe_members``). Interrupted, ``first`` stays (the checkpoints,
        if any, are ``first``'s too), and so does a refit that diverged.
        """
        outcome = engine.refit(self._architecture(), first, self._n_outputs(), rows, config, seed, self._loss)
        if isinstance(outcome, str) or outcome.interrupted:
            members = engine.architecture(first.network)["expert_members"]
            kept = (f"the model is the early-stopped fit on the training rows ({members} "
                    f"members per expert), as with refit=False and expert_members={members}.")
            if isinstance(outcome, str):
                warnings.warn(f"The refit on all rows diverged ({outcome}); {kept}", ConvergenceWarning)
            else:
                warnings.warn(f"The refit on all rows was interrupted (KeyboardInterrupt); {kept}", UserWarning)
            return first
        return outcome

    def _architecture(self) -> engine.Architecture:
        return engine.Architecture(
            n_experts=self.n_experts, depth=self.expert_depth, width=self.expert_width,
            members=self.expert_members, prelu=self.prelu, router=self.router,
            top_k=self.top_k, voronoi_search=self.voronoi_search,
        )

    def _resolve_batch_size(self, n_train: int) -> int:
        if self.batch_size == "auto":
            # At least ~16 steps per epoch on small tables, 256 rows from 4,096 on.
            return int(np.clip(2 ** np.floor(np.log2(max(n_train, 1) / 16)), 32, 256))
        return min(self.batch_size, n_train)

    def _checkpoint(self, network, history, append: bool) -> None:
        """Save the best weights so far to ``checkpoint_dir`` as a loadable model."""
        snapshot = copy.copy(self)  # shares the fitted encoding; fitted state below is its own
        snapshot.network_ = network
        snapshot._set_history(history, append=append)
        n_experts = engine.architecture(network)["n_experts"]
        snapshot.best_epoch_ = np.full(n_experts, snapshot.n_iter_ - 1)
        load = np.asarray(history.expert_load[-1], dtype=float)
        if len(load) != n_experts:  # shared phase: one expert so far
            load = np.full(n_experts, 1.0)
        snapshot.expert_usage_ = load / max(load.sum(), 1e-12)
        snapshot._set_param_counts()
        self._write_checkpoint(snapshot)

    def _write_checkpoint(self, model) -> None:
        """Save ``model`` (this estimator or a snapshot of it) to ``checkpoint_dir``."""
        try:
            model.save(self.checkpoint_dir, overwrite=True)
        except OSError as exc:  # a full disk, a vanished folder: not worth the fit
            warnings.warn(
                f"Could not write a checkpoint to {str(self.checkpoint_dir)!r} ({exc}); "
                "training goes on, and the last checkpoint written (if any) stays.",
                UserWarning,
            )

    def _resume_from_checkpoint(self) -> None:
        """With ``warm_start=True``, an unfitted estimator takes up the model
        saved in ``checkpoint_dir`` (if any) and fit goes on from it."""
        # The newest complete checkpoint: the folder itself, or what a save
        # killed mid-swap left beside it.
        found = None if self.checkpoint_dir is None else _persistence.latest_model(self.checkpoint_dir)
        if found is None:
            return
        base = type(self)._saved_as
        saved_as = _persistence.read_header(found).get("estimator")
        if saved_as != base.__name__:
            raise ValueError(
                f"checkpoint_dir={str(self.checkpoint_dir)!r} holds a {saved_as}, "
                f"not a {type(self).__name__}; point checkpoint_dir elsewhere."
            )
        saved = _model_state.read_estimator(found, {base.__name__: base})
        for name, value in vars(saved).items():
            if name.endswith("_") or name in ("_y_1d", "_label_encoder"):
                setattr(self, name, value)

    def _check_warm_start(self) -> None:
        """A warm start grows the fitted model: its architecture must not change."""
        fitted = engine.architecture(self.network_)
        if not fitted["expert_depth"]:  # linear experts have no width to change
            fitted["expert_width"] = self.expert_width
        names = ("router", "top_k", "expert_depth", "expert_width", "prelu", "expert_members")
        changed = {k: fitted[k] for k in names if getattr(self, k) != fitted[k]}
        if changed:
            detail = ", ".join(f"{k}={getattr(self, k)!r} (fitted: {v!r})" for k, v in changed.items())
            raise ValueError(
                f"warm_start=True continues the fitted model, whose architecture cannot "
                f"change: {detail}. Set warm_start=False to fit a new model."
            )
        if self.n_experts < fitted["n_experts"]:
            raise ValueError(
                f"warm_start=True can only grow the model: n_experts={self.n_experts} is "
                f"less than the {fitted['n_experts']} fitted experts. Use prune_experts() to "
                "retire experts, or warm_start=False to fit a new model."
            )

    def _set_param_counts(self) -> None:
        counts = engine.param_counts(self.network_)
        self.n_experts_ = counts["n_experts"]
        self.n_params_total_ = counts["total"]
        self.n_params_active_ = counts["active"]

    def _set_history(self, history: engine.History, append: bool = False) -> None:
        """Per-epoch records; a warm start appends its epochs to the earlier ones."""
        names = ("phase", "train_loss", "validation_loss", "load_cv", "dead_experts",
                 "routing_entropy", "seconds")
        new = {name: list(getattr(history, name)) for name in names}
        new["expert_load"] = [np.asarray(x) for x in history.expert_load]
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
    def _on_encoded_rows(self, X, call, piecewise: bool = False):
        """``call(network_, n_rows, encode)`` on the rows of ``X``: the engine
        encodes them a chunk at a time through ``encode(start, stop)``.

        ``piecewise``: where the encoding has a piecewise-linear view, hand it
        over as one bin and one fill per column (``call`` then also gets the
        layout): the network looks the first layer's products up, bins times
        fewer numbers to encode and to multiply."""
        check_is_fitted(self, "network_")
        codes = validate_X(self, X, reset=False)
        layout = self.encoder_.piecewise_layout() if piecewise else None
        with self._threads():
            if layout is None:
                return call(self.network_, len(codes), lambda start, stop: self.encoder_.transform(codes[start:stop]))
            encode = lambda start, stop: self.encoder_.transform_piecewise(codes[start:stop])  # noqa: E731
            return call(self.network_, len(codes), encode, engine.PiecewiseLayout(*layout))

    def _map_chunks(self, X, fn) -> list:
        """``fn`` over the encoded rows of ``X`` (tensors), a chunk at a time;
        see :func:`skmoe._torch.api.map_chunks`."""
        return self._on_encoded_rows(X, lambda network, n, encode: engine.map_chunks(network, n, encode, fn))

    def _encoded(self, X) -> np.ndarray:
        """All rows of ``X`` as the network sees them (float32)."""
        check_is_fitted(self, "network_")
        return self.encoder_.transform(validate_X(self, X, reset=False))

    def _raw_predict(self, X) -> np.ndarray:
        """Network outputs (standardised target or logits) as float64."""
        return self._on_encoded_rows(X, engine.predict_raw, piecewise=True)

    def _route(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Experts ``(n, k)`` of each row, highest gate first, and their gates."""
        return self._on_encoded_rows(X, engine.route_rows, piecewise=True)

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
        report["n_params"] = engine.param_counts(self.network_)["per_expert"]
        prototypes = engine.prototypes(self.network_)
        if prototypes is not None:
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                names = [f"x{j}" for j in range(self.n_features_in_)]
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
        needed = engine.architecture(self.network_)["top_k"]
        if len(keep) < needed:
            raise ValueError(
                f"min_share={min_share} would leave {len(keep)} expert(s), but each row "
                f"needs {needed}; lower min_share."
            )
        self.network_ = engine.prune(self.network_, keep)
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
        tags.input_tags.sparse = True  # densified a block of rows at a time
        return tags

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
        check_is_fitted(self, "network_")
        return _persistence.write_model(path, *_model_state.estimator_state(self), overwrite=overwrite)

    def _fitted_values(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The estimator's own fitted values for a model file: header values, arrays."""
        return _model_state.fitted_common(self)

    def _set_fitted_values(self, fitted: dict, arrays, arch: dict) -> None:
        """The inverse of :meth:`_fitted_values`, checked against the network ``arch``."""
        _model_state.set_fitted_common(self, fitted, arrays, arch["n_experts"])

    def __getstate__(self):
        # A copy: BaseEstimator may hand back the live __dict__ itself. Fitted
        # components are pickled as JSON-ready specs and NumPy arrays, never as
        # skmoe objects or torch tensors: a pickle then loads without a GPU
        # whatever device it was fitted on, and a skops file of the estimator
        # names no type but the estimator's own (see TRUSTED_TYPES).
        state = _model_state.components_to_plain(dict(super().__getstate__()))
        state["_skmoe_versions"] = {k: str(v) for k, v in _persistence.versions().items()}
        return state

    def __setstate__(self, state):
        saved = state.pop("_skmoe_versions", None)
        state.update(_model_state.params_before(type(self), state))  # pickled before they existed
        if saved is not None:
            _persistence.warn_on_version_change(saved, f"This pickled {type(self).__name__}")
        super().__setstate__(_model_state.components_from_plain(state))


# Estimators (by id) with a fit running: two fits of one estimator at once
# would write one fitted state from two (target scaling of one, network of the
# other), so the second is refused. Not an attribute of the estimator, which
# must stay picklable and clonable.
_FITTING: set[int] = set()
_FITTING_LOCK = threading.Lock()


@contextlib.contextmanager
def _one_fit_at_a_time(estimator):
    with _FITTING_LOCK:
        if id(estimator) in _FITTING:
            raise RuntimeError(
                f"This {type(estimator).__name__} is being fitted in another thread; "
                "fit a clone of it instead (sklearn.base.clone), one estimator per thread."
            )
        _FITTING.add(id(estimator))
    try:
        yield
    finally:
        with _FITTING_LOCK:
            _FITTING.discard(id(estimator))


def _shares(routed: np.ndarray, n_experts: int) -> np.ndarray:
    """Share of the row-expert pairs ``routed`` ``(n, k)`` that each expert serves."""
    return np.bincount(routed.reshape(-1), minlength=n_experts) / routed.size


class MoERegressor(RegressorMixin, _BaseMoE):
    __doc__ = f"""Mixture of (P)ReLU MLP experts for regression.

    Each row is routed to one expert, by default the one whose Voronoi
    prototype is nearest (the MoMLP of Kratsios et al., TMLR 2025); each
    expert is a small (P)ReLU MLP, by default an ensemble of 8 that share
    their hidden layers. Inputs are scaled internally and the target is standardised; predictions
    are returned in the original units.

    Parameters
    ----------{COMMON_PARAMS_DOC}
    clip_predictions : bool, default=True
        Clip each prediction to the range of the training targets
        (``y_min_``, ``y_max_``), as a tree ensemble's predictions are by
        construction. The experts' (P)ReLU pieces are linear beyond the
        training data, so a row far outside it (or a censored target, such as
        prices capped at a limit) would otherwise get a prediction that no
        training row supports. ``False`` lets the experts extrapolate.

    Attributes
    ----------{COMMON_ATTRS_DOC}
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        Weighted mean and standard deviation of the training target.
    y_min_, y_max_ : ndarray of shape (n_outputs,)
        Smallest and largest training target (of the rows with a positive
        weight, the held-out validation rows included), the range
        ``clip_predictions`` clips to. ``None`` for a model fitted before
        skmoe kept it.

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

    _parameter_constraints: dict = {
        **_BaseMoE._parameter_constraints,
        "clip_predictions": ["boolean"],
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
        numeric_bins: int = 64,
        learning_rate: float = 2e-3,
        lr_schedule: str = "constant",
        weight_averaging: float = 2.0,
        batch_size: int | str = "auto",
        max_epochs: int = 200,
        weight_decay: float = 1e-4,
        early_stopping: bool | str = "auto",
        validation_fraction: float | str = "auto",
        n_iter_no_change: int = 10,
        refit: bool | str = "auto",
        probe_members: int | None = 2,
        warm_start: bool = False,
        checkpoint_dir=None,
        checkpoint_every: int = 10,
        random_state=None,
        device: str = "auto",
        n_threads: int | None = None,
        n_jobs: int | None = None,
        autocast: bool | str = "auto",
        verbose: int = 0,
        clip_predictions: bool = True,
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
            lr_schedule=lr_schedule,
            weight_averaging=weight_averaging,
            batch_size=batch_size,
            max_epochs=max_epochs,
            weight_decay=weight_decay,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            refit=refit,
            probe_members=probe_members,
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
        self.clip_predictions = clip_predictions

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
            holding out rows as ``validation_fraction`` says.

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
        bounds = self._clip_bounds()
        if bounds is not None:
            np.clip(out, *bounds, out=out)
        return out[:, 0] if self._y_1d else out

    def _clip_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(y_min_, y_max_)`` where predictions are clipped, else None.

        Models fitted before the range was kept have none: never clipped.
        """
        if not self.clip_predictions or getattr(self, "y_min_", None) is None:
            return None
        return self.y_min_, self.y_max_

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

    def _fit_target_range(self, y, grow):
        # All rows fit saw (the held-out ones too: the refit trains on them);
        # a grown model keeps the range of its earlier fits as well.
        lo, hi = y.min(axis=0), y.max(axis=0)
        if grow and getattr(self, "y_min_", None) is not None:
            lo, hi = np.minimum(lo, self.y_min_), np.maximum(hi, self.y_max_)
        self.y_min_, self.y_max_ = lo, hi

    def _n_outputs(self):
        return self.n_outputs_

    def _encoding_target(self, y):
        # TargetEncoder takes one continuous target; multi-output skips it.
        return (y[:, 0], "continuous") if y.shape[1] == 1 else (None, None)

    def _y_array(self, y):
        return np.asarray(y, dtype=np.float32)

    _loss = staticmethod(engine.squared_error)

    def _fitted_values(self):
        fitted, arrays = super()._fitted_values()
        arrays["y_mean_"] = np.asarray(self.y_mean_, dtype=np.float64)
        arrays["y_scale_"] = np.asarray(self.y_scale_, dtype=np.float64)
        if getattr(self, "y_min_", None) is not None:
            arrays["y_min_"] = np.asarray(self.y_min_, dtype=np.float64)
            arrays["y_max_"] = np.asarray(self.y_max_, dtype=np.float64)
        fitted["n_outputs_"] = int(self.n_outputs_)
        fitted["y_1d"] = bool(self._y_1d)
        return fitted, arrays

    def _set_fitted_values(self, fitted, arrays, arch):
        self.y_mean_, self.y_scale_ = arrays.finite("y_mean_"), arrays.finite("y_scale_", positive=True)
        try:
            self.n_outputs_, self._y_1d = int(fitted["n_outputs_"]), bool(fitted["y_1d"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"The model header is incomplete or malformed: {exc!r}.") from None
        n_outputs = self.n_outputs_
        if self.y_mean_.shape != (n_outputs,) or self.y_scale_.shape != (n_outputs,):
            raise ModelFileError("The target scaling does not match the number of outputs.")
        # Files written before the target range was kept have none.
        self.y_min_ = self.y_max_ = None
        if arrays.has("y_min_") or arrays.has("y_max_"):
            self.y_min_ = arrays.finite("y_min_", (n_outputs,))
            self.y_max_ = arrays.finite("y_max_", (n_outputs,))
            if not (self.y_min_ <= self.y_max_).all():
                raise ModelFileError("The target range's minimum exceeds its maximum.")
        _check_outputs(arch, n_outputs)
        super()._set_fitted_values(fitted, arrays, arch)

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
    ----------{COMMON_PARAMS_DOC}
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``; as in
        :class:`sklearn.linear_model.LogisticRegression`.

    Attributes
    ----------{COMMON_ATTRS_DOC}
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
        numeric_bins: int = 64,
        learning_rate: float = 2e-3,
        lr_schedule: str = "constant",
        weight_averaging: float = 2.0,
        batch_size: int | str = "auto",
        max_epochs: int = 200,
        weight_decay: float = 1e-4,
        early_stopping: bool | str = "auto",
        validation_fraction: float | str = "auto",
        n_iter_no_change: int = 10,
        refit: bool | str = "auto",
        probe_members: int | None = 2,
        warm_start: bool = False,
        checkpoint_dir=None,
        checkpoint_every: int = 10,
        class_weight=None,
        random_state=None,
        device: str = "auto",
        n_threads: int | None = None,
        n_jobs: int | None = None,
        autocast: bool | str = "auto",
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
            lr_schedule=lr_schedule,
            weight_averaging=weight_averaging,
            batch_size=batch_size,
            max_epochs=max_epochs,
            weight_decay=weight_decay,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            refit=refit,
            probe_members=probe_members,
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
            holding out rows as ``validation_fraction`` says.

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
        return engine.log_softmax(self._logits(X))

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

    def _y_array(self, y):
        return np.asarray(y, dtype=np.int64)

    _loss = staticmethod(engine.log_loss)

    def _fitted_values(self):
        fitted, arrays = super()._fitted_values()
        arrays["classes_"], fitted["classes_dtype"] = _model_state.classes_to_array(self.classes_)
        return fitted, arrays

    def _set_fitted_values(self, fitted, arrays, arch):
        classes = arrays.get("classes_", "fiubU")
        self.classes_ = _model_state.classes_from_array(classes, fitted.get("classes_dtype"))
        self._label_encoder = LabelEncoder()
        self._label_encoder.classes_ = self.classes_
        _check_outputs(arch, 1 if len(self.classes_) == 2 else len(self.classes_))
        super()._set_fitted_values(fitted, arrays, arch)


# A subclass is saved as the skmoe estimator it derives from.
MoERegressor._saved_as = MoERegressor
MoEClassifier._saved_as = MoEClassifier
# Their public names: pickles and skops files then name skmoe.MoERegressor, the
# path skmoe.TRUSTED_TYPES gives, not this private module.
MoERegressor.__module__ = MoEClassifier.__module__ = "skmoe"


def _check_outputs(arch: dict, n_outputs: int) -> None:
    if arch["n_outputs"] != n_outputs:
        raise ModelFileError(
            f"The experts give {arch['n_outputs']} outputs, but the target needs {n_outputs}."
        )
