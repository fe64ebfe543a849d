"""Shared plumbing of the dataset scripts: download, verify, extract, unpickle safely, resize, CLI.

Every step that touches a file from the internet is guarded, in this order:

1. ``fetch`` brings a URL (http/https, resumable with an HTTP ``Range`` request on a ``.part`` file,
   bounded retries with exponential backoff, a tqdm progress bar) or a local path / ``file://`` URL
   into the cache directory;
2. it checks the MD5 **before** anything is extracted or unpickled; a mismatch deletes the download
   and raises ``ChecksumError`` (``--md5`` only says which checksum to expect from a non-official
   source: there is no way to skip the check);
3. ``safe_extract_tar`` refuses, before writing anything, any member that is not a plain file or
   directory inside the target (``../x``, absolute paths, symlinks, hard links, devices, fifos), and
   extracts into a temporary sibling directory that is renamed into place only when complete;
4. ``restricted_pickle_load`` unpickles with a whitelist of the three globals a NumPy array needs
   (``_reconstruct``, ``ndarray``, ``dtype``); anything else (``os.system``, ...) is refused.

Images are brought to ``size x size`` by ``resize_square``: the central square crop of the image (the
whole image when already square) resampled with Pillow's BICUBIC filter, which Pillow antialiases when
downscaling (its kernel is widened by the scale factor). For a non-square image this is "resize the
shorter side to ``size``, then centre-crop", done in one resampling step.

Outputs are written by ``gsbnp.data.dataset.save_dataset`` (atomic; ``meta`` records source, size,
filter and checksums). Expected failures raise ``PrepareError`` with a one-line message; ``run_main``
turns any error into ``gsbnp: error: ...`` on stderr and exit code 2.

Legend: N images, H x W image size, C colour channels.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import os
import pickle
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

RETRIES = 4  # attempts after the first one
BACKOFF_S = 1.0  # sleep before retry i (0-based) is BACKOFF_S * 2**i
TIMEOUT_S = 60.0  # socket timeout of one HTTP request
CHUNK = 1 << 20  # bytes read per step
RESAMPLE = "PIL.Image.Resampling.BICUBIC (antialiased when downscaling), central square crop"
EXTRACT_MARKER = ".gsbnp-extracted"


class PrepareError(Exception):
    """An expected failure of a dataset script (bad download, archive, file or argument)."""


class ChecksumError(PrepareError):
    """The downloaded file does not have the expected MD5."""


class UnsafeArchiveError(PrepareError):
    """A tar member would be written outside the target directory, or is not a plain file/dir."""


class UnsafePickleError(PrepareError):
    """A pickle asked for a global that is not on the whitelist."""


# ------------------------------------------------------------------------------------------ checksums
def md5_file(path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_arrays(arrays: dict) -> dict:
    """``{key: sha256 of the C-order bytes}`` for the arrays written to a dataset."""
    return {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
            for k, v in sorted(arrays.items())}


def check_md5(value: str, name: str = "--md5") -> str:
    """Return ``value`` lower-cased if it is 32 hex digits, else raise ``PrepareError``."""
    text = str(value).strip().lower()
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise PrepareError(f"{name} must be 32 hexadecimal digits, got {value!r}")
    return text


# ------------------------------------------------------------------------------------------ download
def _local_source(source: str) -> Path | None:
    """The filesystem path named by ``source`` (plain path or file:// URL), or None for http(s)."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise PrepareError(f"unsupported source {source!r}: use an http(s):// or file:// URL or a path")
    return Path(source)


def join_source(base: str, name: str) -> str:
    """``base`` (a URL or directory, for several files) joined with a file name."""
    if _local_source(base) is None or base.startswith("file:"):
        return base.rstrip("/") + "/" + urllib.parse.quote(name)
    return str(Path(base) / name)


def _bar(total, initial, desc, progress):
    from tqdm import tqdm

    # disable=None: tqdm shows the bar only on a terminal, so logs and tests stay clean
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, disable=None if progress else True, leave=False)


def _copy_local(path: Path, part: Path, progress: bool) -> None:
    if not path.is_file():
        raise PrepareError(f"source file not found: {path}")
    with open(path, "rb") as src, open(part, "wb") as dst, \
            _bar(path.stat().st_size, 0, path.name, progress) as bar:
        for block in iter(lambda: src.read(CHUNK), b""):
            dst.write(block)
            bar.update(len(block))


