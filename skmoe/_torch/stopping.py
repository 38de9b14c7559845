"""Early stopping of independent groups (one network, or one expert each)."""

from __future__ import annotations

import numpy as np


class EarlyStopping:
    """Best validation loss and patience for ``n_groups`` independent groups."""

    def __init__(self, n_groups: int, patience: int) -> None:
        self.best = np.full(n_groups, np.inf)
        self.best_epoch = np.full(n_groups, -1)
        self.stale = np.zeros(n_groups, dtype=int)
        self.patience = patience
        self.active = np.ones(n_groups, dtype=bool)

    def update(self, losses: np.ndarray, epoch: int) -> np.ndarray:
        """Record ``losses``; return the mask of groups that improved."""
        # Any improvement of the validation loss counts: the best weights are
        # kept anyway, and a tolerance stopped slow but steady learners early.
        improved = self.active & np.isfinite(losses) & (losses < self.best)
        self.best[improved] = losses[improved]
        self.best_epoch[improved] = epoch
        self.stale[improved] = 0
        self.stale[self.active & ~improved] += 1
        self.active &= self.stale < self.patience
        return improved
