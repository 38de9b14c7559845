"""The errors and warnings that skmoe raises on purpose.

Everything else skmoe raises is a built-in or scikit-learn exception
(``ValueError``, ``TypeError``, ``NotFittedError``, ``FileExistsError``...)
with a message that names the problem.
"""

from __future__ import annotations

# Defined in the engine, which raises it on malformed arrays (the engine
# imports nothing outside itself), and made public here.
from ._torch.api import ModelFileError

__all__ = ["InconsistentVersionWarning", "ModelFileError"]


class InconsistentVersionWarning(UserWarning):
    """A model is loaded under other skmoe or torch versions than it was saved with.

    Like scikit-learn's warning of the same name: the model may still work,
    but nothing guarantees that it predicts as it did; refit it under the
    current versions when that matters.
    """
