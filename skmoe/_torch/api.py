"""The one door from the estimators into the engine.

The scikit-learn front (``skmoe._estimators`` and friends) hands NumPy arrays
and plain settings to the calls here and gets NumPy arrays, plain values and a
fitted :class:`MoENetwork` back; it never imports another engine module. The
engine in turn imports nothing from outside :mod:`skmoe._torch`.

* Fitting: :func:`fit_new` (a shared warm-up, then specialisation),
  :func:`fit_grown` (a warm start that splits the busiest experts first) and
  :func:`refit` (a fitted mixture again on all rows, for the epochs early
  stopping chose).
* Inference: :func:`map_chunks`, :func:`predict_raw`, :func:`route_rows`,
  chunked with an out-of-memory fall-back.
* Inspecting and changing a fitted network: :func:`architecture`,
  :func:`param_counts`, :func:`prototypes`, :func:`prune`.
* Arrays and back: :func:`network_state` and :func:`open_network` (eager or
  lazy, from shards) for model folders; :func:`network_to_arrays` and
  :func:`network_from_arrays` for pickles.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import device as _device
from .device import free_cuda_cache, inference_dtype, limit_threads, resolve_device, training_autocast
from .experts import ExpertBank, expert_params
from .lazy import LazyExpertBank
from .piecewise import PiecewiseLayout, PiecewiseRows
from .routing import LearnedRouter, MoENetwork, PrototypeTree, VoronoiRouter, route_in_chunks
from .state import (
    ModelFileError,
    network_from_arrays,
    network_to_arrays,
    router_from_arrays,
    split_experts,
)
from .prototypes import fit_prototypes, fit_routing_tree
from .steering import grow_network, prune_network
from .training import EpochPlan, History, RefitDiverged, Split, TrainConfig, Trainer, log_loss, squared_error

__all__ = [
    "Architecture", "FitOutcome", "History", "ModelFileError", "MoENetwork", "PiecewiseLayout", "TrainConfig",
    "architecture", "check_device", "expert_params", "fit_grown", "fit_new", "limit_threads", "log_loss",
    "log_softmax",
    "map_chunks", "network_from_arrays", "network_state", "network_to_arrays", "open_network",
    "param_counts",
    "predict_raw", "prototypes", "prune", "refit", "route_rows", "router_params", "squared_error",
]

# The learned router's balancing bias moves by this much per step.
_BALANCE_RATE = 1e-2
# voronoi_search="auto" searches the prototypes through a tree from this many experts.
_AUTO_TREE_MIN_EXPERTS = 256

Rows = tuple[np.ndarray, np.ndarray, np.ndarray]  # encoded X (n, d), y, sample weights (n,)


@dataclass(frozen=True)
class Architecture:
    """The shape of a mixture, as the estimators' parameters give it."""

    n_experts: int
    depth: int
    width: int
    members: int
    prelu: bool
    router: str  # "voronoi" or "learned"
    top_k: int
    voronoi_search: str  # "auto", "exact" or "tree"

    def use_tree(self, n_experts: int) -> bool:
        """Whether Voronoi routing over ``n_experts`` searches through a tree."""
        if self.router != "voronoi" or self.voronoi_search == "exact":
            return False
        return self.voronoi_search == "tree" or n_experts >= _AUTO_TREE_MIN_EXPERTS


@dataclass
class FitOutcome:
    """What a fit hands back to the front."""

    network: MoENetwork  # in eval mode
    history: History
    interrupted: str | None  # the phase a KeyboardInterrupt stopped, if any
    usage: np.ndarray  # (n_experts,) share of the training rows (row-expert pairs) per expert


# -- fitting --------------------------------------------------------------------
def check_device(device: str) -> None:
    """Refuse a ``device`` setting that this machine cannot run (before any work)."""
    resolve_device(device)


def fit_new(
    arch: Architecture,
    n_outputs: int,
    train: Rows,
    val: Rows | None,
    config: TrainConfig,
    seed: int,
    loss_fn,
    checkpoint: Callable[[MoENetwork, History], None] | None = None,
    checkpoint_every: int = 10,
) -> FitOutcome:
    """Fit a new mixture on encoded rows ``train = (Z, y, w)``.

    ``y`` is float32 ``(n, o)`` for regression, int64 class codes ``(n,)``
    for classification; ``val`` is held out for early stopping.
    """
    Z, _, w = train
    trainer = Trainer(loss_fn, config, torch.Generator().manual_seed(seed),
                      checkpoint=checkpoint, checkpoint_every=checkpoint_every)

    def run(train_split: Split, val_split: Split | None) -> MoENetwork:
        bank, router = _new_network(arch, Z, w, n_outputs, seed, trainer.generator)
        return trainer.fit(bank, router, train_split, val_split)

    return _guarded(arch, config, train, val, trainer, run)


