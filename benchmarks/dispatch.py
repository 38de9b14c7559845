"""Cost of sparse dispatch against one dense MLP, forward + backward on the CPU.

For a batch of rows routed to ``E`` experts (balanced, or skewed: half of the
rows to one expert), it times one training step of

* ``loop``: skmoe's dispatch (sort rows by expert, split, one matmul chain per
  expert on its block; :func:`skmoe._torch.routing.sparse_forward`);
* ``padded bmm``: rows padded to the largest group and run as one batched
  matmul over stacked weights (the alternative the engine does not use);

and prints each as a ratio to one dense MLP of the same expert size on the
same batch (median of repeats, measured side by side in one process).

Run: ``python benchmarks/dispatch.py [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from skmoe._torch.experts import ExpertBank
from skmoe._torch.routing import sparse_forward


def step_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def padded_bmm(bank: ExpertBank, x: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(experts, stable=True)
    counts = torch.bincount(experts, minlength=bank.n_experts)
    width = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(x)) - starts[experts[order]]
    h = x.new_zeros(bank.n_experts, width, x.shape[1])
    h[experts[order], slot] = x[order]
    for layer in range(bank.depth):
        h = torch.baddbmm(bank.biases[layer][:, None], h, bank.weights[layer])
        h = torch.nn.functional.prelu(h.transpose(1, 2), bank.slopes[layer][0]).transpose(1, 2)
    h = torch.baddbmm(bank.biases[-1][:, None], h, bank.weights[-1])
    out = x.new_empty(len(x), h.shape[2])
    out[order] = h[experts[order], slot]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, n = 20, args.batch
    x = torch.randn(n, d)
    y = torch.randn(n, 1)
    dense = ExpertBank(1, d, 1, 2, args.width, True)
    dense.reset_parameters(torch.Generator().manual_seed(0))

    def dense_step():
        dense.zero_grad()
        ((dense.forward_groups([x])[0] - y) ** 2).mean().backward()

    base = step_time(dense_step, args.repeats)
    print(f"threads={args.threads} batch={n} width={args.width} depth=2; dense step {1e3 * base:.2f} ms")
    print(f"{'experts':>8s} {'routing':>9s} {'loop':>7s} {'padded bmm':>11s}")
    for n_experts in (4, 16, 64):
        bank = dense.copy_experts(torch.zeros(n_experts, dtype=torch.long))
        for routing in ("balanced", "skewed"):
            experts = torch.randint(0, n_experts, (n,))
            if routing == "skewed":
                experts[: n // 2] = 0
            e2 = experts[:, None]

            def loop_step():
                bank.zero_grad()
                ((sparse_forward(bank, x, e2, None) - y) ** 2).mean().backward()

            def bmm_step():
                bank.zero_grad()
                ((padded_bmm(bank, x, experts) - y) ** 2).mean().backward()

            loop = step_time(loop_step, args.repeats) / base
            bmm = step_time(bmm_step, args.repeats) / base
            print(f"{n_experts:8d} {routing:>9s} {loop:7.2f} {bmm:11.2f}", flush=True)


if __name__ == "__main__":
    main()
