"""Specialising Voronoi experts as independent jobs.

Once the Voronoi router is fixed every row belongs to exactly one expert, so
the experts are independent problems (the paper's remark that a MoMLP can be
trained "by distributing each expert on separate machines"). An
:class:`ExpertJob` holds a group of experts, the rows of their cells and
everything needed to train them; :func:`train_experts` runs it anywhere: in
the fitting process, in a joblib worker or on a Dask worker.

An expert's training depends on nothing outside its own job entry: it has its
own shuffling generator, its own parameter tensors (so its optimizer update
is computed apart from every other expert's), its own early stopping and its
own divergence handling. How experts are grouped into jobs therefore changes
no weight: one job with all experts and one job per expert give the same
model, bit for bit on the CPU.

A job's experts train in lockstep: each step takes one minibatch of every
active expert. On the CPU that step is a loop over the experts; on an
accelerator it is one batched program over all of them (:mod:`.batched`),
the same training up to float rounding, in a handful of kernels a step
instead of a few dozen per expert.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .averaging import average_rate
from .batched import StackedAdamW, padded_batches, stack_states, stacked_members
from .device import CHUNK_ROWS, full_precision, resolve_device, training_autocast
from .experts import MemberLoss, mlp_forward, mlp_members, split_state
from .optim import adamw
from .schedule import BatchStream, epoch_budget, step_lr
from .stopping import EarlyStopping


@dataclass
class CellRows:
    """The rows of a group's cells, expert by expert.

    Shipped to a worker, ``X``, ``y`` and ``w`` hold the cells' rows,
    concatenated. In the fitting process they can be the whole table and
    ``index`` its rows, cell by cell: the same rows without a copy of them.
    """

    X: np.ndarray  # (n, d) float32
    y: np.ndarray  # (n, o) float32, or (n,) int64 for classification
    w: np.ndarray  # (n,) float32
    counts: np.ndarray  # (n_group,) rows of each expert, in order
    index: np.ndarray | None = None  # (counts.sum(),) rows of X, cell by cell; None: all of X

    def expert_rows(self, device: torch.device) -> list[torch.Tensor]:
        """Each expert's row indices into ``X``."""
        if self.index is None:
            ends = np.cumsum(self.counts)
            return [torch.arange(end - n, end, device=device) for n, end in zip(self.counts, ends)]
        index = torch.from_numpy(self.index).to(device)
        return list(index.split([int(n) for n in self.counts]))


@dataclass
class ExpertJob:
    """Everything needed to specialise a group of Voronoi experts.

    Parameters are plain NumPy arrays, so a job pickles small and loads on a
    machine without the fitting process's device.
    """

    experts: np.ndarray  # (n_group,) global expert indices
    states: list[list[np.ndarray]]  # per expert: weights, biases, slopes, adapters (bank order)
    n_layers: int  # linear layers per expert (depth + 1)
    prelu: bool
    train: CellRows
    val: CellRows | None
    seeds: np.ndarray  # (n_group,) one shuffling seed per expert
    n_steps: int  # optimizer steps per pass over its cell, the same for every expert
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # per row, on predictions (n, o)
    learning_rate: float
    weight_decay: float
    max_epochs: int
    n_iter_no_change: int
    tol: float
    device: str  # the estimator's device setting, resolved where the job runs
    autocast: bool | str  # the estimator's setting, resolved where the job runs
    lr_schedule: str = "constant"  # see schedule.scheduled_lr
    epoch_steps: int | None = None  # steps per epoch (see .schedule); None: a pass
    batched: bool | None = None  # all experts in one program (.batched); None: on accelerators
    average_epochs: float = 0.0  # time constant of the weight average (.averaging); 0: none
    epochs: np.ndarray | None = None  # (n_group,) fixed epochs per expert (a refit); None: stop on losses