def fit_grown(
    arch: Architecture,
    network: MoENetwork,
    baseline_epoch: np.ndarray,
    train: Rows,
    val: Rows | None,
    config: TrainConfig,
    seed: int,
    loss_fn,
    epoch_offset: int,
    checkpoint: Callable[[MoENetwork, History], None] | None = None,
    checkpoint_every: int = 10,
) -> FitOutcome:
    """Grow a fitted ``network`` to ``arch.n_experts`` and train it further.

    ``baseline_epoch`` is the epoch each fitted expert's weights come from;
    ``epoch_offset`` the epochs run so far. ``network`` itself is not changed.
    """
    Z, _, w = train
    trainer = Trainer(loss_fn, config, torch.Generator().manual_seed(seed), epoch_offset=epoch_offset,
                      checkpoint=checkpoint, checkpoint_every=checkpoint_every)

    def run(train_split: Split, val_split: Split | None) -> MoENetwork:
        grown, source = grow_network(network, Z, w, arch.n_experts, seed, arch.use_tree(arch.n_experts))
        return trainer.fit_more(grown, train_split, val_split, baseline_epoch[source])

    return _guarded(arch, config, train, val, trainer, run)


def _guarded(
    arch: Architecture,
    config: TrainConfig,
    train: Rows,
    val: Rows | None,
    trainer: Trainer,
    run: Callable[[Split, Split | None], MoENetwork],
) -> FitOutcome:
    """``run`` on the data moved to the device, under autocast, the global RNG
    left as it was, and an out-of-memory error that says what to lower."""
    device = resolve_device(config.device)
    torch_state = torch.random.get_rng_state()
    try:
        # The training rows live on the device for the whole fit.
        train_split = _to_split(*train, device)
        val_split = _to_split(*val, device) if val is not None else None
        with training_autocast(config.autocast, device):
            network = run(train_split, val_split)
    except torch.OutOfMemoryError as exc:
        free_cuda_cache(device)
        n, d = train[0].shape
        raise torch.OutOfMemoryError(
            f"Out of GPU memory while fitting on {device}, with batch_size="
            f"{config.batch_size}, expert_width={arch.width}, "
            f"expert_depth={arch.depth} and {n} training rows "
            f"(about {n * d * 4 / 2**20:.0f} MiB once encoded, held on the device). Lower "
            "batch_size first, then expert_width, or fit with device='cpu'."
        ) from exc
    finally:
        torch.random.set_rng_state(torch_state)
    network.eval()
    with torch.inference_mode():
        routed = route_in_chunks(network.router, train_split.X, _device.CHUNK_ROWS).cpu().numpy()
    usage = np.bincount(routed.reshape(-1), minlength=network.bank.n_experts) / routed.size
    return FitOutcome(network, trainer.history, trainer.interrupted, usage)


def refit(
    arch: Architecture,
    first: FitOutcome,
    n_outputs: int,
    rows: Rows,
    config: TrainConfig,
    seed: int,
    loss_fn,
) -> FitOutcome | str:
    """Fit ``first``'s mixture again on ``rows`` (its training and validation rows together).

    The refit keeps ``first``'s router (the same cells) and draws its initial
    weights from the same seed (the same weights where ``arch`` has as many
    members as ``first``, which may be a cheaper probe with fewer); each phase and each expert runs the epochs whose
    weights early stopping kept in ``first`` (:class:`EpochPlan`), with no
    validation. The returned history is ``first``'s, then the refit's epochs,
    their phases prefixed with ``"refit "``. A refit whose loss becomes
    non-finite returns why, as a string (``first`` is then the model to keep).
    """
    Z, _, _ = rows
    plan = EpochPlan.kept_by(first.history)
    config = dataclasses.replace(config, early_stopping=False, epoch_plan=plan)
    trainer = Trainer(loss_fn, config, torch.Generator().manual_seed(seed),
                      epoch_offset=len(first.history.phase), phase_prefix="refit ")

    def run(train_split: Split, _: None) -> MoENetwork:
        bank = _new_bank(arch, Z.shape[1], n_outputs, trainer.generator)
        return trainer.fit(bank, copy.deepcopy(first.network.router), train_split, None)

    try:
        outcome = _guarded(arch, config, rows, None, trainer, run)
    except RefitDiverged as exc:
        return str(exc)
    outcome.history = first.history.followed_by(outcome.history)
    return outcome


