"""Experts loaded on demand: only the experts a batch routes rows to are in memory.

A :class:`LazyExpertBank` stands in for an :class:`~skmoe._torch.experts.ExpertBank`
at inference. It reads an expert's shard the first time a batch needs it,
keeps at most ``max_in_memory`` experts (least recently used out first) on its
device, and computes exactly what the eager bank computes (same casts, same
:func:`~skmoe._torch.experts.mlp_forward`), so predictions are bit-identical.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .experts import PARAM_GROUPS, ExpertBank, expert_params, mlp_forward
from .state import bank_sizes, expert_from_shard

ExpertParams = dict[str, list[torch.Tensor]]


class LazyExpertBank(nn.Module):
    """Experts read from their shards when a batch first needs them.

    Parameters
    ----------
    spec : dict
        The network description of a saved model (sizes of the experts).
    read_shard : callable
        ``read_shard(e)`` returns expert ``e``'s arrays (checked by
        :func:`~skmoe._torch.state.expert_from_shard`).
    max_in_memory : int or None
        Most experts held at once; ``None`` keeps every expert once loaded.
    device : torch.device
    """

    def __init__(
        self,
        spec: dict,
        read_shard: Callable[[int], dict[str, np.ndarray]],
        max_in_memory: int | None,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.spec = spec
        (self.n_experts, self.n_inputs, self.n_outputs, self.depth, self.width, self.prelu,
         self.members) = bank_sizes(spec)
        self.read_shard = read_shard
        self.max_in_memory = max_in_memory
        self.device = torch.device(device)
        self._cache: OrderedDict[int, ExpertParams] = OrderedDict()
        self.n_loads = 0  # shards read so far (for monitoring and tests)

    @property
    def loaded_experts(self) -> list[int]:
        """Experts in memory now, least recently used first."""
        return list(self._cache)

    def _expert(self, e: int) -> ExpertParams:
        if e in self._cache:
            self._cache.move_to_end(e)
            return self._cache[e]
        if self.max_in_memory is not None:
            while len(self._cache) >= self.max_in_memory:
                self._cache.popitem(last=False)
        params = expert_from_shard(self.spec, self.read_shard(e))
        params = {k: [t.to(self.device) for t in v] for k, v in params.items()}
        self.n_loads += 1
        self._cache[e] = params
        return params

    def forward_groups(self, inputs: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """As :meth:`ExpertBank.forward_groups` (the experts' predictions),
        loading the experts it needs. A lazy bank only predicts: it has no
        ``forward_members``."""
        outputs: list[torch.Tensor | None] = []
        for e, h in enumerate(inputs):
            if h is None or h.shape[0] == 0:
                outputs.append(None)
                continue
            p = self._expert(e)
            weights, biases, slopes, adapters = ([t.to(h.dtype) for t in p[k]] for k in PARAM_GROUPS)
            outputs.append(mlp_forward(h, weights, biases, slopes, self.prelu, adapters[0] if adapters else None))
        return outputs

    def n_params_per_expert(self) -> int:
        return expert_params(self.n_inputs, self.n_outputs, self.depth, self.width, self.prelu, self.members)

    def materialize(self) -> ExpertBank:
        """An ordinary bank holding every expert (reads every shard; not cached)."""
        # The first shard is read and checked before the bank is allocated, so
        # that sizes in a header cannot make it allocate more than the shards hold.
        first = self._cache.get(0) or expert_from_shard(self.spec, self.read_shard(0))
        bank = ExpertBank(
            self.n_experts, self.n_inputs, self.n_outputs, self.depth, max(self.width, 1), self.prelu, self.members
        )
        with torch.no_grad():
            for e in range(self.n_experts):
                params = first if e == 0 else self._cache.get(e) or expert_from_shard(self.spec, self.read_shard(e))
                for group in PARAM_GROUPS:
                    for param, value in zip(getattr(bank, group), params[group]):
                        param[e].copy_(value)
        return bank.to(self.device).eval()

    def copy_experts(self, source: torch.Tensor) -> ExpertBank:
        return self.materialize().copy_experts(source)

    def _apply(self, fn, recurse=True):
        # Module.to(device) and friends: follow the move, drop what was loaded.
        self.device = fn(torch.empty(0, device=self.device)).device
        self._cache.clear()
        return self