@dataclass
class ExpertResult:
    """What a job hands back: final weights and a per-epoch record.

    Epochs count from 1 within the job; epoch 0 is the weights the job
    started from.
    """

    experts: np.ndarray
    states: list[list[np.ndarray]]
    best_epoch: np.ndarray  # (n_group,) epoch whose weights each expert kept (<= 0: its start)
    train_loss_sum: np.ndarray  # (n_group, n_epochs) weighted sums, NaN once stopped
    train_weight: np.ndarray  # (n_group,) weight of each cell's training rows
    val_loss: np.ndarray  # (n_group, n_epochs + 1) mean on the cell; column 0 = start
    val_weight: np.ndarray  # (n_group,)
    diverged: np.ndarray  # (n_group,) bool
    seconds: np.ndarray  # (n_epochs,)
    interrupted: bool = False

    @property
    def n_epochs(self) -> int:
        return self.train_loss_sum.shape[1]


def train_experts(job: ExpertJob, on_epoch: Callable[["_Run"], None] | None = None) -> ExpertResult:
    """Specialise the experts of ``job``; see the module docstring.

    ``on_epoch`` (in-process only) is called after every epoch with the
    running state, for checkpoints.
    """
    device = resolve_device(job.device)
    with training_autocast(job.autocast, device):
        run = _Run(job, device)
        try:
            run.train(on_epoch)
        except KeyboardInterrupt:
            run.interrupted = True
    return run.result()


