"""One training epoch of a default ensemble expert, in several forms, side by side.

A shared-phase epoch on random data of the California housing table's
encoded shape (16,384 rows, 272 inputs at 32 bins a column; width 128,
depth 2, 8 members, minibatches of 256), in this process, the forms taking
turns ``--repeats`` times; prints each form's median epoch seconds and its
ratio to the first form's:

- ``previous``: the step of 2026-12-02 written out here (autograd through
  the members' scaled first layer, a batched product of the members' heads,
  for-each AdamW);
- ``float32``: the engine's step (``ExpertBank.forward_members`` and the
  engine's optimizer);
- ``bfloat16``: the engine's step under bfloat16 autocast (``autocast=True``).

Usage::

    python benchmarks/train_step.py --repeats 5
    OMP_NUM_THREADS=1 python benchmarks/train_step.py --inputs 150 --profile float32

``--profile FORM`` prints torch's profile of one epoch of that form instead.
``--batch-sizes 256 512 1024`` prints the engine's float32 epoch at each
minibatch size (median of 3).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch
import torch.nn.functional as F

from skmoe._torch.experts import ExpertBank, MemberLoss, parametric_relu
from skmoe._torch.optim import adamw
from skmoe._torch.training import squared_error

WIDTH, MEMBERS = 128, 8


def previous_members(bank: ExpertBank, x: torch.Tensor) -> torch.Tensor:
    """The members' outputs ``(n, k, 1)`` as the step of 2026-12-02 computed them."""
    w1, w2, w3 = (w[0] for w in bank.weights)
    b1, b2, b3 = (b[0] for b in bank.biases)
    s1, s2 = (s[0] for s in bank.slopes)
    adapter = bank.adapters[0][0]
    k, (n_in, width) = adapter.shape[0], w1.shape
    scaled = (adapter.T.unsqueeze(2) * w1.unsqueeze(1)).reshape(n_in, k * width)
    h = parametric_relu(torch.addmm(b1.repeat(k), x, scaled).view(-1, width), s1)
    h = parametric_relu(torch.addmm(b2, h, w2), s2)
    heads = w3.view(width, k, -1).transpose(0, 1)
    return torch.baddbmm(b3.view(k, 1, -1), h.view(-1, k, width).transpose(0, 1), heads).transpose(0, 1)


def make_form(name: str, n_inputs: int):
    """A fresh bank, its optimizer and the forward of form ``name``."""
    bank = ExpertBank(1, n_inputs, 1, 2, WIDTH, True, MEMBERS)
    bank.reset_parameters(torch.Generator().manual_seed(0))
    if name == "previous":
        optimizer = torch.optim.AdamW(bank.parameters(), lr=1e-3, weight_decay=1e-4, foreach=True)
        return bank, optimizer, lambda x: previous_members(bank, x), contextlib.nullcontext
    optimizer = adamw(bank.parameters(), 1e-3, 1e-4)
    context = contextlib.nullcontext
    if name == "bfloat16":
        context = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    return bank, optimizer, lambda x: bank.forward_members([x])[0], context


def epoch(form, X: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """One epoch's seconds."""
    _, optimizer, forward, context = form
    loss_fn = MemberLoss(squared_error)
    start = time.perf_counter()
    for rows in torch.randperm(len(X), generator=torch.Generator().manual_seed(1)).split(batch):
        with context():
            loss = loss_fn(forward(X[rows]), y[rows]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=272)
    parser.add_argument("--rows", type=int, default=16_384)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--forms", nargs="*", default=["previous", "float32", "bfloat16"])
    parser.add_argument("--profile")
    parser.add_argument("--batch-sizes", type=int, nargs="*")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(args.rows, args.inputs, generator=generator)
    y = torch.randn(args.rows, 1, generator=generator)
    if args.batch_sizes:
        for batch in args.batch_sizes:
            form = make_form("float32", args.inputs)
            times = [epoch(form, X, y, batch) for _ in range(4)][1:]
            print(f"batch {batch}: epoch {np.median(times):.3f} s", flush=True)
        return
    if args.profile:
        form = make_form(args.profile, args.inputs)
        epoch(form, X, y, args.batch)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            epoch(form, X, y, args.batch)
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=20))
        return
    forms = {name: make_form(name, args.inputs) for name in args.forms}
    for form in forms.values():
        epoch(form, X, y, args.batch)  # warm-up
    times = {name: [] for name in forms}
    for _ in range(args.repeats):
        for name, form in forms.items():
            times[name].append(epoch(form, X, y, args.batch))
    first = args.forms[0]
    print(f"{args.rows} rows x {args.inputs} inputs, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    for name in forms:
        ratios = np.array(times[first]) / np.array(times[name])
        print(f"{name:10s} epoch {np.median(times[name]):.3f} s   {np.median(ratios):.2f}x the {first} form's rate")


if __name__ == "__main__":
    main()
