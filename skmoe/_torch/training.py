"""The training loop: a shared warm-up, then expert specialisation.

Training runs in two phases.

1. ``shared``: one MLP is trained on all rows. It is the warm start of every
   expert, so a mixture never starts from scratch on a small cell.
2. ``specialise`` (only with more than one expert): every expert starts as a
   copy of the shared MLP.

   * Voronoi routing is fixed, so the experts are independent problems,
     trained as independent jobs (:mod:`.specialise`), in this process or
     spread over joblib workers: each expert trains on minibatches of its own
     cell and has its own early stopping on the validation rows of its cell,
     so an expert whose specialisation does not help keeps the shared weights.
   * A learned router trains jointly with the experts on ordinary minibatches,
     with one early stopping for the whole network.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from .averaging import WeightAverage, average_rate
from .device import CHUNK_ROWS, full_precision
from .experts import ExpertBank, MemberLoss
from .optim import adamw
from .parallel import n_workers as parallel_workers
from .parallel import run_unordered
from .routing import LearnedRouter, MoENetwork, VoronoiRouter, route_in_chunks, sparse_forward
from .schedule import EPOCH_ROWS, BatchStream, epoch_budget, step_lr
from .specialise import CellRows, ExpertJob, ExpertResult, expert_groups, train_experts
from .stopping import EarlyStopping

# Per-row loss: (predictions (n, o), targets) -> (n,)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]



@dataclass
class TrainConfig:
    """Resolved training hyperparameters."""

    learning_rate: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    n_iter_no_change: int
    early_stopping: bool
    verbose: int
    tol: float = 1e-4
    n_jobs: int | None = None  # expert jobs in parallel (Voronoi specialisation)
    device: str = "cpu"  # the device setting, resolved where an expert job runs
    autocast: bool | str = "auto"  # see device.training_autocast
    lr_schedule: str = "constant"  # or "cosine": decay to zero over max_epochs of each phase
    average_epochs: float = 0.0  # time constant of the weight average (.averaging); 0: none
    epoch_plan: EpochPlan | None = None  # fixed epoch counts (a refit without validation rows)


class RefitDiverged(RuntimeError):
    """A refit's loss became non-finite: it cannot run the epochs of its plan."""


@dataclass(frozen=True)
class EpochPlan:
    """Epochs a refit runs: those an early-stopped fit kept, phase by phase.

    The shared phase runs ``shared`` epochs; in the specialisation expert
    ``e`` runs ``experts[e]`` (0: it keeps the shared weights). A learned
    router trains all experts jointly, for the most of them. The learning-rate
    schedule keeps the length ``max_epochs`` gives it, so every epoch runs at
    the rate it had in the early-stopped fit.
    """

    shared: int
    experts: np.ndarray  # (n_experts,) int

    @classmethod
    def kept_by(cls, history: History) -> EpochPlan:
        """The epochs whose weights an early-stopped fit with ``history`` kept."""
        n_shared = history.phase.count("shared")
        kept = np.asarray(history.best_epoch) - n_shared + 1  # epochs into the specialisation
        return cls(int(history.best_epoch_shared) + 1, np.maximum(kept, 0).astype(np.int64))


@dataclass
class Split:
    """Tensors of one data split, all on the training device."""

    X: torch.Tensor  # (n, d) float32
    y: torch.Tensor  # (n, o) float32, or (n,) long for classification
    w: torch.Tensor  # (n,) float32 sample weights

    def __len__(self) -> int:
        return self.X.shape[0]


