"""Resolving the ``device`` hyperparameter, and the precision of training and inference on it."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch
from threadpoolctl import ThreadpoolController

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


def training_autocast(setting: bool | str, device: torch.device):
    """The context training runs in on ``device``: bfloat16 autocast, or none.

    ``setting`` is the ``autocast`` hyperparameter; ``"auto"`` takes bfloat16
    where ``device`` multiplies bfloat16 matrices natively
    (:func:`native_bfloat16`). Without the cast cache: it would keep the
    bfloat16 copy of a leaf parameter from before the optimizer's first
    in-place update.
    """
    if setting == "auto":
        setting = native_bfloat16(device)
    if not setting:
        return contextlib.nullcontext()
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"autocast=True needs a CPU or CUDA device, got {device}.")
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` has bfloat16 matrix instructions (not an emulation).

    CPUs with AVX512-BF16 or AMX (read from ``/proc/cpuinfo``; elsewhere
    False), through oneDNN, and CUDA GPUs from compute capability 8 (Ampere).
    On a 2-core AVX512-BF16 CPU a default training epoch ran at 1.4-1.8x the
    float32 rate (``benchmarks/train_step.py``); where bfloat16 is emulated it
    would be slower than float32, so those devices train in float32.
    """
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags()) and torch.backends.mkldnn.is_available()
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return False


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The x86 feature flags of this machine's first CPU (empty where unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The process's thread pools, found once (torch's OpenMP runtime is
    loaded with skmoe): finding them reads the list of loaded libraries,
    which took 1.4 ms of every one-row predict with ``n_threads`` set."""
    return ThreadpoolController()


def limit_threads(n_threads: int | None):
    """A context that limits the OpenMP threads (torch's CPU kernels,
    scikit-learn's k-means) to ``n_threads``; ``None`` leaves them as they are."""
    if n_threads is None:
        return contextlib.nullcontext()
    return _thread_pools().limit(limits=n_threads, user_api="openmp")


def full_precision(x: torch.Tensor):
    """A context that turns autocast off on ``x``'s device: under bf16 autocast,
    routing and evaluation must see the numbers float32 prediction does."""
    if x.device.type in ("cpu", "cuda"):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype of autocast's products on ``device`` if autocast is on, else None."""
    try:
        return torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
    except (AttributeError, TypeError):  # torch < 2.4 names the CPU's autocast state apart
        if device.type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