def _new_bank(arch: Architecture, n_inputs: int, n_outputs: int, generator: torch.Generator) -> ExpertBank:
    """A single expert, freshly initialised: the shared phase's network."""
    bank = ExpertBank(1, n_inputs, n_outputs, arch.depth, arch.width, arch.prelu, arch.members)
    bank.reset_parameters(generator)
    return bank


def _new_network(
    arch: Architecture, Z: np.ndarray, w: np.ndarray, n_outputs: int, seed: int, generator: torch.Generator
) -> tuple[ExpertBank, VoronoiRouter | LearnedRouter]:
    """A single shared expert (trained first) and the router of the mixture."""
    bank = _new_bank(arch, Z.shape[1], n_outputs, generator)
    if arch.router == "learned":
        return bank, LearnedRouter(Z.shape[1], arch.n_experts, arch.top_k, _BALANCE_RATE)
    centres = fit_prototypes(Z, w, arch.n_experts, seed)
    tree = None
    if arch.use_tree(arch.n_experts):
        tree = PrototypeTree.from_numpy(*fit_routing_tree(centres, Z, w, seed))
    return bank, VoronoiRouter(torch.from_numpy(centres), tree)


def _to_split(Z: np.ndarray, y: np.ndarray, w: np.ndarray, device: torch.device) -> Split:
    return Split(
        X=torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32)).to(device),
        y=torch.from_numpy(y).to(device),
        w=torch.from_numpy(np.asarray(w, dtype=np.float32)).to(device),
    )


# -- inference --------------------------------------------------------------------
def map_chunks(
    network: MoENetwork, n_rows: int, encode: Callable[[int, int], np.ndarray], fn,
    layout: PiecewiseLayout | None = None,
) -> list:
    """``fn`` over the encoded rows, a chunk at a time, in row order.

    ``encode(start, stop)`` gives rows ``start:stop`` encoded; with a
    ``layout``, as the arrays ``(dense, bins, fills)`` of
    :class:`~skmoe._torch.piecewise.PiecewiseRows` (``fn`` then gets those). A chunk that
    runs out of GPU memory is halved and retried; a row's result does not
    depend on the rows it shares a chunk with (see
    :class:`~skmoe._torch.experts.ExpertBank`), so the answer is the same.
    """
    device = network.bank.device
    # apply() routes the same chunks, so it names the expert predict() used.
    dtype = inference_dtype(device)
    results, start, chunk = [], 0, _device.CHUNK_ROWS
    with torch.inference_mode():
        while start < n_rows:
            # Encoded a chunk at a time: the encoding is about 18 numbers
            # per numeric column, too many to hold for all rows at once.
            x = _as_rows(encode(start, min(start + chunk, n_rows)), layout)
            try:
                results.append(fn(x.to(device, dtype)))
            except torch.OutOfMemoryError as exc:
                if chunk <= _device.MIN_PREDICT_CHUNK:
                    raise torch.OutOfMemoryError(
                        f"Out of GPU memory predicting {chunk} rows at a time on {device}: "
                        "the model itself barely fits. Free GPU memory (other models, "
                        "tensors), or load the model on the CPU (skmoe.load, or pickle, "
                        "gives a CPU model)."
                    ) from exc
                free_cuda_cache(device)
                chunk //= 2
                continue
            start += len(x)
    return results


def _as_rows(encoded, layout: PiecewiseLayout | None) -> torch.Tensor | PiecewiseRows:
    """One chunk of ``encode``'s arrays as the tensors the network takes."""
    if layout is None:
        return torch.from_numpy(encoded)
    dense, bins, fills = (torch.from_numpy(a) for a in encoded)
    return PiecewiseRows(dense, bins, fills, layout)


