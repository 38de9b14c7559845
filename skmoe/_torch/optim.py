"""The optimizer every phase and expert job trains with."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.autograd.graph import increment_version


def adamw(params: Iterable[torch.Tensor], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """torch's AdamW, fused where this torch has a fused kernel for the device.

    One fused kernel updates every parameter in a pass; the for-each form ran
    several small kernels per tensor, a tenth of a CPU training step at the
    default shapes (``docs/benchmarks.md``). Same update rule either way.
    """
    params = list(params)
    try:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel here (older torch, other devices)
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)
    optimizer.register_step_post_hook(_mark_updated)
    return optimizer


def _mark_updated(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
    """Bump the version counter of every parameter the fused step wrote.

    The fused kernel writes the parameters in place without telling autograd,
    so their ``_version`` stays put; the prepared first layers and prototype
    layouts of inference (``experts.first_layer``, routing) are keyed on it
    and would otherwise serve weights from before the step to validation.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            increment_version(p)
