"""Reading named arrays of an untrusted model file, every one checked."""

from __future__ import annotations

import numpy as np

from .exceptions import ModelFileError


class ArrayReader:
    """The arrays under ``prefix`` of a model file's ``arrays``.

    ``get`` refuses a missing array or one of the wrong dtype kind, naming it
    by its full key, so that every fitted component can read its own arrays
    with the same checks and messages.
    """

    def __init__(self, arrays: dict[str, np.ndarray], prefix: str = "") -> None:
        self.arrays, self.prefix = arrays, prefix

    def sub(self, prefix: str) -> "ArrayReader":
        return ArrayReader(self.arrays, self.prefix + prefix)

    def has(self, key: str) -> bool:
        """Whether the file holds the array ``prefix + key``."""
        return self.prefix + key in self.arrays

    def get(self, key: str, kinds: str = "fiub", shape: tuple | None = None) -> np.ndarray:
        """The array ``prefix + key``, of a dtype kind in ``kinds`` (and ``shape``)."""
        name = self.prefix + key
        if name not in self.arrays:
            raise ModelFileError(f"The array {name!r} is missing.")
        a = self.arrays[name]
        if a.dtype.kind not in kinds:
            raise ModelFileError(f"The array {name!r} has dtype {a.dtype}, expected kind {kinds!r}.")
        if shape is not None and a.shape != shape:
            raise ModelFileError(f"The array {name!r} has shape {a.shape}, expected {shape}.")
        return a

    def finite(self, key: str, shape: tuple | None = None, positive: bool = False) -> np.ndarray:
        """A float array ``prefix + key`` with only finite values (and positive ones)."""
        a = self.get(key, "f", shape)
        if not np.isfinite(a).all() or (positive and not (a > 0).all()):
            what = "finite and positive" if positive else "finite"
            raise ModelFileError(f"The array {self.prefix + key!r} must hold {what} values only.")
        return a
