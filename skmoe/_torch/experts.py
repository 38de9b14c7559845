"""A bank of independent (P)ReLU MLP experts with stacked parameters.

Each layer's weights for all experts live in one tensor of shape
``(n_experts, fan_in, fan_out)``. The stacked layout keeps the optimizer state
in a few large tensors (fast fused updates) and makes copying, splitting and
snapshotting single experts cheap. In the forward pass the stacks are
``unbind``-ed once: indexing ``W[e]`` separately for each expert inside the
graph would make the backward cost grow with the square of the number of
experts.

An expert can be a parameter-efficient ensemble of ``members`` MLPs, as in
TabM-mini (Gorishniy et al., "TabM: Advancing Tabular Deep Learning with
Parameter-Efficient Ensembling", ICLR 2025): the members share every weight
matrix but the output layer, and each scales the inputs by its own adapter
(initialised to random signs, so that the members differ from the start).
Each member has its own output layer and, in training, its own loss;
predictions are the members' mean. (Scaling the first layer's outputs
instead, which runs that layer once per row rather than once per member, was
measured and lost accuracy: ``docs/benchmarks.md``.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .arrays import checked_tensor, numpy
from .device import autocast_dtype
from .piecewise import PiecewiseRows, prepare, project
from .piecewise import dense as _dense

# Rows of each expert's block are padded to a multiple of this at inference.
_INFERENCE_ROW_MULTIPLE = 16
# At inference on the CPU an expert runs on blocks of rows whose hidden
# activations (rows x members x width, float32) take at most this many bytes:
# they stay in cache, and below glibc's mmap threshold, so that each block's
# temporaries reuse freed memory instead of faulting in fresh pages (8,192
# rows of 8 members of width 128, 32 MiB a layer, predicted at 0.7x the rate
# of 1,024 rows; docs/benchmarks.md). Accelerators take larger blocks.
_INFERENCE_BLOCK_BYTES = 4 << 20
_INFERENCE_BLOCK_ROWS_DEVICE = 65_536
# The parameter groups of a bank, in the order of ``parameters()`` and of an
# expert's state.
PARAM_GROUPS = ("weights", "biases", "slopes", "adapters")


class ExpertBank(nn.Module):
    """``n_experts`` MLPs of identical shape, run on disjoint groups of rows.

    Parameters
    ----------
    n_experts : int
        Number of experts (L in the paper).
    n_inputs, n_outputs : int
        Input and output widths.
    depth : int
        Hidden layers per expert (J). Zero gives linear experts.
    width : int
        Units per hidden layer (W).
    prelu : bool
        Learnable PReLU slopes (one per unit and expert) when True, ReLU
        otherwise.
    members : int, default=1
        Ensemble members per expert. With more than one, the output layer
        holds every member's head side by side (``members * n_outputs``
        columns) and ``adapters`` the members' scales of the inputs.
    """

    def __init__(
        self,
        n_experts: int,
        n_inputs: int,
        n_outputs: int,
        depth: int,
        width: int,
        prelu: bool,
        members: int = 1,
    ) -> None:
        super().__init__()
        self.n_experts = n_experts
        self.prelu = prelu
        self.members = members
        shapes = param_shapes(n_inputs, n_outputs, depth, width, prelu, members)
        self.weights = nn.ParameterList(  # (E, in, out)
            nn.Parameter(torch.empty(n_experts, *shape)) for shape in shapes["weights"]
        )
        self.biases = nn.ParameterList(  # (E, out)
            nn.Parameter(torch.empty(n_experts, *shape)) for shape in shapes["biases"]
        )
        # PReLU slopes, one per hidden unit; ReLU experts have none.
        self.slopes = nn.ParameterList(  # (E, W)
            nn.Parameter(torch.full((n_experts, *shape), 0.25)) for shape in shapes["slopes"]
        )
        # Members' input scales; a single MLP has none.
        self.adapters = nn.ParameterList(  # (E, k, in)
            nn.Parameter(torch.ones(n_experts, *shape)) for shape in shapes["adapters"]
        )

    @property
    def depth(self) -> int:
        return len(self.weights) - 1

    def __getstate__(self) -> dict:
        # Copies and pickles leave out the prepared first layers (rebuilt on use).
        state = self.__dict__.copy()
        state.pop("_first_cache", None)
        return state

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every parameter, stacked over experts: ``weights{i}``, ``biases{i}``,
        ``slopes{i}`` and (ensembles) ``adapters0``."""
        return {f"{group}{i}": numpy(p) for group in PARAM_GROUPS for i, p in enumerate(getattr(self, group))}

    @classmethod
    def from_arrays(cls, sizes: tuple, arrays: dict[str, np.ndarray], prefix: str = "") -> "ExpertBank":
        """The bank of :meth:`to_arrays`; ``sizes`` are the constructor's
        arguments, and every array is checked against them."""
        # Every array is checked before the bank is allocated: sizes in a
        # header cannot make it allocate more than the arrays hold.
        n_experts, *expert_sizes = sizes
        values = {
            group: [checked_tensor(arrays, f"{prefix}{group}{i}", (n_experts, *shape), "float")
                    for i, shape in enumerate(shapes)]
            for group, shapes in param_shapes(*expert_sizes).items()
        }
        bank = cls(*sizes)
        with torch.no_grad():
            for group in PARAM_GROUPS:
                for param, value in zip(getattr(bank, group), values[group]):
                    param.copy_(value)
        return bank

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise like :class:`torch.nn.Linear`, from ``generator``."""
        with torch.no_grad():
            for weight, bias in zip(self.weights, self.biases):
                bound = 1.0 / math.sqrt(weight.shape[1])
                for param in (weight, bias):
                    noise = torch.rand(param.shape, generator=generator)
                    param.copy_((2.0 * noise - 1.0) * bound)
            for slope in self.slopes:
                slope.fill_(0.25)
            for adapter in self.adapters:  # random signs: members differ from the start
                signs = torch.randint(0, 2, adapter.shape, generator=generator)
                adapter.copy_(2.0 * signs - 1.0)

    def forward_groups(
        self, inputs: Sequence[torch.Tensor | None]
    ) -> list[torch.Tensor | None]:
        """The prediction of expert ``e`` on ``inputs[e]``: its members' mean.

        ``None`` or empty groups are skipped. Gradient mode changes nothing
        here (training uses :meth:`forward_members`).

        Parameters
        ----------
        inputs : sequence of length n_experts
            ``inputs[e]`` has shape ``(n_e, n_inputs)``.

        Returns
        -------
        list of length n_experts
            ``outputs[e]`` has shape ``(n_e, n_outputs)``, ``None`` where the
            input was ``None`` or empty.
        """
        # Cast only the experts that have rows (inference may run in a wider
        # dtype than the weights): a single-row prediction costs one expert's cast.
        dtype = _input_dtype(inputs, self.weights[0].dtype)
        params = [[_Cast(p, dtype) for p in getattr(self, g)] for g in PARAM_GROUPS]
        # The members' first layer is the same product for every call until
        # the weights change: built once, not per call (about a fifth of a one-row
        # prediction). Under autograd it is built in the graph as in training.
        cached = self.members > 1 and self.depth > 0 and not torch.is_grad_enabled()
        firsts = [self._first_layer(e, dtype, h.layout if isinstance(h, PiecewiseRows) else None) if cached and h is not None and len(h)
                  else None for e, h in enumerate(inputs)]
        return _per_expert(inputs, params, self.prelu, mlp_forward, firsts)

    def _first_layer(self, expert: int, dtype: torch.dtype, layout=None) -> tuple:
        """``first_layer`` of ``expert``'s current weights in ``dtype``, cached;
        with a :class:`~skmoe._torch.piecewise.PiecewiseLayout`, also its
        :func:`~skmoe._torch.piecewise.prepare` (the lookup form).

        The cache entry is rebuilt whenever a parameter it comes from changes
        in place (an optimizer step, a loaded state) or is replaced (a move to
        another device), so it never serves stale weights.
        """
        sources = (self.weights[0], self.biases[0], self.adapters[0])
        token = tuple((p.data_ptr(), p._version) for p in sources)
        cache = self.__dict__.setdefault("_first_cache", {})
        entry = cache.get((expert, dtype, layout))
        if entry is None or entry[0] != token:
            weight, bias, adapter = (p[expert].to(dtype) for p in sources)
            scaled, bias = first_layer(weight, bias, adapter)
            entry = (token, (scaled, bias, None if layout is None else prepare(scaled, layout)))
            cache[(expert, dtype, layout)] = entry
        return entry[1]

    def forward_members(
        self, inputs: Sequence[torch.Tensor | None]
    ) -> list[torch.Tensor | None]:
        """Every member's output of expert ``e`` on ``inputs[e]``, for training.

        As :meth:`forward_groups`, but ``outputs[e]`` has shape
        ``(n_e, members, n_outputs)`` (``members`` is 1 for a plain MLP).
        """
        dtype = _input_dtype(inputs, self.weights[0].dtype)
        # Unbound once: indexing ``W[e]`` per expert inside the graph would make
        # the backward cost grow with the square of the number of experts.
        params = [[p.to(dtype).unbind(0) for p in getattr(self, g)] for g in PARAM_GROUPS]
        return _per_expert(inputs, params, self.prelu, mlp_members)

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[1]

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[2] // self.members

    @property
    def width(self) -> int:
        """Hidden width (0 for linear experts)."""
        return self.weights[0].shape[2] if self.depth else 0

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    @torch.no_grad()
    def copy_experts(self, source: torch.Tensor) -> "ExpertBank":
        """A new bank whose expert ``i`` is a copy of this bank's ``source[i]``."""
        idx = source.to(self.weights[0].device)
        bank = ExpertBank.__new__(ExpertBank)
        nn.Module.__init__(bank)
        bank.n_experts = len(idx)
        bank.prelu = self.prelu
        bank.members = self.members
        for group in PARAM_GROUPS:
            setattr(bank, group, nn.ParameterList(nn.Parameter(p[idx].clone()) for p in getattr(self, group)))
        return bank

    def expert_state(self, expert: int) -> list[torch.Tensor]:
        """Detached copies of one expert's parameters (for best-weight snapshots)."""
        return [p[expert].detach().clone() for p in self.parameters()]

    @torch.no_grad()
    def load_expert_state(self, expert: int, state: list[torch.Tensor]) -> None:
        """Write a snapshot taken by :meth:`expert_state` back into ``expert``."""
        for param, value in zip(self.parameters(), state):
            param[expert].copy_(value)

    def n_params_per_expert(self) -> int:
        """Number of trainable parameters of one expert."""
        return expert_params(self.n_inputs, self.n_outputs, self.depth, self.width, self.prelu, self.members)


