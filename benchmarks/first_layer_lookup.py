"""The members' first layer on piecewise-linear inputs: a dense product against row lookups.

A piecewise-linear block of one column is ones up to the value's bin, the
fill of that bin, then zeros. Its product with the first layer is therefore
the cumulative sum of the weight rows below the bin plus the fill times the
bin's row: two lookups per column instead of a product over every bin. This
script times one training step of that layer (forward and weight gradient,
no input gradient, as in training) both ways, beside the second layer's
step, and prints the medians. The lookups rebuild the cumulative tables from
the weights on every step, as training would have to.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/first_layer_lookup.py --bins 32 64 128
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def _median_ms(step, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def _step_times(bins: int, args) -> list[float]:
    """Median ms of a training step of the dense first layer, of the lookups
    and of the second layer, at ``bins`` bins per column."""
    torch.manual_seed(0)
    n, d, units = args.rows, args.columns, args.members * args.width
    # Each column: its bin (bins = above the range) and the fill of that bin.
    which = torch.randint(0, bins + 1, (n, d))
    fill = torch.rand(n, d) * (which < bins)
    levels = torch.arange(bins)
    ple = (levels < which[..., None]).float() + (levels == which[..., None]).float() * fill[..., None]
    dense_views = torch.randn(n, 2 * d)  # the robust and quantile views
    inputs = torch.cat([dense_views, ple.reshape(n, -1)], dim=1)
    weight = torch.randn(inputs.shape[1], units, requires_grad=True)
    bias = torch.zeros(units, requires_grad=True)
    grad = torch.randn(n, units)
    rows = (torch.arange(d) * (bins + 1))[None] + which  # (n, d) into the stacked tables

    def dense_forward():
        return torch.addmm(bias, inputs, weight)

    def lookup_forward():
        w_dense, w_bins = weight[: 2 * d], weight[2 * d :].view(d, bins, units)
        zero = w_bins.new_zeros(d, 1, units)
        below = torch.cat([zero, w_bins.cumsum(1)], 1).reshape(-1, units)  # rows below each bin
        own = torch.cat([w_bins, zero], 1).reshape(-1, units)  # each bin's own row
        tables = torch.cat([below, own])
        index = torch.cat([rows, rows + below.shape[0]], dim=1)
        weights = torch.cat([torch.ones_like(fill), fill], dim=1)
        return torch.addmm(bias, dense_views, w_dense) + F.embedding_bag(
            index, tables, per_sample_weights=weights, mode="sum"
        )

    def dense():
        dense_forward().backward(grad)

    def lookups():
        lookup_forward().backward(grad)

    hidden = torch.randn(args.members, n, args.width, requires_grad=True)
    second = torch.randn(args.members, args.width, args.width, requires_grad=True)

    def second_layer():
        out = torch.bmm(hidden, second)
        out.backward(torch.ones_like(out))

    # The two forms agree (up to float32 rounding) before they are timed.
    with torch.no_grad():
        check, looked = dense_forward(), lookup_forward()
        assert torch.allclose(check, looked, rtol=1e-4, atol=1e-3 * check.abs().max().item())
    return [_median_ms(step, args.repeats) for step in (dense, lookups, second_layer)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(f"{args.rows} rows, {args.columns} columns, {args.members} members of width {args.width}, "
          f"{torch.get_num_threads()} thread(s); median of {args.repeats} steps")
    print("| bins per column | dense product, ms | lookups, ms | the second layer, ms |")
    print("|---|---|---|---|")
    for bins in args.bins:
        times = _step_times(bins, args)
        print(f"| {bins} | " + " | ".join(f"{t:.2f}" for t in times) + " |")


if __name__ == "__main__":
    main()
