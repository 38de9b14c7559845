"""The model folder format: files that load without running code, and version stamps.

This module only writes and reads folders, headers and checksums: what goes
into the header and the arrays is the fitted components' business
(``to_arrays`` / ``from_arrays``, assembled by :mod:`skmoe._model_state`).

``model.save(path)`` writes a folder::

    model.json         the header: format, versions, estimator class and
                       parameters, fitted scalars, and every array file with
                       its size and SHA-256
    arrays.npz         input encoding, router and fitted arrays
    experts/*.npz      one shard per expert: its weights, biases, slopes and adapters

and :func:`load` reads it back with ``json`` and ``numpy.load(...,
allow_pickle=False)``: nothing in the folder can run code. Every array is
checked against the shape the header implies, file names must stay inside the
folder, and a file whose size or checksum differs from the header is refused.
The checksums catch truncated and corrupted files; they are not a signature
(anyone who can edit the folder can edit the header too), which is why the
shapes are checked as well.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import os
import shutil
import sys
import uuid
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: saves to one path are not serialised there
    fcntl = None

import numpy as np
import sklearn
import torch

from ._version import __version__
from .exceptions import InconsistentVersionWarning, ModelFileError

FORMAT = "skmoe-model"
FORMAT_VERSION = 1
_HEADER = "model.json"
# A header is parameters, fitted scalars and per-epoch history: a few MiB for
# thousands of experts. Refused unread beyond this.
_MAX_HEADER_BYTES = 64 * 2**20

def versions() -> dict[str, str]:
    """The versions of the libraries a model's behaviour depends on."""
    return {
        "skmoe": __version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }


def warn_on_version_change(saved: dict, what: str, stacklevel: int = 3) -> None:
    """Warn when ``saved`` versions differ from the running ones."""
    current = versions()
    changed = {k: saved.get(k) for k in ("skmoe", "torch") if saved.get(k) != current[k]}
    if changed:
        detail = ", ".join(f"{k} {v} (running {current[k]})" for k, v in changed.items())
        warnings.warn(
            f"{what} was saved under other versions: {detail}. It may behave "
            "differently; refit it under the current versions if that matters.",
            InconsistentVersionWarning,
            stacklevel=stacklevel,
        )


