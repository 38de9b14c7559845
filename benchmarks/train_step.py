"""One training epoch of a default ensemble expert, profiled op by op.

A shared-phase epoch on random data of the California housing table's
encoded shape (14,900 rows, 150 inputs; width 128, depth 2, 8 members,
minibatches of 256): its seconds, its rate in GFLOP/s beside the rate of
bare matrix products of the same shapes, and torch's profile of the ops.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/train_step.py``

``--batch-sizes 256 512 1024`` instead prints the epoch's seconds (median of
3) at each minibatch size, on 16,384 rows.
"""

import sys
import time

import torch

from skmoe._torch.experts import ExpertBank, MemberLoss
from skmoe._torch.training import squared_error

n, d, width, members, batch = 14_900, 150, 128, 8, 256
X, y = torch.randn(n, d), torch.randn(n, 1)
bank = ExpertBank(1, d, 1, 2, width, True, members)
bank.reset_parameters(torch.Generator().manual_seed(0))
optimizer = torch.optim.AdamW(bank.parameters(), lr=1e-3, weight_decay=1e-4)
loss_fn = MemberLoss(squared_error)


def epoch() -> None:
    for rows in torch.randperm(n).split(batch):
        loss = loss_fn(bank.forward_members([X[rows]])[0], y[rows]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def matmuls(steps: int) -> None:
    A = torch.randn(batch * members, d)
    W1 = torch.randn(d, width, requires_grad=True)
    W2 = torch.randn(width, width, requires_grad=True)
    for _ in range(steps):
        (torch.relu(A @ W1) @ W2).sum().backward()


if "--batch-sizes" in sys.argv:
    n = 16_384
    X, y = torch.randn(n, d), torch.randn(n, 1)
    for batch in map(int, sys.argv[sys.argv.index("--batch-sizes") + 1:]):
        bank.reset_parameters(torch.Generator().manual_seed(0))
        optimizer = torch.optim.AdamW(bank.parameters(), lr=1e-3, weight_decay=1e-4)
        epoch()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            epoch()
            times.append(time.perf_counter() - start)
        print(f"batch {batch}: epoch {sorted(times)[1]:.3f} s", flush=True)
    sys.exit()

steps = -(-n // batch)
flops = 6 * n * members * (d * width + width * width + width)
epoch()
start = time.perf_counter()
epoch()
seconds = time.perf_counter() - start
matmuls(2)
start = time.perf_counter()
matmuls(steps)
bare = time.perf_counter() - start
print(f"epoch {seconds:.3f} s ({flops / seconds / 1e9:.1f} GFLOP/s); bare matrix products "
      f"{bare:.3f} s ({6 * steps * batch * members * (d * width + width * width) / bare / 1e9:.1f} GFLOP/s)")
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
    epoch()
print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
