"""Encoded rows whose piecewise-linear blocks are held as one bin and one fill.

A piecewise-linear block of ``B`` inputs (one numeric column's bins) is ones up
to a value's bin ``k``, the fill ``f`` of that bin, then zeros. Its product
with a weight block ``W`` ``(B, out)`` is therefore ``C[k] + f * W[k]``, where
``C[k]`` is the sum of the first ``k`` rows of ``W``: two row lookups instead
of a product over all ``B`` rows. :class:`PiecewiseRows` carries rows in that
form (``B`` times fewer numbers than the dense encoding) and
:func:`project` multiplies them by a weight matrix of the dense layout, so a
layer written for dense rows needs one call changed.

Training keeps the dense rows (their backward through the lookups was slower,
``docs/benchmarks.md``); prediction and routing use this form. The products
are the same up to float rounding (the sums run in another order), not bit
for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PiecewiseLayout:
    """Where the piecewise-linear blocks sit among a network's ``n_inputs`` inputs.

    ``n_columns`` blocks of ``n_bins`` inputs each, side by side from input
    ``start``; every other input is dense, in its order.
    """

    n_inputs: int
    start: int
    n_columns: int
    n_bins: int

    @property
    def stop(self) -> int:
        return self.start + self.n_columns * self.n_bins

    def dense_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """The rows of ``weight`` ``(n_inputs, out)`` that meet the dense inputs: ``(n_dense, out)``."""
        return torch.cat([weight[: self.start], weight[self.stop :]])

    def table(self, weight: torch.Tensor) -> torch.Tensor:
        """The lookup table of ``weight``'s piecewise-linear rows: ``(n_columns * 2 * (n_bins + 1), out)``.

        Column ``j``'s part is its cumulative sums ``C`` (``C[0] = 0``, summed
        in float64 and rounded once) then its rows ``W`` with a zero row after
        them (the bin past the last, which a value at or above the top edge has).
        """
        d, b = self.n_columns, self.n_bins
        blocks = weight[self.start : self.stop].reshape(d, b, -1)  # (d, B, out)
        zero = blocks.new_zeros(d, 1, blocks.shape[2])
        sums = torch.cat([zero, blocks.double().cumsum(1).to(blocks.dtype)], dim=1)  # (d, B + 1, out)
        return torch.cat([sums, blocks, zero], dim=1).reshape(d * 2 * (b + 1), -1)


class PiecewiseRows:
    """``n`` encoded rows: their dense inputs, and each block's bin and fill.

    Parameters
    ----------
    dense : tensor of shape (n, n_inputs - n_columns * n_bins)
    bins : long tensor of shape (n, layout.n_columns)
        Each block's count of full bins, in ``[0, n_bins]``.
    fills : tensor of shape (n, layout.n_columns)
        The fill of bin ``bins`` (0 where ``bins == n_bins``), in ``dense``'s dtype.
    layout : PiecewiseLayout
    """

    def __init__(self, dense: torch.Tensor, bins: torch.Tensor, fills: torch.Tensor, layout: PiecewiseLayout):
        self.dense, self.bins, self.fills, self.layout = dense, bins, fills, layout

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dense.shape[0], self.layout.n_inputs)

    @property
    def dtype(self) -> torch.dtype:
        return self.dense.dtype

    @property
    def device(self) -> torch.device:
        return self.dense.device

    def __len__(self) -> int:
        return self.dense.shape[0]

    def _map(self, fn) -> PiecewiseRows:
        return PiecewiseRows(fn(self.dense), fn(self.bins), fn(self.fills), self.layout)

    def __getitem__(self, rows: slice) -> PiecewiseRows:
        return self._map(lambda t: t[rows])

    def index_select(self, dim: int, index: torch.Tensor) -> PiecewiseRows:
        return self._map(lambda t: t.index_select(dim, index))

    def split(self, sizes) -> list[PiecewiseRows]:
        parts = zip(*(t.split(sizes) for t in (self.dense, self.bins, self.fills)))
        return [PiecewiseRows(*part, self.layout) for part in parts]

    def to(self, device, dtype: torch.dtype) -> PiecewiseRows:
        return PiecewiseRows(self.dense.to(device, dtype), self.bins.to(device), self.fills.to(device, dtype),
                             self.layout)

    def padded(self, n_rows: int) -> PiecewiseRows:
        """These rows and zero rows after them, ``n_rows`` in all (bin 0 with fill 0: all zeros)."""
        extra = n_rows - len(self)
        return self._map(lambda t: torch.cat([t, t.new_zeros(extra, *t.shape[1:])]))

    def densified(self) -> torch.Tensor:
        """The rows in the dense layout ``(n, n_inputs)``, for layers without a lookup form."""
        layout, (n, _) = self.layout, self.shape
        steps = torch.arange(layout.n_bins, device=self.device)  # (B,)
        full = (steps < self.bins.unsqueeze(2)).to(self.dtype)  # (n, d, B)
        at = steps == self.bins.unsqueeze(2)
        blocks = torch.where(at, self.fills.unsqueeze(2), full).reshape(n, -1)
        return torch.cat([self.dense[:, : layout.start], blocks, self.dense[:, layout.start :]], dim=1)

    def lookup(self, table: torch.Tensor) -> torch.Tensor:
        """``sum_j C_j[k_j] + f_j * W_j[k_j]`` of :meth:`PiecewiseLayout.table` ``table``: ``(n, out)``."""
        d, b = self.layout.n_columns, self.layout.n_bins
        base = torch.arange(d, device=self.device) * (2 * (b + 1))  # column j's first table row
        index = torch.stack([base + self.bins, base + (b + 1) + self.bins], dim=2).reshape(len(self), 2 * d)
        weight = torch.stack([torch.ones_like(self.fills), self.fills], dim=2).reshape(len(self), 2 * d)
        return F.embedding_bag(index, table, per_sample_weights=weight.to(table.dtype), mode="sum")


def project(
    x: torch.Tensor | PiecewiseRows,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    prepared: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``x @ weight + bias`` for dense rows or :class:`PiecewiseRows`: ``(n, out)``.

    ``weight`` is ``(n_inputs, out)`` in the dense layout. For piecewise rows,
    ``prepared`` is :func:`prepare` of ``weight`` if the caller keeps it (a
    layer whose weights do not change between calls).
    """
    if isinstance(x, torch.Tensor):
        return torch.addmm(bias, x, weight) if bias is not None else x @ weight
    dense, table = prepared if prepared is not None else prepare(weight, x.layout)
    out = x.lookup(table)
    return out.addmm_(x.dense, dense) if bias is None else out.add_(bias).addmm_(x.dense, dense)


def prepare(weight: torch.Tensor, layout: PiecewiseLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight``'s dense rows and lookup table, what :func:`project` needs."""
    return layout.dense_weight(weight), layout.table(weight)


def dense(x: torch.Tensor | PiecewiseRows) -> torch.Tensor:
    """``x`` as dense rows (a no-op for a tensor)."""
    return x if isinstance(x, torch.Tensor) else x.densified()
