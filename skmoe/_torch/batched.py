"""Every expert of a job trained as one batched program.

The experts of a Voronoi job have the same shape, so their parameters stack
into tensors with a leading expert axis and a training step of all of them
is a handful of batched matrix products (``baddbmm``) over their minibatches,
padded to the longest one, instead of a Python loop of small products: what
keeps an accelerator busy. The result is the per-expert loop's up to float
rounding: padded rows weigh nothing in the loss, and :class:`StackedAdamW`
updates each expert as its own AdamW would, counting its own steps and
leaving an expert alone in a step without rows for it (as torch's AdamW
skips a parameter without gradient).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from .experts import parametric_relu


def stacked_members(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    slopes: Sequence[torch.Tensor],
    prelu: bool,
    adapter: torch.Tensor | None,
) -> torch.Tensor:
    """Every member of ``E`` experts on each expert's own rows.

    ``x`` is ``(E, B, n_inputs)``; the parameters are those of
    :func:`.experts.mlp_members` with a leading expert axis: ``weights[i]``
    ``(E, in, out)``, ``biases[i]`` ``(E, out)``, ``slopes[i]`` ``(E, width)``
    and ``adapter`` ``(E, k, n_inputs)`` or None. Returns ``(E, B, k, o)``.
    """
    n_experts, n_rows, n_in = x.shape
    h, first = x, 0
    if adapter is not None and len(weights) > 1:
        # Member j's first layer (x * r_j) @ W as x @ (r_j[:, None] * W), all
        # members side by side: (E, B, in) @ (E, in, k * width).
        k, width = adapter.shape[1], weights[0].shape[2]
        scaled = (adapter.transpose(1, 2).unsqueeze(3) * weights[0].unsqueeze(2)).reshape(n_experts, n_in, -1)
        h = torch.baddbmm(biases[0].repeat(1, k).unsqueeze(1), h, scaled).view(n_experts, -1, width)
        h = _activation(h, slopes[0] if prelu else None)  # (E, B * k, width)
        first = 1
    elif adapter is not None:  # linear members: the scaled inputs meet the heads
        h = (h.unsqueeze(2) * adapter.unsqueeze(1)).flatten(1, 2)  # (E, B * k, in)
    for layer in range(first, len(weights) - 1):
        h = torch.baddbmm(biases[layer].unsqueeze(1), h, weights[layer])
        h = _activation(h, slopes[layer] if prelu else None)
    if adapter is None:
        return torch.baddbmm(biases[-1].unsqueeze(1), h, weights[-1]).unsqueeze(2)  # (E, B, 1, o)
    k, width = adapter.shape[1], weights[-1].shape[1]
    heads = weights[-1].view(n_experts, width, k, -1).permute(0, 2, 1, 3)  # (E, k, width, o)
    members = h.view(n_experts, n_rows, k, width).transpose(1, 2)  # (E, k, B, width)
    out = torch.matmul(members, heads) + biases[-1].view(n_experts, k, 1, -1)  # (E, k, B, o)
    return out.transpose(1, 2)


def _activation(h: torch.Tensor, slope: torch.Tensor | None) -> torch.Tensor:
    """ReLU, or PReLU with each expert's slopes ``(E, width)`` on ``h`` ``(E, R, width)``."""
    return F.relu(h) if slope is None else parametric_relu(h, slope.unsqueeze(1))


def padded_batches(batches: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(E, B)`` of the experts' minibatches, padded with each
    one's first row, and the mask ``(E, B)`` of real rows.

    No host synchronisation: only the batches' shapes are read, and the
    lengths travel to the device without waiting for it.
    """
    lengths = torch.tensor([len(b) for b in batches]).to(batches[0].device, non_blocking=True)
    rows = pad_sequence(list(batches), batch_first=True)
    real = torch.arange(rows.shape[1], device=rows.device) < lengths.unsqueeze(1)
    return torch.where(real, rows, rows[:, :1]), real


class StackedAdamW:
    """AdamW over parameters stacked along an expert axis, one expert's
    update independent of every other's.

    It computes torch's AdamW update (decoupled weight decay, bias-corrected
    moments) per expert, with each expert's own step count; :meth:`step`
    updates only the experts in its mask and leaves the others' weights and
    moments as they were.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        n_experts = self.params[0].shape[0]
        self.steps = torch.zeros(n_experts, dtype=torch.float64, device=self.params[0].device)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, update: torch.Tensor) -> None:
        """One AdamW step of the experts where ``update`` ``(E,)`` is True."""
        beta1, beta2 = self.betas
        self.steps += update
        steps = self.steps.clamp_min(1)  # experts not stepped yet: any finite value
        step_size = (self.lr / (1 - beta1**steps)).float()
        bias2_sqrt = (1 - beta2**steps).sqrt().float()
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            mask = update.view(shape)
            g = p.grad
            new_m = torch.lerp(m, g, 1 - beta1)
            new_v = v * beta2 + (1 - beta2) * g * g
            denom = new_v.sqrt() / bias2_sqrt.view(shape) + self.eps
            new_p = p * (1 - self.lr * self.weight_decay) - step_size.view(shape) * new_m / denom
            m.copy_(torch.where(mask, new_m, m))
            v.copy_(torch.where(mask, new_v, v))
            p.copy_(torch.where(mask, new_p, p))


def stack_states(states: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """Per-expert flat states (bank order) as one leaf tensor per position, ``(E, ...)``."""
    return [torch.stack([s[j] for s in states]).requires_grad_() for j in range(len(states[0]))]