class _Run:
    """The running state of one job."""

    def __init__(self, job: ExpertJob, device: torch.device) -> None:
        self.job = job
        self.device = device
        n = len(job.experts)
        to = dict(device=self.device)
        self.X = torch.from_numpy(job.train.X).to(**to)
        self.y = torch.from_numpy(job.train.y).to(**to)
        self.w = torch.from_numpy(job.train.w).to(**to)
        self.rows = job.train.expert_rows(self.device)
        # One program for all experts on accelerators (see .batched); on the
        # CPU a loop over the experts is as fast and keeps earlier fits' bits.
        self.batched = job.batched if job.batched is not None else self.device.type != "cpu"
        if self.batched:
            self.stacks = stack_states([[torch.tensor(a, device=self.device) for a in s] for s in job.states])
            with torch.no_grad():  # views of the stacks, for evaluation and snapshots
                self.params = [[p[e] for p in self.stacks] for e in range(n)]
        else:
            self.params = [
                [torch.tensor(a, device=self.device, requires_grad=True) for a in state]
                for state in job.states
            ]
        generators = [torch.Generator().manual_seed(int(s)) for s in job.seeds]
        self.streams = [self._stream(rows, g) for rows, g in zip(self.rows, generators)]
        self.epoch_steps = job.epoch_steps or job.n_steps
        self.n_epochs = epoch_budget(job.max_epochs, job.n_steps, self.epoch_steps)
        self.member_loss = MemberLoss(job.loss_fn)
        self._init_averages()
        self.train_weight = np.array([float(self.w[r].double().sum()) for r in self.rows])
        self.val = None
        self.val_weight = np.zeros(n)
        if job.val is not None:
            self.val = (
                torch.from_numpy(job.val.X).to(**to),
                torch.from_numpy(job.val.y).to(**to),
                torch.from_numpy(job.val.w).to(**to),
                job.val.expert_rows(self.device),
            )
            self.val_weight = np.array([float(self.val[2][r].double().sum()) for r in self.val[3]])
        self.train_sums: list[np.ndarray] = []
        self.val_losses: list[np.ndarray] = []
        self.seconds: list[float] = []
        self.diverged = np.zeros(n, dtype=bool)
        self.interrupted = False
        # Which experts still train, and each one's epoch of kept weights.
        self.stopping = EarlyStopping(n, job.n_iter_no_change)
        # An expert without training rows has nothing to learn from.
        self.stopping.active &= np.asarray(job.train.counts) > 0
        if job.epochs is not None:  # a refit: an expert planned 0 epochs keeps its start
            self.stopping.active &= np.asarray(job.epochs) > 0
        # Weights each expert falls back on: its best on validation, or its
        # last finite epoch without validation data; at first, the start.
        self.snapshots = [self._state(e) for e in range(n)]
        start = self._val_losses()
        self.val_losses.append(start)
        if self.val is not None:
            self.stopping.update(start, 0)
            # Without validation rows an expert cannot be checked: it keeps its start.
            self.stopping.active &= np.isfinite(start)
        if self.batched:
            self.optimizer = StackedAdamW(self.stacks, lr=job.learning_rate, weight_decay=job.weight_decay)
        else:
            self.optimizer = adamw(
                [p for params in self.params for p in params], job.learning_rate, job.weight_decay
            )

    @torch.no_grad()
    def _init_averages(self) -> None:
        """The weight average (see .averaging) that validation and the result use."""
        self.rate = average_rate(self.job.average_epochs, self.epoch_steps)
        if self.rate and self.batched:
            self.average_stacks = [p.detach().clone() for p in self.stacks]
            self.averages = [[a[e] for a in self.average_stacks] for e in range(len(self.params))]
        elif self.rate:
            self.averages = [[p.detach().clone() for p in params] for params in self.params]

    # -- training -------------------------------------------------------------
    def train(self, on_epoch) -> None:
        job = self.job
        active = self.stopping.active  # updated in place
        for epoch in range(1, self.n_epochs + 1):
            if not active.any():
                break
            start = time.perf_counter()
            sums = self._epoch_batched(epoch - 1) if self.batched else self._epoch(epoch - 1)
            for e in np.flatnonzero(active & ~np.isfinite(sums)):
                self._load(e, self.snapshots[e])  # diverged: back to its fall-back
                self.diverged[e] = True
                active[e] = False
            losses = self._val_losses()
            # Recorded together once both exist: an interrupt during the
            # validation leaves the epochs so far, each with both losses.
            self.train_sums.append(sums)
            self.val_losses.append(losses)
            self._stop_or_keep(epoch, losses)
            self.seconds.append(time.perf_counter() - start)
            if on_epoch is not None:
                on_epoch(self)

    def _epoch(self, epoch: int) -> np.ndarray:
        """Epoch ``epoch`` (from 0) of every active expert; its weighted training-loss sums."""
        job = self.job
        active = np.flatnonzero(self.stopping.active)
        n_steps = self.epoch_steps
        batches = {e: self.streams[e].take(n_steps) for e in active}
        sums: dict[int, list[torch.Tensor]] = {e: [] for e in active}
        for step in range(n_steps):
            terms, stepped = [], []
            for e in active:
                i = batches[e][step]
                if len(i) == 0:
                    continue
                stepped.append(e)
                row_loss = self.member_loss(self._forward(e, self.X[i], members=True), self.y[i])
                w = self.w[i]
                # Each expert's mean loss; summed, each gets its own gradient.
                terms.append((row_loss * w).sum() / w.sum().clamp_min(1e-12))
                sums[e].append((row_loss.detach().double() * w).sum())
            if not terms:
                continue
            lr = step_lr(job.learning_rate, job.lr_schedule, epoch, step, n_steps, self.n_epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            torch.stack(terms).sum().backward()
            self.optimizer.step()
            if self.rate:
                with torch.no_grad():  # no graph: the parameters themselves, no detached copies
                    torch._foreach_lerp_(
                        [a for e in stepped for a in self.averages[e]],
                        [p for e in stepped for p in self.params[e]],
                        self.rate,
                    )
        out = np.full(len(job.experts), np.nan)
        for e in active:
            out[e] = float(torch.stack(sums[e]).sum()) if sums[e] else 0.0
        return out

    def _epoch_batched(self, epoch: int) -> np.ndarray:
        """:meth:`_epoch` as one batched program over the experts (see .batched)."""
        job, n_steps = self.job, self.epoch_steps
        active = np.flatnonzero(self.stopping.active)
        batches = {e: self.streams[e].take(n_steps) for e in active}
        n = len(job.experts)
        sums = torch.zeros(n, dtype=torch.float64, device=self.device)
        weights, biases, slopes, adapter = split_state(self.stacks, job.n_layers, job.prelu)
        for step in range(n_steps):
            live = [e for e in active if len(batches[e][step])]
            if not live:
                continue
            rows, real = padded_batches([batches[e][step] for e in live])
            index = torch.tensor(live).to(self.device, non_blocking=True)  # no wait for the device
            # All experts in most steps: the stacks themselves, no copy.
            part = None if len(live) == n else index
            out = stacked_members(
                self.X[rows], _rows_of(weights, part), _rows_of(biases, part), _rows_of(slopes, part),
                job.prelu, _rows_of([adapter], part)[0] if adapter is not None else None,
            )  # (live, B, k, o)
            n_live, n_rows, k, o = out.shape
            y = self.y[rows].flatten(0, 1)
            row_loss = self.member_loss(out.reshape(n_live * n_rows, k, o), y).view(n_live, n_rows)
            w = self.w[rows] * real
            # Each expert's mean loss; summed, each gets its own gradient.
            (((row_loss * w).sum(1) / w.sum(1).clamp_min(1e-12)).sum()).backward()
            sums.index_add_(0, index, (row_loss.detach().double() * w).sum(1))
            self.optimizer.lr = step_lr(job.learning_rate, job.lr_schedule, epoch, step, n_steps, self.n_epochs)
            self.optimizer.step(torch.zeros(n, dtype=torch.bool, device=self.device).index_fill_(0, index, True))
            self.optimizer.zero_grad()
            if self.rate:
                self._average_rows(part)
        out = np.full(n, np.nan)
        out[active] = sums.cpu().numpy()[active]
        return out

    def _stop_or_keep(self, epoch: int, losses: np.ndarray) -> None:
        job, stopping = self.job, self.stopping
        if self.val is not None:
            improved = stopping.update(losses, epoch)
        else:
            # No validation: keep the last finite epoch.
            improved = stopping.active.copy()
            stopping.best_epoch[improved] = epoch
            if job.epochs is not None:  # a refit: each expert runs its planned epochs
                stopping.active &= epoch < np.asarray(job.epochs)
            else:
                stopping.active &= ~self._train_loss_stalled()
        for e in np.flatnonzero(improved):
            self.snapshots[e] = self._state(e)

    def _train_loss_stalled(self) -> np.ndarray:
        """Experts whose training loss has not improved by ``tol`` in ``n_iter_no_change`` epochs."""
        history = np.array(self.train_sums) / np.maximum(self.train_weight, 1e-12)
        patience = self.job.n_iter_no_change
        if len(history) <= patience:
            return np.zeros(len(self.job.experts), dtype=bool)
        with warnings.catch_warnings():  # all-NaN columns: stopped experts
            warnings.simplefilter("ignore", RuntimeWarning)
            recent = np.nanmin(history[-patience:], axis=0)
            before = np.nanmin(history[:-patience], axis=0)
        return recent > before - self.job.tol

    # -- helpers --------------------------------------------------------------
    def _stream(self, rows: torch.Tensor, generator: torch.Generator) -> BatchStream:
        """An expert's minibatches: each pass its cell shuffled, in ``n_steps`` pieces."""

        def new_pass() -> tuple[torch.Tensor, ...]:
            order = torch.randperm(len(rows), generator=generator).to(self.device)
            return rows[order].tensor_split(self.job.n_steps)

        return BatchStream(new_pass)

    @torch.no_grad()
    def _average_rows(self, index: torch.Tensor | None) -> None:
        """Move the averages of the experts in ``index`` (None: all) towards their weights."""
        for a, p in zip(self.average_stacks, self.stacks):
            if index is None:
                a.lerp_(p, self.rate)
            else:
                a.index_copy_(0, index, a.index_select(0, index).lerp_(p.index_select(0, index), self.rate))

    def _forward(
        self, e: int, x: torch.Tensor, members: bool = False, params: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Expert ``e`` on ``x`` with its weights (or ``params``): its
        prediction ``(n, o)``, or every member's ``(n, k, o)``."""
        params = self.params[e] if params is None else params
        weights, biases, slopes, adapter = split_state(params, self.job.n_layers, self.job.prelu)
        forward = mlp_members if members else mlp_forward
        return forward(x, weights, biases, slopes, self.job.prelu, adapter)

    @torch.no_grad()
    def _val_losses(self) -> np.ndarray:
        """Mean validation loss of each expert on its own cell (NaN without rows)."""
        out = np.full(len(self.job.experts), np.nan)
        if self.val is None:
            return out
        X, _, _, rows = self.val
        with full_precision(X):  # judged on the numbers prediction will give
            for e, r in enumerate(rows):
                out[e] = self._val_loss(e, r)
        return out

    def _val_loss(self, e: int, r: torch.Tensor) -> float:
        """Expert ``e``'s mean loss on its validation rows ``r`` (NaN: not checked)."""
        X, y, w, _ = self.val
        if len(r) == 0 or not (self.stopping.active[e] or len(self.val_losses) == 0):
            return np.nan
        kept = self.averages[e] if self.rate else None
        total = sum(
            float((self.job.loss_fn(self._forward(e, X[i], params=kept), y[i]).double() * w[i]).sum())
            for i in r.split(CHUNK_ROWS)
        )
        return total / max(float(w[r].double().sum()), 1e-12)

    def _state(self, e: int) -> list[torch.Tensor]:
        """What expert ``e`` would keep now: its weights, or their average."""
        return [p.detach().clone() for p in (self.averages[e] if self.rate else self.params[e])]

    @torch.no_grad()
    def _load(self, e: int, state: list[torch.Tensor]) -> None:
        for p, value in zip(self.params[e], state):
            p.copy_(value)
        if self.rate:  # a fall-back restarts the average there too
            for a, value in zip(self.averages[e], state):
                a.copy_(value)

    def partial(self) -> ExpertResult:
        """The result so far, with each expert's fall-back weights (for checkpoints)."""
        return self._result([[t.cpu().numpy().copy() for t in s] for s in self.snapshots])

    def result(self) -> ExpertResult:
        """The final result: best weights with validation data, else the last finite ones."""
        if self.val is not None or self.interrupted or self.rate:
            for e in range(len(self.job.experts)):
                self._load(e, self.snapshots[e])
        return self._result([[p.detach().cpu().numpy().copy() for p in ps] for ps in self.params])

    def _result(self, states: list[list[np.ndarray]]) -> ExpertResult:
        job = self.job
        n_epochs = len(self.train_sums)
        return ExpertResult(
            experts=job.experts,
            states=states,
            best_epoch=self.stopping.best_epoch.copy(),
            train_loss_sum=np.array(self.train_sums).T.reshape(len(job.experts), n_epochs),
            train_weight=self.train_weight,
            val_loss=np.array(self.val_losses).T,
            val_weight=self.val_weight,
            diverged=self.diverged.copy(),
            seconds=np.array(self.seconds),
            interrupted=self.interrupted,
        )


def _rows_of(stacks: list[torch.Tensor], index: torch.Tensor | None) -> list[torch.Tensor]:
    """The experts ``index`` of each stack (all of them for None)."""
    return stacks if index is None else [t[index] for t in stacks]


def expert_groups(cell_sizes: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Split the experts into ``n_groups`` groups of about equal rows.

    Largest cells first, each to the group with the fewest rows so far; every
    group is returned in expert order, empty groups dropped.
    """
    n_groups = max(1, min(n_groups, len(cell_sizes)))
    load = np.zeros(n_groups)
    members: list[list[int]] = [[] for _ in range(n_groups)]
    for e in np.argsort(-np.asarray(cell_sizes), kind="stable"):
        g = int(np.argmin(load))
        members[g].append(int(e))
        load[g] += cell_sizes[e]
    return [np.array(sorted(m)) for m in members if m]