def _http_once(url: str, part: Path, timeout: float, progress: bool) -> str | None:
    """One HTTP request that appends to ``part``; returns None when complete, else why it stopped."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "gsbnp-data-prepare"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        if offset and resp.status == 206:
            content_range = resp.headers.get("Content-Range", "")
            start = content_range.removeprefix("bytes ").split("-")[0]
            if not start.isdigit() or int(start) != offset:
                part.unlink()  # the server resumed somewhere else: start over on the next attempt
                return f"server answered Range {offset}- with Content-Range {content_range!r}"
            mode = "ab"
        else:
            offset, mode = 0, "wb"  # a 200 to a Range request sends the whole file again
        length = resp.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        received = 0
        total = None if length is None else offset + length
        with open(part, mode) as f, _bar(total, offset, part.name.removesuffix(".part"),
                                         progress) as bar:
            while block := resp.read(CHUNK):
                f.write(block)
                received += len(block)
                bar.update(len(block))
    if length is not None and received < length:
        return f"connection closed after {offset + received} of {offset + length} bytes"
    return None


def _download(url: str, part: Path, *, retries: int, backoff: float, timeout: float,
              progress: bool) -> None:
    """Bring ``url`` into ``part``, resuming on each retry; raise ``PrepareError`` when out of tries."""
    for attempt in range(retries + 1):
        try:
            reason = _http_once(url, part, timeout, progress)
            if reason is None:
                return
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.exists():
                return  # nothing left past our offset: the .part is complete (the MD5 decides)
            if 400 <= err.code < 500 and err.code not in (408, 429):
                raise PrepareError(f"download failed: {url}: HTTP {err.code} {err.reason}") from None
            reason = f"HTTP {err.code} {err.reason}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            reason = _one_line(getattr(err, "reason", None) or err)
        if attempt == retries:
            raise PrepareError(f"download failed after {retries + 1} attempts: {url}: {reason} "
                               f"(the partial file {part} is kept; run again to resume)")
        time.sleep(backoff * 2**attempt)


def fetch(source: str, cache_dir, filename: str, *, md5: str, retries: int | None = None,
          backoff: float | None = None, timeout: float | None = None, progress: bool = True) -> Path:
    """Bring ``source`` into ``cache_dir/filename`` and verify its MD5; return the verified path.

    Args:
        source: http(s) URL, file:// URL or local path.
        cache_dir: download directory (created). A cached file with the right MD5 is reused.
        filename: name of the file in the cache.
        md5: expected hex MD5 (official by default in the callers; always checked).
        retries / backoff / timeout: HTTP attempts after the first, base backoff in seconds, socket
            timeout (defaults: RETRIES, BACKOFF_S, TIMEOUT_S).
        progress: show a tqdm bar (on a terminal).
    Raises:
        ChecksumError: the MD5 differs; the downloaded file is deleted.
        PrepareError: the source cannot be read after the retries.
    """
    md5 = check_md5(md5)
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF_S if backoff is None else backoff
    timeout = TIMEOUT_S if timeout is None else timeout
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / filename
    if final.is_file() and md5_file(final) == md5:
        return final
    part = cache / (filename + ".part")
    local = _local_source(source)
    resumed = False
    if local is not None:
        _copy_local(local, part, progress)
    else:
        resumed = part.exists() and part.stat().st_size > 0
        _download(source, part, retries=retries, backoff=backoff, timeout=timeout, progress=progress)
    actual = md5_file(part)
    if actual != md5 and resumed:
        # the old .part may come from another file or a broken transfer: one clean download more
        part.unlink()
        _download(source, part, retries=retries, backoff=backoff, timeout=timeout, progress=progress)
        actual = md5_file(part)
    if actual != md5:
        part.unlink()
        raise ChecksumError(f"checksum mismatch for {filename} from {source}: expected MD5 {md5}, "
                            f"got {actual}; the file was deleted")
    os.replace(part, final)
    return final


# ------------------------------------------------------------------------------------------ tar
def _member_problem(member: tarfile.TarInfo, root: Path) -> str | None:
    """Why ``member`` may not be extracted under ``root`` (None when it is a safe file/dir)."""
    name = member.name
    if not name or "\x00" in name:
        return "empty or NUL in name"
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith("\\"):
        return "absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "path escapes the target directory ('..')"
    if member.issym() or member.islnk():
        return f"link to {member.linkname!r} (links are not extracted)"
    if member.ischr() or member.isblk() or member.isfifo():
        return "device or fifo"
    if not (member.isreg() or member.isdir()):
        return "not a regular file or directory"
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        return "path escapes the target directory"
    return None


def safe_extract_tar(archive, dest, *, marker: str | None = None) -> Path:
    """Extract a (compressed) tar archive into ``dest`` after checking every member.

    Args:
        archive: the tar / tar.gz file (already verified).
        dest: the directory to create; replaced as a whole when complete.
        marker: when given (e.g. the archive's MD5) and ``dest`` holds a marker file with the same
            text, the extraction is skipped (already done).
    Raises:
        UnsafeArchiveError: a member is absolute, contains '..', escapes ``dest``, is a symlink,
            hard link, device or fifo; nothing is written.
        PrepareError: the file is not a readable tar archive.
    """
    archive, dest = Path(archive), Path(dest)
    marker_file = dest / EXTRACT_MARKER
    if marker is not None and marker_file.is_file() and marker_file.read_text() == marker:
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    try:
        tar = tarfile.open(archive, "r:*")
        members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise PrepareError(f"{archive}: not a readable tar archive ({_one_line(err)})") from None
    with tar:
        root = tmp.resolve()
        for member in members:
            problem = _member_problem(member, root)
            if problem is not None:
                raise UnsafeArchiveError(f"{archive}: refusing tar member {member.name!r}: {problem}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        filter_error = getattr(tarfile, "FilterError", ())
        try:
            # the "data" filter (Python >= 3.11.4) is a second line of defence behind the checks above
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **kwargs)
        except filter_error as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UnsafeArchiveError(f"{archive}: refusing tar member: {_one_line(err)}") from None
        except (tarfile.TarError, EOFError, OSError) as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise PrepareError(f"{archive}: extraction into {tmp} failed ({_one_line(err)})") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if marker is not None:
        (tmp / EXTRACT_MARKER).write_text(marker)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


# ------------------------------------------------------------------------------------------ pickle
def _numpy_globals() -> dict:
    # what np.ndarray.__reduce__ names, wherever NumPy keeps it (numpy.core in 1.x, numpy._core in 2.x)
    reconstruct = np.empty(0).__reduce__()[0]
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, tuples, numbers, strings and NumPy arrays."""

    allowed = _numpy_globals()

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"global {module}.{name} is not allowed") from None


