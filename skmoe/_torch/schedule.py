"""How training is cut into epochs, and learning-rate schedules over them.

An epoch is one pass over the training rows, except on large tables: there
it is ``EPOCH_ROWS`` rows of the shuffled stream of passes, so that early
stopping looks at the validation loss after about the same amount of
training whatever the table's size (a pass over a million rows is as much
training as 60 passes over the suite's largest tables), and a budget of
``max_epochs`` still means that many passes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

import torch

SCHEDULES = ("constant", "cosine")

# Rows of training between two validation checks on tables larger than this.
EPOCH_ROWS = 65_536


def epoch_budget(max_passes: int, steps_per_pass: int, steps_per_epoch: int) -> int:
    """Epochs in ``max_passes`` passes of ``steps_per_pass`` steps (rounded up)."""
    return -(-max_passes * steps_per_pass // steps_per_epoch)


def scheduled_lr(base: float, schedule: str, progress: float) -> float:
    """The learning rate at ``progress`` in [0, 1] of a phase's budget.

    ``"constant"`` keeps ``base``; ``"cosine"`` decays it from ``base`` to
    zero along half a cosine, so that a fixed budget of epochs ends on small
    steps (the best validation epoch is still the one kept).
    """
    if schedule == "constant":
        return base
    return 0.5 * base * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def step_lr(base: float, schedule: str, epoch: int, step: int, n_steps: int, n_epochs: int) -> float:
    """The learning rate of minibatch ``step`` of ``n_steps`` in ``epoch`` of ``n_epochs``."""
    return scheduled_lr(base, schedule, (epoch + step / n_steps) / n_epochs)


class BatchStream:
    """Minibatches of row indices, pass after pass.

    ``new_pass()`` shuffles the rows and splits them into one pass's
    minibatches; :meth:`take` hands them out in order and starts a new pass
    when one is used up. When an epoch is a whole pass, every epoch takes
    exactly one pass, so the minibatches are those of a plain epoch loop.
    """

    def __init__(self, new_pass: Callable[[], Sequence[torch.Tensor]]) -> None:
        self._new_pass = new_pass
        self._queue: deque[torch.Tensor] = deque()

    def take(self, n_steps: int) -> list[torch.Tensor]:
        """The next ``n_steps`` minibatches."""
        out = []
        while len(out) < n_steps:
            if not self._queue:
                self._queue.extend(self._new_pass())
            out.append(self._queue.popleft())
        return out
