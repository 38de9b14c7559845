"""Changing a fitted mixture: retiring experts and growing new ones.

Both work on a fitted :class:`~skmoe._torch.routing.MoENetwork` and return a
new one; the estimators wrap them as ``prune_experts`` and ``warm_start``.
"""

from __future__ import annotations

import numpy as np
import torch

from .device import inference_dtype
from .prototypes import fit_routing_tree, split_cell
from .routing import (
    MoENetwork,
    PrototypeTree,
    VoronoiRouter,
    nearest_prototype_numpy,
    route_in_chunks,
)


def route_numpy(router, Z: np.ndarray) -> np.ndarray:
    """Expert indices ``(n, k)`` of encoded rows ``Z``, routed as at predict time."""
    device = next(router.buffers()).device
    with torch.inference_mode():
        X = torch.from_numpy(np.ascontiguousarray(Z)).to(device, inference_dtype(device))
        return route_in_chunks(router, X).cpu().numpy()


def prune_network(network: MoENetwork, keep: np.ndarray) -> MoENetwork:
    """The network with only the experts ``keep`` (renumbered in that order).

    A row whose experts are all kept is routed to the same experts, which keep
    their weights, so its prediction does not change.
    """
    idx = torch.as_tensor(keep, dtype=torch.long)
    router = network.router.prune(idx.to(_device(network)))
    return MoENetwork(router, network.bank.copy_experts(idx)).eval()


def grow_network(
    network: MoENetwork,
    Z: np.ndarray,
    w: np.ndarray,
    n_experts: int,
    seed: int,
    use_tree: bool,
) -> tuple[MoENetwork, np.ndarray]:
    """Split the busiest experts until the network has ``n_experts``.

    Each split copies an expert's weights into a new one. With Voronoi routing
    the busiest cell's rows are split in two by 2-means and each half gets one
    of the copies; a learned router duplicates the expert's gate row and its
    balancing bias then moves rows to the copy during training.

    Parameters
    ----------
    network : MoENetwork
    Z : ndarray of shape (n_samples, d)
        Encoded training rows (to find and split the busiest cells).
    w : ndarray of shape (n_samples,)
    n_experts : int
        Number of experts wanted, at least the current number.
    seed : int
    use_tree : bool
        Search the new prototypes through a routing tree.

    Returns
    -------
    network : MoENetwork
    source : ndarray of shape (n_experts,)
        The old expert each new expert was copied from.
    """
    router, bank = network.router, network.bank
    source = list(range(router.n_experts))
    assign = route_numpy(router, Z)[:, 0]
    mass = list(np.bincount(assign, weights=w, minlength=router.n_experts))
    if isinstance(router, VoronoiRouter):
        prototypes = router.prototypes.cpu().numpy().copy()
        for _ in range(n_experts - router.n_experts):
            e = int(np.argmax(mass))
            rows = assign == e
            halves = split_cell(Z[rows], w[rows], seed)
            prototypes[e] = halves[0]
            prototypes = np.vstack([prototypes, halves[1:]])
            side = nearest_prototype_numpy(Z[rows], halves)
            assign[np.flatnonzero(rows)[side == 1]] = len(prototypes) - 1
            mass[e] = w[rows][side == 0].sum()
            mass.append(w[rows][side == 1].sum())
            source.append(source[e])
        tree = None
        if use_tree:
            centres, members = fit_routing_tree(prototypes, Z, w, seed)
            tree = PrototypeTree.from_numpy(centres, members)
        new_router = VoronoiRouter(torch.from_numpy(prototypes), tree)
    else:
        for _ in range(n_experts - router.n_experts):
            e = int(np.argmax(mass))
            mass[e] /= 2
            mass.append(mass[e])
            source.append(source[e])  # e may be a copy made in this loop
        new_router = router.copy_rows(torch.tensor(source))
    idx = torch.tensor(source, dtype=torch.long)
    grown = MoENetwork(new_router.to(_device(network)), bank.copy_experts(idx))
    return grown, np.asarray(source)


def _device(network: MoENetwork) -> torch.device:
    return network.bank.device