def restricted_pickle_load(data: bytes, *, source: str):
    """Unpickle ``data`` (Python 2 or 3 pickles; py2 ``str`` decoded as latin-1) with the whitelist.

    Only the globals a pickled NumPy array needs are resolved: ``numpy.core.multiarray._reconstruct``
    (also under ``numpy._core``), ``numpy.ndarray`` and ``numpy.dtype``. ``source`` names the file
    in error messages.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{source}: refusing to unpickle: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError) as err:
        raise PrepareError(f"{source}: not a valid pickle ({_one_line(err)})") from None


# ------------------------------------------------------------------------------------------ images
def resize_square(img, size: int) -> np.ndarray:
    """Central square crop of a PIL image resampled to ``size x size`` (BICUBIC, antialiased).

    Returns uint8 (size, size, C) with the image's channels (use ``img.convert`` first).
    """
    from PIL import Image

    width, height = img.size
    side = min(width, height)
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    out = img.resize((size, size), Image.Resampling.BICUBIC, box=box)
    arr = np.asarray(out, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def load_image_rgb(path, size: int) -> np.ndarray:
    """Decode an image file to RGB and ``resize_square`` it: uint8 (size, size, 3).

    Raises ``PrepareError`` naming the file when it cannot be decoded (corrupt, truncated, not an
    image).
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")  # forces the full decode: truncated files fail here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise PrepareError(f"{path}: unreadable image ({_one_line(err)})") from None
    return resize_square(rgb, size)


# ------------------------------------------------------------------------------------------ CLI
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2 through run_main, not argparse's usage dump
        raise PrepareError(message)


def make_parser(name: str, description: str, *, default_size: int,
                download: bool = False) -> argparse.ArgumentParser:
    """Parser with the flags every script has: ``--out``, ``--size`` (and ``--cache`` for downloads)."""
    parser = _Parser(prog=f"gsbnp data prepare {name}", description=description,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output .npz (default: data_cache/{name}_SIZE.npz)")
    parser.add_argument("--size", type=int, default=default_size,
                        help=f"output image side in pixels (default: {default_size})")
    if download:
        parser.add_argument("--cache", type=Path, default=Path("data_cache"),
                            help="download / extraction directory (default: data_cache)")
    return parser


def check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 4096:
        raise PrepareError(f"--size must be an integer in [1, 4096], got {size!r}")
    return size


def default_out(name: str, size: int) -> Path:
    return Path("data_cache") / f"{name}_{size}.npz"


def describe(path: Path, x_train: np.ndarray, x_test: np.ndarray, num_classes: int) -> str:
    _, height, width, channels = x_train.shape
    return (f"wrote {path}: {x_train.shape[0]} train / {x_test.shape[0]} test images of "
            f"{height}x{width}x{channels}, {num_classes} classes")


def run_main(parse_and_run, argv) -> int:
    """Run ``parse_and_run(argv)`` (returns the line to print); map every failure to exit code 2.

    Errors print one line ``gsbnp: error: ...`` on stderr and no traceback; ``--help`` exits 0.
    """
    try:
        print(parse_and_run(argv))
        return 0
    except SystemExit as done:  # argparse --help
        return done.code if isinstance(done.code, int) else 0
    except KeyboardInterrupt:
        print("gsbnp: error: interrupted (a partial download is kept and resumes next time)",
              file=sys.stderr)
        return 130
    except (PrepareError, ValueError, OSError) as err:
        print(f"gsbnp: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # an unexpected failure still gets one line, with its type
        print(f"gsbnp: error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err) -> str:
    return " ".join(str(err).split()) or type(err).__name__
