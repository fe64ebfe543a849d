"""The one atomic writer of gsbnp, and the ``.npz`` reader and writer built on it.

Every file gsbnp writes - checkpoints, metrics, results, packed exports, prepared data sets - goes
through :func:`atomic_writer`:

    1. open   a temp file ``.gsbnp-tmp-<pid>-<random>.part`` in the destination's own folder
              (same file system, so the rename below is atomic)
    2. write  the payload into it
    3. fsync  flush Python's buffer and the kernel's, so the bytes are on disk before the rename
    4. chmod  give it the mode a new file gets under the user's umask (0666 & ~umask), not 0600
    5. rename ``os.replace`` over the destination: readers see the old file or the new, never a part
    6. fsync of the folder, so the rename itself survives a power cut (best effort)

A failure at any step removes the temp file and raises :class:`gsbnp.errors.WriteError` (an
``OSError``) naming the file; the previous file, if any, is untouched. A process killed between
steps 1 and 5 leaves only its temp file behind; :func:`remove_orphans` deletes such leftovers (gsbnp
calls it when a run starts or resumes) and spares the temp files of gsbnp processes still running.

This module is the ground floor: it imports nothing from gsbnp but ``gsbnp.errors``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from collections.abc import Iterator

import numpy as np

from .errors import DataError, UsageTypeError, WriteError

__all__ = [
    "TEMP_PREFIX",
    "atomic_write_bytes",
    "atomic_writer",
    "check_npz_magic",
    "current_umask",
    "load_npz",
    "npz_magic_problem",
    "remove_orphans",
    "save_npz",
]

TEMP_PREFIX = ".gsbnp-tmp-"
_TEMP_SUFFIX = ".part"
_LEGACY_PREFIX = ".tmp-"  # the writer of gsbnp <= 0.1 (mkstemp names, no pid)


def current_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``; else set and restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_temp(folder: str) -> tuple[int, str]:
    """Step 1: create a new, empty temp file in ``folder`` (never an existing one)."""
    while True:
        tmp = os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def _fsync_folder(folder: str) -> None:
    """Step 6, best effort: some file systems refuse fsync on a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator:
    """``with atomic_writer(path) as f: f.write(...)``: ``path`` appears complete or not at all.

    ``f`` is a binary, seekable file (``np.savez(f, ...)`` works). The parent folder is created if
    missing. Raises ``WriteError`` (naming ``path``) for any ``OSError`` on the way; an exception in
    the ``with`` body removes the temp file and propagates unchanged.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "it is a folder, expected a file name")
        os.makedirs(folder, exist_ok=True)
        fd, tmp = _open_temp(folder)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
        os.replace(tmp, path)
        tmp = None
        _fsync_folder(folder)
    except OSError as err:
        if isinstance(err, WriteError):
            raise
        raise WriteError(path, err) from err
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring for the steps)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageTypeError(f"data must be bytes, got {type(data).__name__}")
    with atomic_writer(path) as f:
        f.write(data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _is_orphan(name: str) -> bool:
    if name.startswith(_LEGACY_PREFIX) and name.endswith(_TEMP_SUFFIX):
        return True
    if not (name.startswith(TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)):
        return False
    pid_s = name[len(TEMP_PREFIX):].split("-", 1)[0]
    if not pid_s.isdigit():
        return True
    pid = int(pid_s)
    return pid == os.getpid() or not _pid_alive(pid)


def remove_orphans(folder: str | os.PathLike, *, depth: int = 1) -> list[str]:
    """Delete the temp files that gsbnp's writer left in ``folder`` (and subfolders to ``depth``).

    Only names of gsbnp's own writer are touched, and a temp file whose process is still alive is
    kept (it may be mid-write). Returns the removed paths. A missing folder is not an error.
    """
    folder = os.fspath(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for e in entries:
        if e.is_file(follow_symlinks=False) and _is_orphan(e.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
                removed.append(e.path)
        elif depth > 0 and e.is_dir(follow_symlinks=False):
            removed += remove_orphans(e.path, depth=depth - 1)
    return removed


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


def npz_magic_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be an ``.npz`` judging by its first bytes, or None when it starts like a zip.

    Checked before ``np.load``, which would otherwise try to read any other file as a pickle and
    answer with advice about ``allow_pickle``.
    """
    with open(os.fspath(path), "rb") as f:
        head = f.read(8)
    if head[:4] in _ZIP_MAGIC:
        return None
    if not head:
        return "the file is empty"
    if head.startswith(_NPY_MAGIC):
        return "it holds a single .npy array"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "it is a text file"
    return "it does not start like a zip archive"


def check_npz_magic(path: str | os.PathLike, what: str = "a NumPy .npz archive") -> None:
    """Raise ``DataError`` naming the file unless it starts like a zip archive (every ``.npz`` does)."""
    reason = npz_magic_problem(path)
    if reason is not None:
        raise DataError(f"{os.fspath(path)}: not a valid .npz file ({reason}; expected {what})")


def save_npz(path, arrays: dict[str, np.ndarray], meta: dict | None = None) -> None:
    """Save arrays (and an optional JSON ``meta`` as ``__meta__``) to ``.npz`` atomically; no pickles."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    if meta is not None:
        payload["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    for k, v in payload.items():
        if v.dtype == object:
            raise UsageTypeError(f"cannot save {k!r}: object arrays are not allowed")
    with atomic_writer(path) as f:
        np.savez(f, **payload)


def load_npz(path) -> tuple[dict[str, np.ndarray], dict | None]:
    """Load a file written by :func:`save_npz`; returns ``(arrays, meta)``. Never unpickles.

    Raises ``FileNotFoundError`` for a missing file and ``DataError`` (one line naming the file) for
    anything that is not a readable ``.npz``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "no such file", path)
    reason = npz_magic_problem(path)
    if reason is not None:
        raise DataError(f"{path} is not a readable .npz file ({reason})")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{path}: holds pickled Python objects; refusing to load it") from None
        raise DataError(f"{path} is not a readable .npz file ({_one_line(e)})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path} is not a readable .npz file ({type(e).__name__}: {_one_line(e)})") from None
    meta = None
    if "__meta__" in arrays:
        try:
            meta = json.loads(str(arrays.pop("__meta__")))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: corrupt metadata ({e})") from None
    return arrays, meta


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
