"""A fitted network as plain NumPy arrays, and back, with every shape checked.

Each component turns itself into arrays and back (``ExpertBank``, the
routers and the prototype tree have ``to_arrays`` / ``from_arrays``); this
module puts them together under a ``spec`` and cuts the experts into shards.

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

from .arrays import ModelFileError, checked_tensor
from .experts import ExpertBank, param_shapes
from .routing import LearnedRouter, MoENetwork, VoronoiRouter

__all__ = ["ModelFileError", "bank_sizes", "expert_from_shard", "network_from_arrays",
           "network_to_arrays", "router_from_arrays", "split_experts"]

_ROUTERS = {"voronoi": VoronoiRouter, "learned": LearnedRouter}


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
    router_spec, router_arrays = router.to_arrays()
    spec["router"] = router_spec
    arrays = {f"bank/{k}": v for k, v in bank.to_arrays().items()}
    arrays.update({f"router/{k}": v for k, v in router_arrays.items()})
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
    return ExpertBank.from_arrays((E, d, n_out, depth, max(width, 1), prelu, members), arrays, "bank/")


def expert_from_shard(spec: dict, shard: dict[str, np.ndarray]) -> dict[str, list[torch.Tensor]]:
    """One expert's ``weights``, ``biases``, ``slopes`` and ``adapters`` from its shard, checked."""
    _, *expert_sizes = bank_sizes(spec)
    return {
        group: [checked_tensor(shard, f"{group}{i}", shape, "float") for i, shape in enumerate(shapes)]
        for group, shapes in param_shapes(*expert_sizes).items()
    }


def router_from_arrays(spec: dict, arrays: dict[str, np.ndarray]) -> VoronoiRouter | LearnedRouter:
    """The router, from ``router/...`` arrays, checked against the experts' sizes."""
    E, d = bank_sizes(spec)[:2]
    try:
        router_spec = dict(spec["router"])
        kind = router_spec["kind"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The router description is incomplete or malformed: {exc!r}.") from None
    if kind not in _ROUTERS:
        raise ModelFileError(f"Unknown router kind {kind!r}.")
    return _ROUTERS[kind].from_arrays(router_spec, arrays, "router/", E, d)


def split_experts(arrays: dict[str, np.ndarray]) -> tuple[dict, list[dict]]:
    """Separate the router's arrays from one shard of weights per expert."""
    shared = {k: v for k, v in arrays.items() if not k.startswith("bank/")}
    stacked = {k[len("bank/") :]: v for k, v in arrays.items() if k.startswith("bank/")}
    n_experts = len(next(iter(stacked.values())))
    shards = [{k: v[e] for k, v in stacked.items()} for e in range(n_experts)]
    return shared, shards