# -- files ----------------------------------------------------------------------
def write_model(path, header: dict, arrays: dict[str, np.ndarray], shards: list[dict], *,
                overwrite: bool = False) -> Path:
    """Write a model folder: ``header`` (completed with the file list), ``arrays``
    and one shard per expert.

    The folder is written beside ``path`` and swapped in at the end; on Linux
    the swap is one atomic exchange of the two folders, so that ``path``
    holds a complete model (the old or the new) at every instant, whenever
    the process is killed. Saves into one folder are serialised by a lock on
    that folder, and the next save removes what a killed save left behind.
    """
    path = Path(path)
    with _locked(path):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        if not replaceable(path):
            raise FileExistsError(
                f"{path} exists and is not a saved skmoe model; refusing to replace it."
            )
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(), **header}
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            _write_folder(tmp, header, arrays, shards)
            _swap_in(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # the old model after an exchange
        _remove_leftovers(path)
    return path


def _write_folder(root: Path, header: dict, arrays: dict, shards: list[dict]) -> None:
    (root / "experts").mkdir(parents=True)
    files = {"arrays": _write_npz(root, "arrays.npz", arrays)}
    files["experts"] = [_write_npz(root, f"experts/{e:05d}.npz", shard) for e, shard in enumerate(shards)]
    header["files"] = files
    (root / _HEADER).write_text(json.dumps(header, indent=1))


def _swap_in(new: Path, path: Path) -> None:
    """Put the complete folder ``new`` at ``path`` (``new`` then holds the old one, if any)."""
    if not path.exists():
        new.rename(path)
    elif not _exchange(new, path):
        # No atomic exchange (not Linux, or a file system without it): two
        # renames. A kill between them leaves the old model in ``.NAME.old*``,
        # which latest_model() finds and the next save clears.
        old = path.with_name(f".{path.name}.old{os.getpid()}-{uuid.uuid4().hex[:8]}")
        path.rename(old)
        new.rename(path)
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # a libc without it
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock for saves into ``path``'s folder (waiting for
    another process's): a lock on the folder itself, so that no lock file is
    left beside the model."""
    if fcntl is None or not path.parent.is_dir():
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _leftovers(path: Path) -> list[Path]:
    """Folders that saves to ``path`` left beside it (killed mid-write or mid-swap)."""
    prefixes = (f".{path.name}.tmp", f".{path.name}.old")
    return [p for p in path.parent.glob(f".{path.name}.*") if p.name.startswith(prefixes) and p.is_dir()]


def _remove_leftovers(path: Path) -> None:
    for folder in _leftovers(path):
        shutil.rmtree(folder, ignore_errors=True)


def latest_model(path) -> Path | None:
    """``path`` if it holds a model, else the newest complete model a killed
    save left beside it (see :func:`write_model`), else None."""
    path = Path(path)
    candidates = [path] + sorted(_leftovers(path), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in candidates:
        if (folder / _HEADER).is_file() and _complete(folder):
            return folder
    return None


def _complete(folder: Path) -> bool:
    """Whether every file the header of ``folder`` lists is there, with its size."""
    try:
        with warnings.catch_warnings():  # versions are warned of when the model is loaded
            warnings.simplefilter("ignore", InconsistentVersionWarning)
            files = _read_header(folder)["files"]
        return all(
            _entry_file(folder, e).stat().st_size == e.get("bytes")
            for e in [files["arrays"], *files["experts"]]
        )
    except (ModelFileError, OSError, KeyError, TypeError):
        return False


def read_model(path) -> tuple[dict, dict[str, np.ndarray], Callable[[int], dict[str, np.ndarray]]]:
    """``(header, arrays, read_shard)`` of a model folder, the header checked.

    ``read_shard(e)`` reads and checks expert ``e``'s shard when called; every
    shard the header lists is checked to exist (inside the folder) now.
    """
    root = Path(path)
    header = _read_header(root)
    files = header["files"]
    arrays = _read_npz(root, files.get("arrays"))
    spec = header.get("network")
    entries = files["experts"]
    for entry in entries:  # fail now, not in the middle of a batch job
        _entry_file(root, entry)
    if not isinstance(spec, dict) or len(entries) != spec.get("n_experts"):
        raise ModelFileError(f"{root} lists {len(entries)} expert shards for a network of "
                             f"{spec.get('n_experts') if isinstance(spec, dict) else '?'} experts.")
    return header, arrays, lambda e: _read_npz(root, entries[e])


def read_header(path) -> dict:
    """The checked JSON header of a saved model (nothing else is read)."""
    return _read_header(Path(path))


def _read_header(root: Path) -> dict:
    header_file = root / _HEADER
    if not header_file.is_file():
        raise ModelFileError(f"{root} is not a saved skmoe model: {_HEADER} is missing.")
    header_file = _inside(root, _HEADER)  # not a link to a file elsewhere
    if header_file.stat().st_size > _MAX_HEADER_BYTES:
        raise ModelFileError(
            f"{header_file} has {header_file.stat().st_size} bytes, more than a model header's "
            f"{_MAX_HEADER_BYTES // 2**20} MiB."
        )
    try:
        header = json.loads(header_file.read_text(), object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{header_file} is not valid JSON: {exc}.") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{header_file} is not a skmoe model header.")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{root} uses model format {version!r}; this skmoe reads format "
            f"{FORMAT_VERSION} and older. Upgrade skmoe to load it."
        )
    warn_on_version_change(header.get("versions") or {}, f"The model in {root}", stacklevel=4)
    files = header.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("experts"), list) or not files["experts"]:
        raise ModelFileError(f"{header_file} does not list the model's array files.")
    return header


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key given twice (JSON would keep the last silently)."""
    keys = [k for k, _ in pairs]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ValueError(f"the key(s) {duplicated} appear more than once in one object")
    return dict(pairs)


def replaceable(path) -> bool:
    """Whether ``save`` may write to ``path``: nothing there, an empty folder,
    or a saved model."""
    path = Path(path)
    if not path.exists() or (path / _HEADER).is_file():
        return True
    return path.is_dir() and not any(path.iterdir())


def _write_npz(root: Path, name: str, arrays: dict[str, np.ndarray]) -> dict:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    (root / name).write_bytes(data)
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _entry_file(root: Path, entry) -> Path:
    """The file a header entry names, checked to be well-formed and inside ``root``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ModelFileError(f"Malformed file entry in the model header: {entry!r}.")
    return _inside(root, entry["path"])


def _read_npz(root: Path, entry) -> dict[str, np.ndarray]:
    file = _entry_file(root, entry)
    name = entry["path"]
    size = file.stat().st_size
    if size != entry.get("bytes"):  # before reading: a huge file is refused unread
        raise ModelFileError(
            f"{name} has {size} bytes, but the model header says {entry.get('bytes')!r}: "
            "it is truncated or was modified."
        )
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise ModelFileError(
            f"{name} has content that does not match the model header: it is "
            "truncated or was modified."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_members(name, archive, len(data))
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{name} is not a readable array file: {exc}.") from None


def _check_members(name: str, archive: zipfile.ZipFile, n_bytes: int) -> None:
    """Refuse, before anything is decompressed, members that would expand.

    skmoe writes arrays uncompressed, so together they hold fewer bytes than
    their file; every member's own header must also declare no more bytes
    than the member holds (a shape of 1e6 x 1e6 in a small file is refused).
    """
    members = archive.infolist()
    if sum(m.file_size for m in members) > n_bytes:
        raise ModelFileError(
            f"{name} holds members that decompress to more than the file's own "
            f"{n_bytes} bytes; skmoe writes its arrays uncompressed."
        )
    for member in members:
        with archive.open(member) as f:
            fmt = np.lib.format
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
        if dtype.hasobject or int(np.prod(shape, dtype=object)) * dtype.itemsize > member.file_size:
            raise ModelFileError(
                f"{name}: the array {member.filename!r} declares shape {shape} of {dtype}, "
                f"more than its {member.file_size} bytes (or objects)."
            )


def _inside(root: Path, name: str) -> Path:
    """``root / name``, refusing names that lead outside ``root`` (also via links)."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ModelFileError(f"The model header names a file outside the model folder: {name!r}.")
    file = (root / relative).resolve()
    if not file.is_relative_to(root.resolve()):
        raise ModelFileError(f"The model header names a file outside the model folder: {name!r}.")
    if not file.is_file():
        raise ModelFileError(f"The model file {name} is missing.")
    return file
