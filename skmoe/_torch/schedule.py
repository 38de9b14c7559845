"""Learning-rate schedules over a phase's budget of epochs."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def scheduled_lr(base: float, schedule: str, progress: float) -> float:
    """The learning rate at ``progress`` in [0, 1] of a phase's ``max_epochs``.

    ``"constant"`` keeps ``base``; ``"cosine"`` decays it from ``base`` to
    zero along half a cosine, so that a fixed budget of epochs ends on small
    steps (the best validation epoch is still the one kept).
    """
    if schedule == "constant":
        return base
    return 0.5 * base * (1.0 + math.cos(math.pi * min(progress, 1.0)))