@dataclass
class History:
    """Per-epoch record of a fit, across both phases."""

    phase: list[str] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    expert_load: list[np.ndarray] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    # Routing health, from expert_load: spread, unused experts, entropy (nats).
    load_cv: list[float] = field(default_factory=list)
    dead_experts: list[int] = field(default_factory=list)
    routing_entropy: list[float] = field(default_factory=list)
    best_epoch: np.ndarray | None = None  # (n_experts,) epoch whose weights each expert kept
    best_epoch_shared: int = -1

    def followed_by(self, later: History) -> History:
        """This record, then ``later``'s epochs; the kept epochs are ``later``'s."""
        joined = {
            f.name: getattr(self, f.name) + getattr(later, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("best_epoch", "best_epoch_shared")
        }
        return History(**joined, best_epoch=later.best_epoch, best_epoch_shared=later.best_epoch_shared)


def squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared error over the outputs: ``(n, o), (n, o) -> (n,)``."""
    return (out - y).square().mean(dim=1)


def log_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy of logits ``(n, o)`` for class codes ``(n,)``.

    One output is the binary case (the logit of the second class).
    """
    if out.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(out[:, 0], y.float(), reduction="none")
    return F.cross_entropy(out, y, reduction="none")


def _weighted_mean(loss: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (loss * w).sum() / w.sum().clamp_min(1e-12)


def _progress(iterable, verbose: int, desc: str):
    if verbose < 2:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: without it, verbose=2 is verbose=1
        return iterable
    return tqdm(iterable, desc=desc, leave=False)


@dataclass
class _Phase:
    """One phase trained on all rows at once, with one early stopping.

    The shared warm-up and the joint training of a learned router are both
    phases; :meth:`Trainer._run_phase` is their one loop.
    """

    name: str
    module: nn.Module  # what is trained; its best state_dict is kept
    train_forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]  # (n, k, o), experts
    eval_forward: Callable[[torch.Tensor], torch.Tensor]  # predictions (n, o)
    snapshot: Callable[[dict | None], MoENetwork]  # the network at these weights (checkpoints)
    load: Callable[[], np.ndarray]  # share of rows per expert after an epoch
    router: LearnedRouter | None = None  # balanced after every step
    baseline_epoch: int | None = None  # the starting weights count as this epoch's


class Trainer:
    """Fits a :class:`MoENetwork` on prepared tensors.

    Parameters
    ----------
    loss_fn : callable
        Per-row loss on predictions, ``loss_fn(outputs (n, o), targets) -> (n,)``;
        training applies it to every ensemble member (:class:`MemberLoss`).
    config : TrainConfig
    generator : torch.Generator
        CPU generator for initialisation and shuffling (determinism).
    epoch_offset : int, default=0
        Epochs already run by an earlier fit (a warm start, or the fit a
        refit follows): epoch numbers in ``history.best_epoch`` count them too.
    phase_prefix : str, default=""
        Put before each phase's name in ``history.phase`` (``"refit "``).
    checkpoint : callable, default=None
        Called as ``checkpoint(network, history)`` every ``checkpoint_every``
        epochs with a copy of the network holding the best weights so far
        (each expert's best, in the specialisation phase).
    checkpoint_every : int, default=10
    """

    def __init__(
        self,
        loss_fn: LossFn,
        config: TrainConfig,
        generator: torch.Generator,
        epoch_offset: int = 0,
        checkpoint: Callable[[MoENetwork, History], None] | None = None,
        checkpoint_every: int = 10,
        phase_prefix: str = "",
    ) -> None:
        self.loss_fn = loss_fn
        self.phase_prefix = phase_prefix
        self.member_loss = MemberLoss(loss_fn)
        self.config = config
        self.generator = generator
        self.epoch_offset = epoch_offset
        self.history = History()
        # Phase in which a KeyboardInterrupt stopped training, if one did.
        self.interrupted: str | None = None
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    def _interrupt(self, phase: str) -> None:
        """Record a KeyboardInterrupt; the phase then keeps its best weights so far."""
        self.interrupted = phase

    def _epoch(self) -> int:
        """Number of the epoch about to be recorded."""
        return self.epoch_offset + len(self.history.phase)

    # -- public entry points ------------------------------------------------
    def fit(
        self,
        bank: ExpertBank,
        router: VoronoiRouter | LearnedRouter,
        train: Split,
        val: Split | None,
    ) -> MoENetwork:
        """Train ``bank`` (one shared expert) then specialise it under ``router``."""
        device = train.X.device
        bank.to(device)
        self._fit_shared(bank, router, train, val)
        best_shared = int(self.history.best_epoch_shared)
        experts = bank.copy_experts(torch.zeros(router.n_experts, dtype=torch.long))
        network = MoENetwork(router, experts).to(device)
        if router.n_experts == 1 or self.interrupted:
            # One expert, or interrupted: every expert has the shared weights.
            self.history.best_epoch = np.full(router.n_experts, best_shared)
        elif isinstance(router, VoronoiRouter):
            self._specialise_voronoi(network, train, val, best_shared)
        else:
            self._specialise_learned(network, train, val, best_shared)
        return network

    def fit_more(
        self, network: MoENetwork, train: Split, val: Split | None, baseline_epoch: np.ndarray
    ) -> MoENetwork:
        """Go on specialising a fitted (for example grown) ``network``.

        Its current weights are every expert's baseline: with validation data an
        expert keeps them unless further training beats them on its own rows.
        ``baseline_epoch`` is the epoch each expert's current weights come from.
        """
        network.to(train.X.device)
        if isinstance(network.router, VoronoiRouter):
            self._specialise_voronoi(network, train, val, baseline_epoch)
        else:
            self._specialise_learned(
                network, train, val, int(np.max(baseline_epoch)), reset_router=False
            )
        return network

    # -- phases on all rows ---------------------------------------------------
    def _optimizer(self, params) -> torch.optim.Optimizer:
        return adamw(params, self.config.learning_rate, self.config.weight_decay)

    def _fit_shared(self, bank: ExpertBank, router, train: Split, val: Split | None) -> None:
        """One MLP on all rows: the warm start of every expert."""

        def snapshot(state: dict | None) -> MoENetwork:
            shared = copy.deepcopy(bank)
            if state is not None:
                shared.load_state_dict(state)
            every = torch.zeros(router.n_experts, dtype=torch.long)
            return MoENetwork(copy.deepcopy(router), shared.copy_experts(every))

        phase = _Phase(
            name="shared",
            module=bank,
            train_forward=lambda x: (bank.forward_members([x])[0], None),
            eval_forward=lambda x: bank.forward_groups([x])[0],
            snapshot=snapshot,
            load=lambda: np.ones(1),
        )
        self.history.best_epoch_shared = self._run_phase(phase, train, val)

    def _specialise_learned(
        self,
        network: MoENetwork,
        train: Split,
        val: Split | None,
        best_shared: int,
        reset_router: bool = True,
    ) -> None:
        """The learned router and the experts, trained jointly."""
        router: LearnedRouter = network.router
        if reset_router:
            router.reset_parameters(self.generator)
        router.to(train.X.device)

        def snapshot(state: dict | None) -> MoENetwork:
            best = copy.deepcopy(network)
            best.load_state_dict(state)
            return best

        def load() -> np.ndarray:
            with torch.no_grad():
                routed = route_in_chunks(router, train.X, CHUNK_ROWS)
            counts = np.bincount(routed.reshape(-1).cpu().numpy(), minlength=router.n_experts)
            return counts / counts.sum()

        def train_forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            experts, gates = router(x)
            return sparse_forward(network.bank, x, experts, gates, members=True), experts

        phase = _Phase(
            name="specialise",
            module=network,
            train_forward=train_forward,
            eval_forward=lambda x: sparse_forward(network.bank, x, *router(x)),
            snapshot=snapshot,
            load=load,
            router=router,
            baseline_epoch=best_shared,
        )
        best_epoch = self._run_phase(phase, train, val)
        self.history.best_epoch = np.full(router.n_experts, best_epoch)

    def _run_phase(self, phase: _Phase, train: Split, val: Split | None) -> int:
        """Train ``phase.module``, keep its best weights; return the epoch they are from.

        With validation data the best weights are those of the best validation
        loss; without, those of the last epoch whose training loss was finite.
        """
        module, config = phase.module, self.config
        optimizer = self._optimizer(module.parameters())
        stopper = EarlyStopping(1, config.n_iter_no_change)
        best_state = last_good = None
        best_epoch = -1
        if phase.baseline_epoch is not None:
            best_epoch, last_good = phase.baseline_epoch, copy.deepcopy(module.state_dict())
            if val is not None:
                stopper.update(np.array([self._global_loss(phase.eval_forward, val)]), best_epoch)
                best_state = copy.deepcopy(module.state_dict())
        stream, per_epoch, n_epochs = self._batches(train)
        average = None
        if config.average_epochs > 0:
            # From a random start (no baseline weights) the average warms up.
            average = WeightAverage(
                list(module.parameters()), average_rate(config.average_epochs, per_epoch),
                warm_up=phase.baseline_epoch is None,
            )
        try:
            for epoch_in_phase in range(self._planned_epochs(phase.name, n_epochs)):
                start = time.perf_counter()
                batches = stream.take(per_epoch)
                train_loss = self._global_epoch(
                    phase, optimizer, train, batches, (epoch_in_phase, n_epochs), average
                )
                if not math.isfinite(train_loss):
                    best_state = self._diverged(phase.name, best_state or last_good)
                    break
                epoch = self._epoch()
                # Validation and the kept weights use the average, if any.
                with average.swapped() if average is not None else contextlib.nullcontext():
                    if val is None:
                        last_good, best_epoch = copy.deepcopy(module.state_dict()), epoch
                    val_loss = self._global_loss(phase.eval_forward, val) if val is not None else math.nan
                    if val is not None and stopper.update(np.array([val_loss]), epoch)[0]:
                        best_state, best_epoch = copy.deepcopy(module.state_dict()), epoch
                best = best_state if best_state is not None else last_good
                self._record(
                    phase.name, train_loss, val_loss, phase.load(), time.perf_counter() - start,
                    best_so_far=lambda: phase.snapshot(best),
                )
                if (val is not None and not stopper.active[0]) or self._converged():
                    break
        except KeyboardInterrupt:
            self._interrupt(phase.name)
        if val is None and best_state is None:
            # The last epoch's weights as validation would have seen them: with
            # weight averaging the average, not the weights of the last step.
            best_state = last_good
        if best_state is not None:
            module.load_state_dict(best_state)
        return best_epoch

    def _planned_epochs(self, phase: str, budget: int) -> int:
        """Epochs the phase may run: ``budget``, in a refit at most the plan's count."""
        plan = self.config.epoch_plan
        if plan is None:
            return budget
        return min(budget, plan.shared if phase == "shared" else int(plan.experts.max(initial=0)))

    def _batches(self, train: Split) -> tuple[BatchStream, int, int]:
        """A phase's minibatches: the stream, steps per epoch, and the epoch budget."""
        n, size = len(train), self.config.batch_size
        device = train.X.device
        stream = BatchStream(
            lambda: torch.randperm(n, generator=self.generator).to(device).split(size)
        )
        per_pass = -(-n // size)
        per_epoch = -(-min(n, EPOCH_ROWS) // size)
        return stream, per_epoch, epoch_budget(self.config.max_epochs, per_pass, per_epoch)

    def _global_epoch(
        self, phase: _Phase, optimizer, train: Split, batches: list[torch.Tensor], progress: tuple[int, int],
        average: WeightAverage | None = None,
    ) -> float:
        """One epoch of ``batches`` (epoch ``progress[0]`` of ``progress[1]``
        in the phase, for the learning-rate schedule); returns the mean loss.
        ``average``, if given, follows every step."""
        config = self.config
        epoch, n_epochs = progress
        # Summed on the device, in float64 as Python floats would (the same
        # numbers): no host synchronisation inside the epoch on a GPU.
        total = torch.zeros((), dtype=torch.float64, device=train.X.device)
        weight = torch.zeros((), dtype=torch.float64, device=train.X.device)
        for step, batch in enumerate(_progress(batches, config.verbose, phase.name)):
            lr = step_lr(config.learning_rate, config.lr_schedule, epoch, step, len(batches), n_epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y, w = train.X[batch], train.y[batch], train.w[batch]
            out, experts = phase.train_forward(x)
            loss = _weighted_mean(self.member_loss(out, y), w)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update()
            if phase.router is not None:
                phase.router.update_balance(experts)
            w_sum = w.sum().double()
            total += loss.detach().double() * w_sum
            weight += w_sum
        return float(total) / max(float(weight), 1e-12)

    @torch.no_grad()
    def _global_loss(self, forward, split: Split) -> float:
        """Weighted mean loss of the predictions ``forward(x)`` on ``split``,
        in float32 under autocast (the numbers prediction will give)."""
        with full_precision(split.X):
            total = self._loss_sum(forward, split)
        return total / max(float(split.w.sum()), 1e-12)

    def _loss_sum(self, forward, split: Split) -> float:
        return sum(
            float((self.loss_fn(forward(x), y) * w).sum())
            for x, y, w in zip(
                split.X.split(CHUNK_ROWS), split.y.split(CHUNK_ROWS), split.w.split(CHUNK_ROWS)
            )
        )

    # -- Voronoi specialisation: independent expert jobs ---------------------
    def _specialise_voronoi(
        self, network: MoENetwork, train: Split, val: Split | None, baseline_epoch
    ) -> None:
        """Specialise the experts as independent jobs (see :mod:`.specialise`)."""
        bank, n_experts = network.bank, network.bank.n_experts
        n_workers = parallel_workers(self.config.n_jobs)
        jobs, n_jobs, sizes = self._voronoi_jobs(network, train, val, n_workers)
        epoch0 = self._epoch()
        load = sizes / max(len(train), 1)
        results: list[ExpertResult] = []

        def checkpoint(partial: list[ExpertResult]) -> None:
            history = copy.deepcopy(self.history)
            for train_loss, val_loss, seconds in _expert_epochs(results + partial):
                _record_into(history, "specialise", train_loss, val_loss, load, seconds)
            best = copy.deepcopy(network)
            _load_results(best.bank, partial)
            best.eval()
            self.checkpoint(best, history)

        def finished(result: ExpertResult) -> None:
            results.append(result)
            _load_results(bank, [result])

        try:
            if n_workers:
                self._run_jobs_in_parallel(jobs, n_jobs, finished, checkpoint)
            else:
                self._run_jobs_here(jobs, finished, checkpoint)
        except KeyboardInterrupt:
            self._interrupt("specialise")
        for train_loss, val_loss, seconds in _expert_epochs(results):
            self._record("specialise", train_loss, val_loss, load, seconds)
        self.history.best_epoch = _kept_epochs(results, baseline_epoch, n_experts, epoch0)
        self._warn_on_divergence(results, epoch0)

    def _voronoi_jobs(self, network: MoENetwork, train: Split, val: Split | None, n_workers: int):
        """The expert jobs (a generator) for ``n_workers`` workers (0: this
        process), their number, and each cell's training rows."""
        bank, router = network.bank, network.router
        n_experts = bank.n_experts
        with torch.no_grad():
            cells = _cells(router(train.X)[0][:, 0], n_experts)
            val_cells = _cells(router(val.X)[0][:, 0], n_experts) if val is not None else None
        # Every expert sees its whole cell once per epoch in the same number of
        # steps, on average ``batch_size`` rows per expert and step.
        rows_per_step = n_experts * self.config.batch_size
        n_steps = max(1, round(len(train) / rows_per_step))
        # On large tables an epoch is EPOCH_ROWS rows of that stream (see .schedule).
        epoch_steps = max(1, round(min(len(train), EPOCH_ROWS) / rows_per_step))
        seeds = torch.randint(0, 2**62, (n_experts,), generator=self.generator).numpy()
        sizes = np.array([len(c) for c in cells])
        # In one process a single job trains all experts in lockstep; across
        # workers, a few jobs per worker balance uneven cells.
        groups = expert_groups(sizes, 4 * n_workers if n_workers else 1)
        train_host = _host(train)
        val_host = _host(val) if val is not None else None
        jobs = (
            self._expert_job(bank, g, (train_host, cells), (val_host, val_cells), seeds,
                             (n_steps, epoch_steps), shipped=bool(n_workers))
            for g in groups
        )
        return jobs, len(groups), sizes

    def _run_jobs_here(self, jobs, finished, checkpoint) -> None:
        """One job after another in this process, checkpointing every few epochs."""

        def on_epoch(run) -> None:
            if (len(self.history.phase) + len(run.train_sums)) % self.checkpoint_every == 0:
                checkpoint([run.partial()])

        for job in jobs:
            result = train_experts(job, on_epoch if self.checkpoint is not None else None)
            finished(result)
            if result.interrupted:
                self._interrupt("specialise")
                break

    def _run_jobs_in_parallel(self, jobs, n_jobs: int, finished, checkpoint) -> None:
        """The jobs on joblib's or Dask's workers, checkpointing as each finishes."""
        n_done = 0
        try:
            running = run_unordered(train_experts, jobs, self.config.n_jobs)
            for result in _progress(running, self.config.verbose, "expert jobs"):
                finished(result)
                n_done += 1
                if self.checkpoint is not None:
                    checkpoint([])
        except (KeyboardInterrupt, torch.OutOfMemoryError):
            raise
        except Exception as exc:  # a worker lost, a job failed
            raise RuntimeError(
                f"Training the experts in parallel failed ({type(exc).__name__}: "
                f"{exc}). {n_done} of {n_jobs} expert jobs had finished; "
                "no model was kept. Fit again, or with n_jobs=1 to train in this "
                "process."
            ) from exc

    def _warn_on_divergence(self, results: list[ExpertResult], epoch0: int) -> None:
        diverged = [int(e) for r in results for e in r.experts[r.diverged]]
        if not diverged:
            return
        if self.config.epoch_plan is not None:
            raise RefitDiverged(f"the loss of experts {diverged} became non-finite (specialise phase)")
        first = min(
            int(np.argmax(~np.isfinite(r.train_loss_sum[k])))
            for r in results
            for k in np.flatnonzero(r.diverged)
        )
        warnings.warn(
            f"Training diverged: the loss became non-finite in epoch {epoch0 + first + 1} "
            f"(specialise phase) for experts {diverged}; they kept their last good "
            f"weights. To train them further, lower learning_rate (now "
            f"{self.config.learning_rate}) or look for extreme values in X or y.",
            ConvergenceWarning,
        )

    def _expert_job(self, bank, group, train, val, seeds, steps, shipped: bool) -> ExpertJob:
        """The job of the experts in ``group``: their weights and their cells' rows.

        ``train`` and ``val``: the host rows and each expert's cell of them
        (``val`` rows None without validation); ``steps``: optimizer steps per
        pass over the cells, and per epoch; ``shipped``: the job goes to a
        worker, with its own copy of its rows."""
        return ExpertJob(
            experts=group,
            states=[[p.cpu().numpy() for p in bank.expert_state(int(e))] for e in group],
            n_layers=len(bank.weights),
            prelu=bank.prelu,
            train=_cell_rows(*train, group, shipped),
            val=_cell_rows(*val, group, shipped) if val[0] is not None else None,
            seeds=seeds[group],
            n_steps=steps[0],
            epoch_steps=steps[1],
            loss_fn=self.loss_fn,
            learning_rate=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
            max_epochs=self.config.max_epochs,
            n_iter_no_change=self.config.n_iter_no_change,
            tol=self.config.tol,
            device=self.config.device,
            autocast=self.config.autocast,
            lr_schedule=self.config.lr_schedule,
            average_epochs=self.config.average_epochs,
            epochs=plan.experts[group] if (plan := self.config.epoch_plan) is not None else None,
        )

    # -- helpers --------------------------------------------------------------
    def _diverged(self, phase: str, fallback: dict | None) -> dict:
        """Handle a non-finite training loss: keep ``fallback`` or raise."""
        epoch = self._epoch() + 1
        if self.config.epoch_plan is not None:
            raise RefitDiverged(f"the loss became non-finite in epoch {epoch} ({phase} phase)")
        advice = (
            f"lower learning_rate (now {self.config.learning_rate}) or look for "
            "extreme values in X or y"
        )
        if fallback is None:
            raise ValueError(
                f"Training diverged: the loss became non-finite in epoch {epoch} "
                f"({phase} phase) before any usable weights existed; {advice}."
            )
        warnings.warn(
            f"Training diverged: the loss became non-finite in epoch {epoch} "
            f"({phase} phase); training stopped and the last good weights were "
            f"kept. To train further, {advice}.",
            ConvergenceWarning,
        )
        return fallback

    def _record(
        self, phase: str, train_loss: float, val_loss: float, load, seconds: float,
        best_so_far: Callable[[], MoENetwork] | None = None,
    ) -> None:
        """Append an epoch; every ``checkpoint_every`` epochs, checkpoint ``best_so_far()``."""
        h = self.history
        phase = self.phase_prefix + phase
        _record_into(h, phase, train_loss, val_loss, load, seconds)
        due = self.checkpoint is not None and len(h.phase) % self.checkpoint_every == 0
        if due and best_so_far is not None:
            network = best_so_far()
            network.eval()
            self.checkpoint(network, h)
        if self.config.verbose:
            load = h.expert_load[-1]
            print(
                f"epoch {len(h.phase):4d} | {phase:10s} | train loss {train_loss:.5f} | "
                f"val loss {val_loss:.5f} | expert load min {load.min():.3f} "
                f"max {load.max():.3f} | {h.seconds[-1]:.2f}s",
                flush=True,
            )

    def _converged(self) -> bool:
        """Without validation data, stop once the training loss has not improved
        by ``tol`` (absolute, as in scikit-learn's MLP) for ``n_iter_no_change``
        epochs."""
        h = self.history
        losses = [loss for loss, phase in zip(h.train_loss, h.phase) if phase == h.phase[-1]]
        patience = self.config.n_iter_no_change
        if self.config.early_stopping or self.config.epoch_plan is not None or len(losses) <= patience:
            return False
        return min(losses[-patience:]) > min(losses[:-patience]) - self.config.tol


def _kept_epochs(results: list[ExpertResult], baseline_epoch, n_experts: int, epoch0: int) -> np.ndarray:
    """The epoch whose weights each expert kept after its job."""
    best_epoch = np.broadcast_to(baseline_epoch, (n_experts,)).copy()
    for result in results:
        # Epoch 0 of a job is its start: the baseline weights.
        kept = result.best_epoch > 0
        best_epoch[result.experts[kept]] = epoch0 + result.best_epoch[kept] - 1
    return best_epoch


def _cells(assignment: torch.Tensor, n_experts: int) -> list[torch.Tensor]:
    """Row indices of each expert's cell, from an ``(n,)`` assignment."""
    order = torch.argsort(assignment, stable=True)
    counts = torch.bincount(assignment, minlength=n_experts).tolist()
    return list(order.split(counts))


def _record_into(history: History, phase: str, train_loss: float, val_loss: float, load, seconds: float) -> None:
    """Append one epoch, with its routing health, to ``history``."""
    h = history
    h.phase.append(phase)
    h.train_loss.append(train_loss)
    h.validation_loss.append(val_loss)
    h.expert_load.append(np.asarray(load, dtype=float))
    h.seconds.append(seconds)
    share = h.expert_load[-1] / max(h.expert_load[-1].sum(), 1e-12)
    h.load_cv.append(float(share.std() / max(share.mean(), 1e-12)))
    h.dead_experts.append(int((share == 0).sum()))
    positive = share[share > 0]
    h.routing_entropy.append(float(-(positive * np.log(positive)).sum()))


def _expert_epochs(results: list[ExpertResult]) -> list[tuple[float, float, float]]:
    """``(train_loss, val_loss, seconds)`` of each specialisation epoch of expert jobs.

    An epoch's training loss is over the experts that trained in it; its
    validation loss is over every expert with validation rows, each at its
    latest weights (a stopped expert counts with its last evaluation).
    ``seconds`` is compute time summed over the jobs.
    """
    n_epochs = max((r.n_epochs for r in results), default=0)
    train_sum = np.zeros(n_epochs)
    train_weight = np.zeros(n_epochs)
    val_sum = np.zeros(n_epochs)
    val_weight = np.zeros(n_epochs)
    seconds = np.zeros(n_epochs)
    for r in results:
        sums = np.full((len(r.experts), n_epochs), np.nan)
        sums[:, : r.n_epochs] = r.train_loss_sum
        ok = np.isfinite(sums)
        train_sum += np.where(ok, sums, 0.0).sum(axis=0)
        train_weight += (ok * r.train_weight[:, None]).sum(axis=0)
        # Latest evaluation of each expert by each epoch (column 0: the start).
        losses = np.full((len(r.experts), n_epochs + 1), np.nan)
        losses[:, : r.n_epochs + 1] = r.val_loss
        for t in range(1, n_epochs + 1):
            losses[:, t] = np.where(np.isfinite(losses[:, t]), losses[:, t], losses[:, t - 1])
        ok = np.isfinite(losses[:, 1:])
        val_sum += np.where(ok, losses[:, 1:] * r.val_weight[:, None], 0.0).sum(axis=0)
        val_weight += (ok * r.val_weight[:, None]).sum(axis=0)
        seconds[: r.n_epochs] += r.seconds
    with np.errstate(invalid="ignore", divide="ignore"):
        train_loss = np.where(train_weight > 0, train_sum / train_weight, np.nan)
        val_loss = np.where(val_weight > 0, val_sum / val_weight, np.nan)
    return [(float(train_loss[t]), float(val_loss[t]), float(seconds[t])) for t in range(n_epochs)]


def _host(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A split's tensors as NumPy arrays in host memory."""
    return split.X.cpu().numpy(), split.y.cpu().numpy(), split.w.cpu().numpy()


def _cell_rows(host, cells: list[torch.Tensor], group: np.ndarray, shipped: bool) -> CellRows:
    """The rows of ``group``'s cells, expert after expert, each in cell order:
    copied out for a job ``shipped`` to a worker, else indices into ``host``
    (no second copy of the table in this process)."""
    X, y, w = host
    idx = np.concatenate([cells[e].cpu().numpy() for e in group])
    counts = np.array([len(cells[e]) for e in group])
    if shipped:
        return CellRows(X[idx], y[idx], w[idx], counts)
    return CellRows(X, y, w, counts, idx)


def _load_results(bank: ExpertBank, results: list[ExpertResult]) -> None:
    """Write the experts' weights of finished (or partial) jobs into ``bank``."""
    for result in results:
        for e, state in zip(result.experts, result.states):
            bank.load_expert_state(int(e), [torch.from_numpy(a) for a in state])
