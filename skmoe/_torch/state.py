"""A fitted network as plain NumPy arrays, and back, with every shape checked.

Saved models and pickles both store a network this way, so that loading one
never unpickles a torch object: no code runs, no CUDA device is needed, and
torch's own serialisation format can change without breaking old files.

The description is a JSON-ready ``spec`` plus named arrays: ``router/...``
for the router, and ``bank/weights{i}``, ``bank/biases{i}``, ``bank/slopes{i}``
(and ``bank/adapters0`` for ensemble experts) stacked over experts (first
axis), which :func:`split_experts` cuts into one shard per expert (read back
one at a time by :func:`expert_from_shard`).
"""

from __future__ import annotations

import numpy as np
import torch

from .experts import PARAM_GROUPS, ExpertBank
from .routing import LearnedRouter, MoENetwork, PrototypeTree, VoronoiRouter


class ModelFileError(ValueError):
    """A saved model (or a pickled network) is malformed, truncated or tampered with."""


def network_to_arrays(network: MoENetwork) -> tuple[dict, dict[str, np.ndarray]]:
    """The ``spec`` and arrays that :func:`network_from_arrays` rebuilds ``network`` from."""
    bank, router = network.bank, network.router
    if hasattr(bank, "materialize"):  # experts loaded on demand: read them all
        bank = bank.materialize()
    spec = {
        "n_experts": int(bank.n_experts),
        "n_inputs": int(bank.n_inputs),
        "n_outputs": int(bank.n_outputs),
        "depth": bank.depth,
        "width": int(bank.width),
        "prelu": bool(bank.prelu),
        "members": int(bank.members),
    }
    arrays = {}
    for group in PARAM_GROUPS:
        for i, param in enumerate(getattr(bank, group)):
            arrays[f"bank/{group}{i}"] = _numpy(param)
    if isinstance(router, VoronoiRouter):
        spec["router"] = {"kind": "voronoi", "tree": router.tree is not None}
        arrays["router/prototypes"] = _numpy(router.prototypes)
        if router.tree is not None:
            arrays["router/tree_centres"] = _numpy(router.tree.centres)
            arrays["router/tree_members"] = _numpy(router.tree.members)
            arrays["router/tree_offsets"] = _numpy(router.tree.offsets)
    else:
        spec["router"] = {
            "kind": "learned",
            "top_k": int(router.top_k),
            "balance_rate": float(router.balance_rate),
            "n_gate_rows": int(router.gate.out_features),
        }
        arrays["router/gate_weight"] = _numpy(router.gate.weight)
        arrays["router/gate_bias"] = _numpy(router.gate.bias)
        arrays["router/balance_bias"] = _numpy(router.balance_bias)
        arrays["router/expert_id"] = _numpy(router.expert_id)
    return spec, arrays


def network_from_arrays(spec: dict, arrays: dict[str, np.ndarray]) -> MoENetwork:
    """Rebuild a network on the CPU, refusing arrays of the wrong shape or kind."""
    network = MoENetwork(router_from_arrays(spec, arrays), bank_from_arrays(spec, arrays))
    network.eval()
    return network