class _Cast:
    """``stack[e]`` cast to ``dtype`` on access (a no-op when it already is)."""

    def __init__(self, stack: torch.Tensor, dtype: torch.dtype) -> None:
        self.stack, self.dtype = stack, dtype

    def __getitem__(self, e: int) -> torch.Tensor:
        return self.stack[e].to(self.dtype)


def param_shapes(
    n_inputs: int, n_outputs: int, depth: int, width: int, prelu: bool, members: int = 1
) -> dict[str, list[tuple[int, ...]]]:
    """The shapes of one expert's parameters, by group (``PARAM_GROUPS``), in bank order.

    The one definition of an expert's layout: the bank, the checks of saved
    arrays and shards, and the parameter count all derive from it.
    """
    dims = [n_inputs] + [width] * depth + [n_outputs * members]
    return {
        "weights": list(zip(dims[:-1], dims[1:])),
        "biases": [(d_out,) for d_out in dims[1:]],
        "slopes": [(width,)] * (depth if prelu else 0),
        # An ensemble expert has its members' input scales; a single MLP none.
        "adapters": [(members, n_inputs)] * (members > 1),
    }


def _input_dtype(inputs: Sequence[torch.Tensor | None], default: torch.dtype) -> torch.dtype:
    return next((h.dtype for h in inputs if h is not None), default)


