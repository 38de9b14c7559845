"""The optimizer every phase and expert job trains with."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adamw(params: Iterable[torch.Tensor], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """torch's AdamW, fused where this torch has a fused kernel for the device.

    One fused kernel updates every parameter in a pass; the for-each form ran
    several small kernels per tensor, a tenth of a CPU training step at the
    default shapes (``docs/benchmarks.md``). Same update rule either way.
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel here (older torch, other devices)
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)