def bank_sizes(spec: dict) -> tuple[int, int, int, int, int, bool, int]:
    """``(n_experts, n_inputs, n_outputs, depth, width, prelu, members)`` of a checked spec.

    Files written before ensemble experts existed have no ``members``: one.
    """
    try:
        E, d, n_out = int(spec["n_experts"]), int(spec["n_inputs"]), int(spec["n_outputs"])
        depth, width, prelu = int(spec["depth"]), int(spec["width"]), bool(spec["prelu"])
        members = int(spec.get("members", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The network description is incomplete or malformed: {exc!r}.") from None
    if min(E, d, n_out, members) < 1 or depth < 0 or (depth and width < 1):
        raise ModelFileError(f"The network description has impossible sizes: {spec}.")
    return E, d, n_out, depth, width, prelu, members


def bank_from_arrays(spec: dict, arrays: dict[str, np.ndarray]) -> ExpertBank:
    """The experts, from ``bank/...`` arrays stacked over experts."""
    E, d, n_out, depth, width, prelu, members = bank_sizes(spec)
    bank = ExpertBank(E, d, n_out, depth, max(width, 1), prelu, members)
    with torch.no_grad():
        for group in PARAM_GROUPS:
            for i, param in enumerate(getattr(bank, group)):
                param.copy_(_tensor(arrays, f"bank/{group}{i}", tuple(param.shape), "float"))
    return bank


def expert_from_shard(spec: dict, shard: dict[str, np.ndarray]) -> dict[str, list[torch.Tensor]]:
    """One expert's ``weights``, ``biases``, ``slopes`` and ``adapters`` from its shard, checked."""
    _, d, n_out, depth, width, prelu, members = bank_sizes(spec)
    dims = [d] + [width] * depth + [n_out * members]
    return {
        "weights": [
            _tensor(shard, f"weights{i}", (a, b), "float") for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
        ],
        "biases": [_tensor(shard, f"biases{i}", (b,), "float") for i, b in enumerate(dims[1:])],
        "slopes": [_tensor(shard, f"slopes{i}", (width,), "float") for i in range(depth if prelu else 0)],
        "adapters": [
            _tensor(shard, "adapters0", (members, d), "float") for _ in range(members > 1)
        ],
    }


def router_from_arrays(spec: dict, arrays: dict[str, np.ndarray]) -> VoronoiRouter | LearnedRouter:
    """The router, from ``router/...`` arrays, checked against the experts' sizes."""
    E, d = bank_sizes(spec)[:2]
    try:
        router_spec = dict(spec["router"])
        kind = router_spec["kind"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The router description is incomplete or malformed: {exc!r}.") from None
    if kind == "voronoi":
        router = VoronoiRouter(_tensor(arrays, "router/prototypes", (E, d), "float"))
        if router_spec.get("tree"):
            router.tree = _tree(arrays, E, d)
        return router
    if kind != "learned":
        raise ModelFileError(f"Unknown router kind {kind!r}.")
    rows = int(router_spec.get("n_gate_rows", E))
    router = LearnedRouter(d, rows, int(router_spec.get("top_k", 1)), float(router_spec.get("balance_rate", 0.0)))
    if router.top_k not in (1, 2) or router.top_k > E:
        raise ModelFileError(f"The learned router's top_k={router.top_k} is invalid for {E} experts.")
    with torch.no_grad():
        router.gate.weight.copy_(_tensor(arrays, "router/gate_weight", (rows, d), "float"))
        router.gate.bias.copy_(_tensor(arrays, "router/gate_bias", (rows,), "float"))
        router.balance_bias.copy_(_tensor(arrays, "router/balance_bias", (rows,), "float"))
        expert_id = _tensor(arrays, "router/expert_id", (rows,), "int")
        served = np.sort(expert_id[expert_id >= 0].numpy())
        if expert_id.min() < -1 or not np.array_equal(served, np.arange(E)):
            raise ModelFileError(
                f"router/expert_id must name each of the {E} experts once (-1 for a "
                "retired gate row)."
            )
        router.expert_id.copy_(expert_id)
    return router


def split_experts(arrays: dict[str, np.ndarray]) -> tuple[dict, list[dict]]:
    """Separate the router's arrays from one shard of weights per expert."""
    shared = {k: v for k, v in arrays.items() if not k.startswith("bank/")}
    stacked = {k[len("bank/") :]: v for k, v in arrays.items() if k.startswith("bank/")}
    n_experts = len(next(iter(stacked.values())))
    shards = [{k: v[e] for k, v in stacked.items()} for e in range(n_experts)]
    return shared, shards


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _tensor(arrays: dict, name: str, shape: tuple, kind: str) -> torch.Tensor:
    """``arrays[name]`` as a tensor, checked for presence, shape, kind and finiteness."""
    if name not in arrays:
        raise ModelFileError(f"The array {name!r} is missing.")
    a = np.asarray(arrays[name])
    if a.shape != shape:
        raise ModelFileError(f"The array {name!r} has shape {a.shape}, expected {shape}.")
    if kind == "float":
        if a.dtype.kind != "f":
            raise ModelFileError(f"The array {name!r} has dtype {a.dtype}, expected floats.")
        if not np.isfinite(a).all():
            raise ModelFileError(f"The array {name!r} holds NaN or infinite values.")
        return torch.from_numpy(a.astype(np.float32))
    if a.dtype.kind not in "iu":
        raise ModelFileError(f"The array {name!r} has dtype {a.dtype}, expected integers.")
    return torch.from_numpy(a.astype(np.int64))


def _tree(arrays: dict, n_experts: int, d: int) -> PrototypeTree:
    offsets = arrays.get("router/tree_offsets")
    members = arrays.get("router/tree_members")
    if offsets is None or members is None:
        raise ModelFileError("The routing tree's arrays are missing.")
    offsets = _tensor(arrays, "router/tree_offsets", (len(offsets),), "int")
    members = _tensor(arrays, "router/tree_members", (len(members),), "int")
    n_groups = len(offsets) - 1
    centres = _tensor(arrays, "router/tree_centres", (n_groups, d), "float")
    steps = offsets.diff()
    if (
        n_groups < 1
        or offsets[0] != 0
        or offsets[-1] != len(members)
        or (steps < 1).any()
        or (len(members) and (members.min() < 0 or members.max() >= n_experts))
    ):
        raise ModelFileError("The routing tree's groups do not index the prototypes consistently.")
    return PrototypeTree(centres, list(members.split(steps.tolist())))