def predict_raw(
    network: MoENetwork, n_rows: int, encode: Callable[[int, int], np.ndarray],
    layout: PiecewiseLayout | None = None,
) -> np.ndarray:
    """Network outputs (standardised target or logits) ``(n, o)`` as float64
    (``encode`` and ``layout`` as in :func:`map_chunks`)."""
    outputs = map_chunks(network, n_rows, encode, lambda x: network(x).double().cpu().numpy(), layout)
    return np.concatenate(outputs)


def route_rows(
    network: MoENetwork, n_rows: int, encode: Callable[[int, int], np.ndarray],
    layout: PiecewiseLayout | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Experts ``(n, k)`` of each row, highest gate first, and their gates (float64)."""

    def route(x):
        e, g = network.router(x)
        if g is not None and e.shape[1] > 1:  # highest gate first
            g, order = g.sort(dim=1, descending=True, stable=True)
            e = e.gather(1, order)
        return e.cpu().numpy(), np.ones(e.shape) if g is None else g.double().cpu().numpy()

    experts, gates = zip(*map_chunks(network, n_rows, encode, route, layout))
    return np.concatenate(experts), np.concatenate(gates)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of float64 logits."""
    return F.log_softmax(torch.from_numpy(logits), dim=1).numpy()


# -- a fitted network -----------------------------------------------------------
def architecture(network: MoENetwork) -> dict:
    """The fitted shape, named as the estimators' parameters."""
    bank, router = network.bank, network.router
    return {
        "router": "learned" if isinstance(router, LearnedRouter) else "voronoi",
        "top_k": int(router.top_k),
        "n_experts": int(router.n_experts),
        "expert_depth": int(bank.depth),
        "expert_width": int(bank.width),
        "prelu": bool(bank.prelu),
        "expert_members": int(bank.members),
        "n_inputs": int(bank.n_inputs),
        "n_outputs": int(bank.n_outputs),
    }


def router_params(n_inputs: int, n_experts: int, router: str) -> int:
    """Parameters of a router: the prototypes, or the linear gate's weights and biases."""
    return n_experts * n_inputs + (n_experts if router == "learned" else 0)


def param_counts(network: MoENetwork) -> dict[str, int]:
    """``n_experts``, ``per_expert``, ``total`` and ``active`` (one row's) parameters."""
    arch = architecture(network)
    per_expert = network.bank.n_params_per_expert()
    router = network.router
    # A pruned learned router keeps its retired gate rows: count what it holds.
    n_rows = router.gate.out_features if isinstance(router, LearnedRouter) else router.n_experts
    routing = router_params(arch["n_inputs"], n_rows, arch["router"])
    return {
        "n_experts": arch["n_experts"],
        "per_expert": per_expert,
        "total": arch["n_experts"] * per_expert + routing,
        "active": arch["top_k"] * per_expert + routing,
    }


def prototypes(network: MoENetwork) -> np.ndarray | None:
    """The Voronoi prototypes ``(n_experts, n_inputs)`` as float64, None for a learned router."""
    router = network.router
    if not isinstance(router, VoronoiRouter):
        return None
    return router.prototypes.double().cpu().numpy()


def prune(network: MoENetwork, keep: np.ndarray) -> MoENetwork:
    """The network with only the experts ``keep``; see :func:`.steering.prune_network`."""
    return prune_network(network, keep)


# -- arrays and back ----------------------------------------------------------------
def network_state(network: MoENetwork) -> tuple[dict, dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """``(spec, router arrays, one shard of arrays per expert)`` of ``network``."""
    spec, arrays = network_to_arrays(network)
    shared, shards = split_experts(arrays)
    return spec, shared, shards


def open_network(
    spec: dict,
    arrays: dict[str, np.ndarray],
    read_shard: Callable[[int], dict[str, np.ndarray]],
    *,
    lazy: bool,
    max_experts_in_memory: int | None,
    device: str,
) -> MoENetwork:
    """A saved network: the router from ``arrays``, each expert from ``read_shard(e)``.

    With ``lazy`` the experts are read when a batch first needs them (at most
    ``max_experts_in_memory`` at once); otherwise one by one now.
    """
    target = resolve_device(device)
    bank = LazyExpertBank(spec, read_shard, max_experts_in_memory, target)
    if not lazy:  # read the shards one by one into the bank: peak memory ~ the weights once
        bank = bank.materialize()
    network = MoENetwork(router_from_arrays(spec, arrays), bank)
    network.eval()
    network.router.to(target)
    network.bank.to(target)
    return network
