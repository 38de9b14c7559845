"""Routers (which expert serves which row) and sparse dispatch to experts.

A router maps a batch ``x`` of shape ``(n, d)`` to ``experts`` of shape
``(n, k)`` (expert indices) and ``gates`` of shape ``(n, k)`` (mixing weights,
``None`` for hard one-expert routing). :func:`sparse_forward` then runs each
expert only on its own rows: a row costs its ``k`` experts, never all of them.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .arrays import ModelFileError, checked_tensor, numpy
from .device import CHUNK_ROWS, full_precision
from .experts import ExpertBank
from .piecewise import PiecewiseRows, prepare, project


def nearest_prototype(x: torch.Tensor | PiecewiseRows, prototypes: torch.Tensor, prepared=None) -> torch.Tensor:
    """Index of the nearest prototype (squared Euclidean distance) of each row.

    ``x`` is ``(n, d)`` (dense or piecewise rows) and ``prototypes``
    ``(E, d)``; returns ``(n,)`` longs. ``prepared``: for piecewise rows,
    :func:`~skmoe._torch.piecewise.prepare` of ``prototypes.T``, if kept.
    """
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; the ||x||^2 term is constant per row.
    with full_precision(x):  # routing must not change under bf16 autocast
        if isinstance(x, PiecewiseRows):
            products = project(x, prototypes.T, prepared=prepared)
            scores = products.mul_(-2.0).add_((prototypes * prototypes).sum(1))
        else:
            scores = torch.addmm((prototypes * prototypes).sum(1), x, prototypes.T, alpha=-2.0)
    return scores.argmin(dim=1)


def nearest_prototype_numpy(Z: np.ndarray, prototypes: np.ndarray, chunk: int = CHUNK_ROWS):
    """:func:`nearest_prototype` for NumPy arrays, in float64, ``chunk`` rows at a time."""
    P = torch.from_numpy(np.asarray(prototypes, dtype=np.float64))
    Z64 = torch.from_numpy(np.asarray(Z, dtype=np.float64))
    return torch.cat([nearest_prototype(z, P) for z in Z64.split(chunk)]).numpy()


class PrototypeTree(nn.Module):
    """A two-level search structure over Voronoi prototypes.

    A row goes to the group of its nearest group centre, then to its nearest
    prototype among that group's members (see
    :func:`skmoe._torch.prototypes.fit_routing_tree`), so a row is compared with
    about ``2 * sqrt(E)`` points instead of ``E``.

    Parameters
    ----------
    centres : tensor of shape (G, d)
    members : list of G long tensors
        Prototype indices searched in each group.
    """

    _chunk = 8192  # rows per pass: keeps each group's rows in cache

    def __init__(self, centres: torch.Tensor, members: list[torch.Tensor]) -> None:
        super().__init__()
        self.register_buffer("centres", centres)  # (G, d)
        self.register_buffer("members", torch.cat(members))  # (M,) all groups, concatenated
        sizes = torch.tensor([0] + [len(m) for m in members])
        self.register_buffer("offsets", torch.cumsum(sizes, 0))  # (G + 1,)

    @classmethod
    def from_numpy(cls, centres: np.ndarray, members: list[np.ndarray]) -> "PrototypeTree":
        """The tree of :func:`skmoe._torch.prototypes.fit_routing_tree`'s arrays."""
        return cls(torch.from_numpy(centres), [torch.from_numpy(m) for m in members])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"tree_centres": numpy(self.centres), "tree_members": numpy(self.members),
                "tree_offsets": numpy(self.offsets)}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str, n_experts: int, d: int) -> "PrototypeTree":
        """The tree of :meth:`to_arrays` over ``n_experts`` prototypes in ``R^d``, checked."""
        offsets, members = arrays.get(prefix + "tree_offsets"), arrays.get(prefix + "tree_members")
        if offsets is None or members is None:
            raise ModelFileError("The routing tree's arrays are missing.")
        offsets = checked_tensor(arrays, prefix + "tree_offsets", (len(offsets),), "int")
        members = checked_tensor(arrays, prefix + "tree_members", (len(members),), "int")
        n_groups = len(offsets) - 1
        centres = checked_tensor(arrays, prefix + "tree_centres", (n_groups, d), "float")
        steps = offsets.diff()
        if (
            n_groups < 1
            or offsets[0] != 0
            or offsets[-1] != len(members)
            or (steps < 1).any()
            or (len(members) and (members.min() < 0 or members.max() >= n_experts))
        ):
            raise ModelFileError("The routing tree's groups do not index the prototypes consistently.")
        return cls(centres, list(members.split(steps.tolist())))

    def group_members(self) -> list[torch.Tensor]:
        offsets = self.offsets.tolist()
        return [self.members[a:b] for a, b in zip(offsets[:-1], offsets[1:])]

    def forward(self, x: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """Expert index ``(n,)`` of each row of ``x`` ``(n, d)``."""
        centres = self.centres.to(x.dtype)
        groups = self.group_members()
        candidates = [prototypes[m] for m in groups]  # per group (m_g, d)
        out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
        for start in range(0, x.shape[0], self._chunk):
            xc = x[start : start + self._chunk]
            group = nearest_prototype(xc, centres)  # (c,)
            order = torch.argsort(group, stable=True)
            counts = torch.bincount(group, minlength=len(groups)).tolist()
            found = [
                groups[g][nearest_prototype(rows, candidates[g])]
                for g, rows in enumerate(xc.index_select(0, order).split(counts))
                if counts[g]
            ]
            out[start + order] = torch.cat(found)
        return out

    def prune(self, keep: torch.Tensor) -> "PrototypeTree":
        """The tree over prototypes ``keep`` (renumbered in that order)."""
        new_index = torch.full((int(self.members.max()) + 1,), -1, dtype=torch.long)
        new_index[keep.cpu()] = torch.arange(len(keep))
        members, centres = [], []
        for centre, group in zip(self.centres, self.group_members()):
            mapped = new_index[group.cpu()]
            mapped = mapped[mapped >= 0]
            if len(mapped):  # a group left without members is dropped
                members.append(mapped.to(self.members.device))
                centres.append(centre)
        return PrototypeTree(torch.stack(centres), members)


class VoronoiRouter(nn.Module):
    """The MoMLP router: each row goes to the expert of its nearest prototype.

    The prototypes (Voronoi cell centres) are fixed before the experts are
    trained, so the routing of every training row is known in advance. With a
    :class:`PrototypeTree`, the nearest prototype is searched through the tree
    rather than among all prototypes.
    """

    top_k = 1

    def __init__(self, prototypes: torch.Tensor, tree: PrototypeTree | None = None) -> None:
        super().__init__()
        self.register_buffer("prototypes", prototypes)  # (E, d)
        self.tree = tree

    @property
    def n_experts(self) -> int:
        return self.prototypes.shape[0]

    def forward(self, x: torch.Tensor | PiecewiseRows) -> tuple[torch.Tensor, None]:
        prototypes = self.prototypes.to(x.dtype)
        if self.tree is None:
            prepared = self._prepared(prototypes, x.layout) if isinstance(x, PiecewiseRows) else None
            return nearest_prototype(x, prototypes, prepared)[:, None], None  # (n, 1)
        return self.tree(x, prototypes)[:, None], None

    def _prepared(self, prototypes: torch.Tensor, layout) -> tuple[torch.Tensor, torch.Tensor]:
        """The lookup form of ``prototypes`` for ``layout``, kept until the prototypes change."""
        token = (self.prototypes.data_ptr(), self.prototypes._version, prototypes.dtype, layout)
        cached = self.__dict__.get("_lookup")
        if cached is None or cached[0] != token:
            cached = self.__dict__["_lookup"] = (token, prepare(prototypes.T, layout))
        return cached[1]

    def __getstate__(self) -> dict:
        # Copies and pickles leave the lookup form out (rebuilt on use).
        state = self.__dict__.copy()
        state.pop("_lookup", None)
        return state

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """A JSON-ready spec and the named arrays of the router."""
        arrays = {"prototypes": numpy(self.prototypes)}
        if self.tree is not None:
            arrays.update(self.tree.to_arrays())
        return {"kind": "voronoi", "tree": self.tree is not None}, arrays

    @classmethod
    def from_arrays(cls, spec: dict, arrays: dict, prefix: str, n_experts: int, d: int) -> "VoronoiRouter":
        """The router of :meth:`to_arrays` for ``n_experts`` experts on ``d`` inputs, checked."""
        router = cls(checked_tensor(arrays, prefix + "prototypes", (n_experts, d), "float"))
        if spec.get("tree"):
            router.tree = PrototypeTree.from_arrays(arrays, prefix, n_experts, d)
        return router

    def prune(self, keep: torch.Tensor) -> "VoronoiRouter":
        """The router over the experts ``keep``: a row of a removed expert goes
        to its next nearest kept prototype; other rows keep their expert."""
        tree = self.tree.prune(keep) if self.tree is not None else None
        return VoronoiRouter(self.prototypes[keep].clone(), tree)


class LearnedRouter(nn.Module):
    """A trained linear gate that sends each row to its ``top_k`` experts.

    Load balancing follows the auxiliary-loss-free scheme of DeepSeek-V3: a
    per-expert bias, used only to *select* experts, is nudged after every
    training step towards the experts that received fewer rows than average.
    The mixing weights come from the unbiased gate, so balancing does not
    distort the model's output.

    With ``top_k=1`` the single gate weight is ``1 + p - stopgrad(p)``: its
    value is exactly one (the row is served by its expert alone) while the gate
    still receives the gradient of its probability ``p``, as in the Switch
    Transformer's ``p * expert(x)``.
    """

    def __init__(self, n_inputs: int, n_experts: int, top_k: int, balance_rate: float) -> None:
        super().__init__()
        self.top_k = top_k
        self.balance_rate = balance_rate
        self.gate = nn.Linear(n_inputs, n_experts)
        self.register_buffer("balance_bias", torch.zeros(n_experts))  # (E,)
        # Expert served by each gate row; -1 marks a row retired by pruning.
        self.register_buffer("expert_id", torch.arange(n_experts))  # (E,)

    @property
    def n_experts(self) -> int:
        return int((self.expert_id >= 0).sum())

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """A JSON-ready spec and the named arrays of the router."""
        spec = {"kind": "learned", "top_k": int(self.top_k), "balance_rate": float(self.balance_rate),
                "n_gate_rows": int(self.gate.out_features)}
        arrays = {"gate_weight": numpy(self.gate.weight), "gate_bias": numpy(self.gate.bias),
                  "balance_bias": numpy(self.balance_bias), "expert_id": numpy(self.expert_id)}
        return spec, arrays

    @classmethod
    def from_arrays(cls, spec: dict, arrays: dict, prefix: str, n_experts: int, d: int) -> "LearnedRouter":
        """The router of :meth:`to_arrays` serving ``n_experts`` experts on ``d`` inputs, checked."""
        rows = int(spec.get("n_gate_rows", n_experts))
        top_k = int(spec.get("top_k", 1))
        if top_k not in (1, 2) or top_k > n_experts:
            raise ModelFileError(f"The learned router's top_k={top_k} is invalid for {n_experts} experts.")
        # Checked before the gate is allocated: n_gate_rows cannot make it
        # allocate more than the arrays hold.
        weight = checked_tensor(arrays, prefix + "gate_weight", (rows, d), "float")
        bias = checked_tensor(arrays, prefix + "gate_bias", (rows,), "float")
        balance = checked_tensor(arrays, prefix + "balance_bias", (rows,), "float")
        expert_id = checked_tensor(arrays, prefix + "expert_id", (rows,), "int")
        router = cls(d, rows, top_k, float(spec.get("balance_rate", 0.0)))
        with torch.no_grad():
            router.gate.weight.copy_(weight)
            router.gate.bias.copy_(bias)
            router.balance_bias.copy_(balance)
            served = np.sort(expert_id[expert_id >= 0].numpy())
            if expert_id.min() < -1 or not np.array_equal(served, np.arange(n_experts)):
                raise ModelFileError(
                    f"{prefix}expert_id must name each of the {n_experts} experts once (-1 for a "
                    "retired gate row)."
                )
            router.expert_id.copy_(expert_id)
        return router

    def reset_parameters(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            scale = 1.0 / self.gate.in_features**0.5
            self.gate.weight.copy_(
                torch.randn(self.gate.weight.shape, generator=generator) * scale
            )
            self.gate.bias.zero_()
            self.balance_bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        with full_precision(x):
            weight, bias = self.gate.weight.to(x.dtype), self.gate.bias.to(x.dtype)
            # (n, E); piecewise rows (prediction) look the gate's products up
            logits = project(x, weight.T, bias) if isinstance(x, PiecewiseRows) else F.linear(x, weight, bias)
        selection = logits.detach() + self.balance_bias.to(x.dtype)
        selection = selection.masked_fill(self.expert_id < 0, -torch.inf)
        rows = selection.topk(self.top_k, dim=1).indices  # (n, k) gate rows
        experts = self.expert_id[rows]
        if self.top_k == 1:
            if not torch.is_grad_enabled():
                return experts, None  # one expert, weight one
            # Exactly one in value; the gradient is that of the gate probability.
            prob = F.softmax(logits, dim=1).gather(1, rows)  # (n, 1)
            return experts, 1.0 + (prob - prob.detach())
        # Softmax over the selected logits: the renormalised gate probabilities,
        # computed without underflow.
        return experts, F.softmax(logits.gather(1, rows), dim=1)  # (n, k)

    @torch.no_grad()
    def prune(self, keep: torch.Tensor) -> "LearnedRouter":
        """The router serving only the experts ``keep`` (renumbered in that order).

        The retired experts' gate rows stay, masked out of the selection, so
        every logit is computed exactly as before: a row whose experts are all
        kept is routed, and gated, bit for bit as before.
        """
        router = copy.deepcopy(self)
        new_id = torch.full_like(self.expert_id, -1)
        for rank, expert in enumerate(keep.tolist()):
            new_id[self.expert_id == expert] = rank
        router.expert_id.copy_(new_id)
        return router

    @torch.no_grad()
    def copy_rows(self, source: torch.Tensor) -> "LearnedRouter":
        """A compact router whose expert ``i`` has the gate row of expert ``source[i]``.

        Repeating an index (growth) duplicates a gate row; the balancing bias
        then pulls rows towards the copy, which starts with no load.
        """
        rows = torch.argsort(self.expert_id)[self.expert_id.sort().values >= 0]
        idx = rows[source.to(rows.device)]
        router = LearnedRouter(self.gate.in_features, len(idx), self.top_k, self.balance_rate)
        router.to(self.gate.weight.device)
        router.gate.weight.copy_(self.gate.weight[idx])
        router.gate.bias.copy_(self.gate.bias[idx])
        router.balance_bias.copy_(self.balance_bias[idx])
        return router

    @torch.no_grad()
    def update_balance(self, experts: torch.Tensor) -> None:
        """Nudge the selection bias after a step that routed rows to ``experts``."""
        load = torch.bincount(experts.reshape(-1), minlength=self.n_experts).float()
        self.balance_bias += self.balance_rate * torch.sign(load.mean() - load)


def sparse_forward(
    bank: ExpertBank,
    x: torch.Tensor,
    experts: torch.Tensor,
    gates: torch.Tensor | None,
    members: bool = False,
) -> torch.Tensor:
    """Mix the outputs of each row's experts, running every expert only once.

    Rows are sorted by expert and split into contiguous groups (no padding), so
    the cost is that of the rows actually routed, even under skewed routing.

    Parameters
    ----------
    bank : ExpertBank
    x : tensor of shape (n, d)
    experts : long tensor of shape (n, k)
    gates : tensor of shape (n, k) or None
        Mixing weights; ``None`` means ``k == 1`` with weight one.
    members : bool, default=False
        Mix every ensemble member's output (training) instead of the
        experts' predictions.

    Returns
    -------
    tensor of shape (n, n_outputs), or (n, members, n_outputs) with ``members=True``
    """
    n, k = experts.shape
    flat = experts.reshape(-1)  # (n * k,)
    counts = torch.bincount(flat, minlength=bank.n_experts).tolist()
    forward = bank.forward_members if members else bank.forward_groups
    if gates is None and n and n in counts:
        # One expert serves every row (always so for a single row): its rows
        # are x as it is, so the sort, gather and scatter back are skipped.
        # The same numbers, since the general path would hand it x's rows in order.
        return forward([x if c else None for c in counts])[counts.index(n)]
    order = torch.argsort(flat, stable=True)
    rows = order // k  # source row of each sorted slot
    grouped = forward(x.index_select(0, rows).split(counts))
    y = torch.cat([g for g in grouped if g is not None])  # (n * k, [members,] n_outputs)
    if gates is None:
        return y.new_empty(n, *y.shape[1:]).index_copy_(0, rows, y)
    slot_gates = gates.reshape(-1)[order]
    y = y * slot_gates.view(-1, *[1] * (y.dim() - 1))
    return y.new_zeros(n, *y.shape[1:]).index_add_(0, rows, y)


def route_in_chunks(router: nn.Module, X: torch.Tensor, chunk: int = CHUNK_ROWS) -> torch.Tensor:
    """Expert indices ``(n, k)`` of every row of ``X``, routed ``chunk`` rows at a time."""
    return torch.cat([router(x)[0] for x in X.split(chunk)])


class MoENetwork(nn.Module):
    """A router and its experts: the whole MoMLP as one module."""

    def __init__(self, router: nn.Module, bank: ExpertBank) -> None:
        super().__init__()
        self.router = router
        self.bank = bank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        experts, gates = self.router(x)
        return sparse_forward(self.bank, x, experts, gates)
