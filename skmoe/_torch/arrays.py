"""Checked reading of named arrays into tensors, for every engine component."""

from __future__ import annotations

import numpy as np
import torch


class ModelFileError(ValueError):
    """A saved model (or a pickled network) is malformed, truncated or tampered with."""


def numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a NumPy array of its own (on the host)."""
    return t.detach().cpu().numpy().copy()


def checked_tensor(arrays: dict, name: str, shape: tuple, kind: str) -> torch.Tensor:
    """``arrays[name]`` as a tensor, checked for presence, shape, kind and finiteness.

    ``kind`` is ``"float"`` (finite, returned as float32) or ``"int"`` (int64).
    """
    if name not in arrays:
        raise ModelFileError(f"The array {name!r} is missing.")
    a = np.asarray(arrays[name])
    if a.shape != shape:
        raise ModelFileError(f"The array {name!r} has shape {a.shape}, expected {shape}.")
    if kind == "float":
        if a.dtype.kind != "f":
            raise ModelFileError(f"The array {name!r} has dtype {a.dtype}, expected floats.")
        with np.errstate(over="ignore"):
            a = a.astype(np.float32)
        # Checked after the cast: 1e300 is finite in float64, infinite in float32.
        if not np.isfinite(a).all():
            raise ModelFileError(f"The array {name!r} holds NaN or infinite values (as float32).")
        return torch.from_numpy(a)
    if a.dtype.kind not in "iu":
        raise ModelFileError(f"The array {name!r} has dtype {a.dtype}, expected integers.")
    return torch.from_numpy(a.astype(np.int64))