def _per_expert(inputs, params, prelu: bool, forward, firsts=None) -> list[torch.Tensor | None]:
    """``forward`` of expert ``e`` on ``inputs[e]``; ``params`` per group, each indexable by expert;
    ``firsts[e]``, if given, expert ``e``'s prepared :func:`first_layer`."""
    weights, biases, slopes, adapters = params
    extra = (lambda e: {"first": firsts[e]}) if firsts is not None else (lambda e: {})
    return [
        None
        if h is None or h.shape[0] == 0
        else forward(
            h, [w[e] for w in weights], [b[e] for b in biases], [a[e] for a in slopes], prelu,
            adapters[0][e] if adapters else None, **extra(e),
        )
        for e, h in enumerate(inputs)
    ]


def expert_params(
    n_inputs: int, n_outputs: int, depth: int, width: int, prelu: bool, members: int = 1
) -> int:
    """Parameters of one expert of this shape (the one count every caller uses)."""
    shapes = param_shapes(n_inputs, n_outputs, depth, width, prelu, members)
    return sum(math.prod(shape) for group in shapes.values() for shape in group)


def split_state(
    state: Sequence[torch.Tensor], n_layers: int, prelu: bool
) -> tuple[list, list, list, torch.Tensor | None]:
    """An expert's flat state (bank order) as ``(weights, biases, slopes, adapter)``."""
    n_slopes = n_layers - 1 if prelu else 0
    weights, biases = list(state[:n_layers]), list(state[n_layers : 2 * n_layers])
    slopes = list(state[2 * n_layers : 2 * n_layers + n_slopes])
    rest = state[2 * n_layers + n_slopes :]
    return weights, biases, slopes, (rest[0] if rest else None)


