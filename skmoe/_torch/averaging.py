"""Weight averaging: an exponential moving average of the parameters.

Training updates the raw parameters; after every optimizer step the average
moves a fraction ``rate`` of the way towards them. Validation, early stopping
and the fitted model use the average, which smooths out the minibatch noise
of the last steps much as a decaying learning rate would, without fixing a
budget of epochs in advance.

``rate`` is set from a time constant in epochs: ``1 / (epochs * steps per
epoch)``, so the average spans about the same share of training on a small
table as on a large one. Training from a random start warms the average up:
its rate starts near 1 and falls as ``9 / (10 + step)`` until it reaches
``rate``, so that the random weights are forgotten within a few steps and a
short fit (or one stopped early by a fault) keeps an average of its recent
weights, not of its start. A warm start (an expert starting from the shared
weights) needs no warm-up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch


def average_rate(epochs: float, steps_per_epoch: int) -> float:
    """The per-step rate of an average spanning about ``epochs`` epochs (0: none)."""
    if epochs <= 0:
        return 0.0
    return min(1.0, 1.0 / (epochs * max(steps_per_epoch, 1)))


def warm_up_rate(step: int) -> float:
    """The rate floor at ``step`` (from 0) of an average warming up: 0.9 at
    first, an average over the last tenth or so of the steps later on."""
    return 9.0 / (10.0 + step)


class WeightAverage:
    """The moving average of ``params`` (a list of leaf tensors), step by step."""

    def __init__(self, params: Sequence[torch.Tensor], rate: float, warm_up: bool = False) -> None:
        self.params = list(params)
        self.rate = rate
        self.steps = 0 if warm_up else None
        # Views of the parameters' storage, made once: the optimizer's
        # in-place steps show through them, so no step builds them anew.
        self._sources = [p.detach() for p in self.params]
        self.averages = [p.clone() for p in self._sources]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current parameters (after a step)."""
        rate = self.rate
        if self.steps is not None:
            rate = max(rate, warm_up_rate(self.steps))
            self.steps += 1
        torch._foreach_lerp_(self.averages, self._sources, rate)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """The averages in the parameters' place for the ``with`` block
        (evaluation, snapshots); the raw parameters after it."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    @torch.no_grad()
    def _swap(self) -> None:
        for p, a in zip(self.params, self.averages):
            raw = p.detach().clone()
            p.copy_(a)
            a.copy_(raw)
