"""Resolving the ``device`` hyperparameter, and the precision of inference on it."""

from __future__ import annotations

import torch

# Rows handled at once wherever all rows need not be: prediction, routing and
# evaluation run over chunks of this many rows, so that memory stays bounded.
CHUNK_ROWS = 65_536
# Out of GPU memory predicting fewer rows than this at a time: give up.
MIN_PREDICT_CHUNK = 256


def resolve_device(device: str) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a device.

    ``"auto"`` picks the first CUDA device when one is available and the CPU
    otherwise. Asking for CUDA on a machine without it is an error rather than
    a silent fall-back, so that a job meant for a GPU never quietly runs for
    hours on the CPU.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu', "
            "'cuda' or 'cuda:N'."
        ) from exc
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or "
            "'cuda:N'."
        )
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='cpu' or device='auto'."
        )
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was requested but only "
            f"{torch.cuda.device_count()} CUDA device(s) are visible."
        )
    return resolved


def inference_dtype(device: torch.device) -> torch.dtype:
    """float32, as in training, on every device.

    With rows padded per expert (:func:`skmoe._torch.experts.mlp_forward`),
    float32 kernels give every row the same output whatever the other rows
    of its batch and the number of threads (checked over input widths 5-119,
    expert widths 16-1,024 and chunks of 1-1,000 rows); float64 did not once
    MKL's strict mode is on, and ran at half the speed.
    """
    return torch.float32


def free_cuda_cache(device: torch.device) -> None:
    """Hand cached GPU memory back after an out-of-memory error on ``device``."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