def mlp_forward(
    h: torch.Tensor | PiecewiseRows,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    slopes: Sequence[torch.Tensor],
    prelu: bool,
    adapter: torch.Tensor | None = None,
    first: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """One expert's prediction on its rows ``h`` ``(n, n_inputs)``: ``(n, n_outputs)``.

    ``weights[i]`` is ``(in, out)``, ``biases[i]`` ``(out,)`` and ``slopes[i]``
    ``(width,)`` (none for ReLU). ``adapter`` ``(k, n_inputs)`` makes the
    expert an ensemble of ``k`` members: member ``j`` sees the inputs scaled
    by ``adapter[j]``, its head is the ``j``-th block of ``n_outputs``
    columns of the output layer, and the prediction is the members' mean.
    ``first``, if given, is :func:`first_layer` of these weights, prepared
    once (the same numbers), and for piecewise rows its lookup form.
    ``h`` may be :class:`~skmoe._torch.piecewise.PiecewiseRows`: the first
    layer then looks its products up (the same up to rounding).
    """
    # BLAS rounds the rows of a ragged last tile differently: padding the rows
    # to a multiple of the tile height makes a row's output independent of how
    # many rows share its expert (pruning and batch scoring then change no
    # kept row's prediction, bit for bit).
    n = h.shape[0]
    block = _block_rows(h.device, weights[0].shape[1] * (1 if adapter is None else adapter.shape[0]))
    if n > block:
        # Rows are independent (and padded, below), so the result is the same.
        return torch.cat([mlp_forward(rows, weights, biases, slopes, prelu, adapter, first) for rows in h.split(block)])
    if n % _INFERENCE_ROW_MULTIPLE:
        rows = n + _INFERENCE_ROW_MULTIPLE - n % _INFERENCE_ROW_MULTIPLE
        h = h.padded(rows) if isinstance(h, PiecewiseRows) else torch.cat([h, h.new_zeros(rows - n, h.shape[1])])
    h = _hidden(h, weights, biases, slopes, prelu, adapter, first)
    if adapter is None:
        return project(h, weights[-1], biases[-1])[:n]
    k, width, heads = _heads(weights[-1], adapter)
    # The members' mean as one product over their stacked hidden units, so
    # that its rounding, like every other layer's, does not depend on how
    # many rows share the batch (a separate mean over the members does).
    mean_head = heads.reshape(k * width, -1) / k
    return torch.addmm(biases[-1].view(k, -1).mean(dim=0), h.view(-1, k * width), mean_head)[:n]


def _block_rows(device: torch.device, hidden_units: int) -> int:
    """Rows per inference block for ``hidden_units`` units per row (a multiple of the padding)."""
    if device.type != "cpu":
        return _INFERENCE_BLOCK_ROWS_DEVICE
    rows = _INFERENCE_BLOCK_BYTES // (4 * hidden_units)
    return max(_INFERENCE_ROW_MULTIPLE, rows - rows % _INFERENCE_ROW_MULTIPLE)


def mlp_members(h: torch.Tensor, weights, biases, slopes, prelu: bool, adapter=None) -> torch.Tensor:
    """Every member's output on ``h`` ``(n, n_inputs)``: ``(n, k, n_outputs)``.

    The arguments are those of :func:`mlp_forward`; a plain MLP (no
    ``adapter``) is one member. This is the training path, for the
    per-member loss of :class:`MemberLoss`.
    """
    h = _hidden(h, weights, biases, slopes, prelu, adapter, train=True)
    if adapter is None:
        return _as_dtype_of(torch.addmm(biases[-1], h, weights[-1]), h).unsqueeze(1)
    k, width, heads = _heads(weights[-1], adapter)
    n_outputs = heads.shape[2]
    if k * n_outputs <= _BLOCK_DIAGONAL_HEADS:
        # Few outputs: one product with the heads on a block diagonal,
        # (n, k * width) @ (k * width, k * o). It does k times the arithmetic
        # of the members' own products, but a batched product with one or
        # two columns per member ran at a fraction of the rate (its backward
        # took longer than the second layer's).
        mask = _block_diagonal_mask(k, width, n_outputs, weights[-1].device)
        diagonal = weights[-1].repeat(k, 1) * mask  # (k * width, k * o)
        out = torch.addmm(biases[-1], h.view(-1, k * width), diagonal)
        return _as_dtype_of(out, h).view(-1, k, n_outputs)
    # Each member through its own head: (k, rows, width) @ (k, width, o).
    out = torch.baddbmm(biases[-1].view(k, 1, -1), h.view(-1, k, width).transpose(0, 1), heads)
    return _as_dtype_of(out, h).transpose(0, 1)  # (n, k, o)


# Members times outputs up to which training runs the members' heads as one
# block-diagonal product (see mlp_members).
_BLOCK_DIAGONAL_HEADS = 64


@functools.lru_cache(maxsize=16)
def _block_diagonal_mask(k: int, width: int, n_outputs: int, device: torch.device) -> torch.Tensor:
    """Ones where member j's hidden units meet its own outputs: ``(k * width, k * o)``."""
    return torch.block_diag(*[torch.ones(width, n_outputs, device=device)] * k)


def _as_dtype_of(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``out`` of a matrix product in ``like``'s dtype (its input's or its
    weight's): under bfloat16 autocast a product of float32 activations
    returns float32 ones. PReLU is on autocast's own list, so after the
    first PReLU the activations are bfloat16 and stay so up to the heads;
    the loss and every gradient reaching a parameter are float32."""
    return out if out.dtype == like.dtype else out.to(like.dtype)


def first_layer(weight: torch.Tensor, bias: torch.Tensor, adapter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``k`` members' first layers as one: ``(in, k * width)`` weights and ``(k * width,)`` biases.

    Member j's first layer, (x * r_j) @ W, is x @ (r_j[:, None] * W): all
    members' first layers are one product with the scaled weights side by
    side, (n, in) @ (in, k * width). No (n * k, in) copy of the inputs, and
    no gradient through them (the training step skips one of the first
    layer's three products).
    """
    k, (n_in, width) = adapter.shape[0], weight.shape
    scaled = (adapter.T.unsqueeze(2) * weight.unsqueeze(1)).reshape(n_in, k * width)
    return scaled, bias.repeat(k)


def _hidden(h, weights, biases, slopes, prelu: bool, adapter, first=None, train: bool = False) -> torch.Tensor:
    """The last hidden layer: ``(n, width)``, or ``(n * k, width)`` for ``k`` members,
    a row's members adjacent; ``first``, if prepared, is :func:`first_layer` and its
    lookup form for piecewise rows (None for dense rows). ``train``: the training
    path (dense rows, gradients), whose products keep their input's dtype under
    autocast (see :func:`_as_dtype_of`)."""
    start = 0
    if adapter is not None and len(weights) > 1:
        if train:
            h = _MembersFirstLayer.apply(h, weights[0], biases[0], adapter, autocast_dtype(h.device))
        else:
            scaled, bias, prepared = first if first is not None else (*first_layer(weights[0], biases[0], adapter), None)
            h = project(h, scaled, bias, prepared)
        h = h.view(-1, weights[0].shape[1])  # (n * k, width)
        h = parametric_relu(h, slopes[0]) if prelu else F.relu(h)
        start = 1
    elif adapter is not None:  # linear members: the scaled inputs meet the heads
        h = (_dense(h).unsqueeze(1) * adapter).flatten(0, 1)  # (rows * k, in)
    for layer in range(start, len(weights) - 1):
        out = project(h, weights[layer], biases[layer])
        h = _as_dtype_of(out, h) if train else out
        h = parametric_relu(h, slopes[layer]) if prelu else F.relu(h)
    return h


class _MembersFirstLayer(torch.autograd.Function):
    """:func:`first_layer`'s product for training: ``(n, in) -> (n, k * width)``.

    The same forward numbers as autograd through :func:`first_layer` and
    :func:`project`, with a backward written for it: the scaled weights are
    built in a contiguous layout (autograd's broadcast product left them
    strided, so every step copied them), their gradient is folded back onto
    the weights and the adapters by two small reductions, and the rows get no
    gradient unless they ask for one. With ``low`` (bfloat16 autocast) both
    large products take operands rounded to ``low`` and return float32.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, adapter, low):
        k = adapter.shape[0]
        members_in = adapter.T.contiguous()  # (in, k)
        scaled = (members_in.unsqueeze(2) * weight.unsqueeze(1)).view(weight.shape[0], -1)  # (in, k * width)
        if low is not None:
            x, scaled = x.to(low), scaled.to(low)
        ctx.save_for_backward(x, scaled, weight, members_in)
        ctx.low = low
        return _as_dtype_of(torch.addmm(bias.repeat(k).to(x.dtype), x, scaled), weight)

    @staticmethod
    def backward(ctx, grad):
        x, scaled, weight, members_in = ctx.saved_tensors
        n_in, k = members_in.shape
        low_grad = grad if ctx.low is None else grad.to(ctx.low)
        grad_scaled = (x.T @ low_grad).to(weight.dtype).view(n_in, k, -1)  # (in, k, width)
        grad_x = (low_grad @ scaled.T).to(weight.dtype) if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(members_in.unsqueeze(1), grad_scaled).squeeze(1)  # sum over members
        grad_adapter = (grad_scaled * weight.unsqueeze(1)).sum(2).T  # (k, in)
        grad_bias = grad.sum(0).view(k, -1).sum(0)
        return grad_x, grad_weight, grad_bias, grad_adapter, None


def parametric_relu(h: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """``F.prelu``, with a faster backward when gradients are needed (same values).

    ``slope`` is ``(W,)`` for ``h`` ``(n, W)``, or ``(E, 1, W)`` (each
    expert's slopes) for ``h`` ``(E, R, W)`` of a batched program.
    """
    if torch.is_grad_enabled() and (h.requires_grad or slope.requires_grad):
        return _PReLU.apply(h, slope)
    return _prelu_values(h, slope)


def _prelu_values(h: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    if slope.dim() == 1:
        return F.prelu(h, slope)
    # F.prelu takes one slope per channel of dim 1: per-expert slopes broadcast.
    return torch.addcmul(h.clamp_min(0), h.clamp_max(0), slope.to(h.dtype))


class _PReLU(torch.autograd.Function):
    """PReLU of ``h`` with slopes broadcast to it (see :func:`parametric_relu`): the
    forward of ``F.prelu`` and a backward built from fast elementwise kernels.

    On the CPU, torch's own PReLU backward took 30% of a training step
    (longer than the matrix products); this one gives the same input
    gradient, bit for bit, and the same slope gradient up to the order of
    its sum over rows (docs/benchmarks.md, "PReLU backward").
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, slope)
        return _prelu_values(h, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, slope = ctx.saved_tensors
        passed = torch.ops.aten.threshold_backward(grad, h, 0)  # grad where h > 0, else 0
        blocked = grad - passed  # grad where h <= 0, else 0
        grad_h = torch.addcmul(passed, slope, blocked).to(h.dtype)  # (under autocast, deeper layers' h is bfloat16)
        # Summed over the rows (and nothing else) down to the slopes' shape.
        return grad_h, (blocked * h).sum_to_size(slope.shape).to(slope.dtype)


def _heads(out_weight: torch.Tensor, adapter: torch.Tensor) -> tuple[int, int, torch.Tensor]:
    """The members' output layers, ``(k, width, o)``, from the stacked ``(width, k * o)``."""
    k = adapter.shape[0]
    width, o = out_weight.shape[0], out_weight.shape[1] // k
    return k, width, out_weight.view(width, k, o).transpose(0, 1)


class MemberLoss:
    """A per-row loss that averages over the members of an ensemble expert.

    Called on every member's outputs ``(n, k, n_outputs)`` (from
    :meth:`ExpertBank.forward_members`), it is the mean of each member's own
    loss, so that every member learns to predict on its own (a loss of the
    members' mean would let them specialise on each other's errors). A class
    rather than a closure, so that expert jobs pickle to worker processes.
    """

    def __init__(self, loss_fn) -> None:
        self.loss_fn = loss_fn

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, k, o = out.shape
        if k == 1:
            return self.loss_fn(out[:, 0], y)
        per_member = self.loss_fn(out.reshape(n * k, o), y.repeat_interleave(k, dim=0))
        return per_member.view(n, k).mean(dim=1)
