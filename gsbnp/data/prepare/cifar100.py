"""CIFAR-100 (python version) -> gsbnp ``.npz``: download, verify, extract, unpickle safely, resize.

Source: https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (MD5 eb9058c3a382ffc7106e4002c42a8d85),
a tar.gz of ``cifar-100-python/{train,test,meta}``: Python 2 pickles (protocol 2) of dicts whose
``data`` is a uint8 (N, 3072) array - each row the 32x32 red plane, then green, then blue - with
``fine_labels`` (100 classes) and ``coarse_labels`` (20 superclasses); ``meta`` holds
``fine_label_names`` and ``coarse_label_names``. They are read with ``restricted_pickle_load``
(only the NumPy array globals are allowed) after the MD5 check.

Output: 50,000 train / 10,000 test images (N, S, S, 3), fine labels as ``y_train`` / ``y_test``, the
superclasses as the extra arrays ``y_train_coarse`` / ``y_test_coarse`` with ``coarse_class_names``.
S = 32 keeps the images as they are; any other ``--size`` resamples the 32x32 images with Pillow's
BICUBIC filter (antialiased when downscaling).

Legend: N images, S output side, K = 100 fine classes, K_c = 20 coarse classes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from gsbnp.data.dataset import save_dataset
from gsbnp.data.prepare.fetch import (
    RESAMPLE,
    PrepareError,
    check_md5,
    check_size,
    default_out,
    describe,
    fetch,
    make_parser,
    resize_square,
    restricted_pickle_load,
    run_main,
    safe_extract_tar,
    sha256_arrays,
)

NAME = "cifar100"
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ARCHIVE = "cifar-100-python.tar.gz"
NATIVE_SIZE = 32
NUM_FINE, NUM_COARSE = 100, 20
CREDIT = "A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images, tech. report, 2009"


def _str_keys(obj, source: str) -> dict:
    if not isinstance(obj, dict):
        raise PrepareError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _names(value, count: int, key: str, source: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise PrepareError(f"{source}: '{key}' must be a list of {count} names")
    names = [v.decode("latin1") if isinstance(v, bytes) else v for v in value]
    if not all(isinstance(n, str) for n in names):
        raise PrepareError(f"{source}: '{key}' must hold strings")
    return names


def _labels(value, n: int, count: int, key: str, source: str) -> np.ndarray:
    try:
        y = np.asarray(value)
    except (TypeError, ValueError):
        y = np.asarray([], dtype=object)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise PrepareError(f"{source}: '{key}' must be {n} integer labels")
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= count):
        raise PrepareError(f"{source}: '{key}' has labels outside [0, {count})")
    return y


def read_split(path: Path):
    """Read ``train`` or ``test``: x uint8 (N, 32, 32, 3), fine (N,), coarse (N,) int64."""
    source = str(path)
    if not path.is_file():
        raise PrepareError(f"archive member missing: {path}")
    batch = _str_keys(restricted_pickle_load(path.read_bytes(), source=source), source)
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * NATIVE_SIZE * NATIVE_SIZE:
        raise PrepareError(f"{source}: 'data' must be a uint8 (N, 3072) array")
    n = data.shape[0]
    fine = _labels(batch.get("fine_labels"), n, NUM_FINE, "fine_labels", source)
    coarse = _labels(batch.get("coarse_labels"), n, NUM_COARSE, "coarse_labels", source)
    # rows are planar R, G, B of 32x32 in row-major order -> channels last
    x = data.reshape(n, 3, NATIVE_SIZE, NATIVE_SIZE).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
    return np.ascontiguousarray(x), fine, coarse


def resize_images(x: np.ndarray, size: int, progress: bool = True) -> np.ndarray:
    """Resample uint8 (N, h, w, C) square images to (N, size, size, C) with ``resize_square``."""
    from PIL import Image
    from tqdm import tqdm

    out = np.empty((x.shape[0], size, size, x.shape[3]), dtype=np.uint8)  # (N, S, S, C)
    # Pillow works on one image at a time; this runs once per dataset, not in training
    for i in tqdm(range(x.shape[0]), desc=f"resize to {size}", unit="img",
                  disable=None if progress else True, leave=False):
        out[i] = resize_square(Image.fromarray(x[i]), size)
    return out


def prepare_cifar100(out=None, *, size: int = NATIVE_SIZE, cache="data_cache", source: str = URL,
                     md5: str = MD5, progress: bool = True) -> Path:
    """Download (or copy), verify, extract and convert CIFAR-100; return the written ``.npz`` path.

    Args:
        out: output file (default ``data_cache/cifar100_{size}.npz``).
        size: output side S (32 = unchanged).
        cache: directory for the archive and its extraction.
        source: URL or local path of ``cifar-100-python.tar.gz``.
        md5: the MD5 to expect from ``source`` (the official one by default).
    """
    return _prepare(out, size=size, cache=cache, source=source, md5=md5, progress=progress)[0]


def _prepare(out, *, size, cache, source, md5, progress) -> tuple[Path, str]:
    size = check_size(size)
    md5 = check_md5(md5)
    out = default_out(NAME, size) if out is None else Path(out)
    cache = Path(cache)
    archive = fetch(source, cache, ARCHIVE, md5=md5, progress=progress)
    root = safe_extract_tar(archive, cache / "cifar-100-python.extracted", marker=md5)
    base = root / "cifar-100-python"
    meta_path = base / "meta"
    if not meta_path.is_file():
        raise PrepareError(f"archive member missing: {meta_path}")
    names = _str_keys(restricted_pickle_load(meta_path.read_bytes(), source=str(meta_path)),
                      str(meta_path))
    fine_names = _names(names.get("fine_label_names"), NUM_FINE, "fine_label_names", str(meta_path))
    coarse_names = _names(names.get("coarse_label_names"), NUM_COARSE, "coarse_label_names",
                          str(meta_path))
    x_train, y_train, yc_train = read_split(base / "train")
    x_test, y_test, yc_test = read_split(base / "test")
    if size != NATIVE_SIZE:
        x_train = resize_images(x_train, size, progress)
        x_test = resize_images(x_test, size, progress)
    extras = {"y_train_coarse": yc_train, "y_test_coarse": yc_test,
              "coarse_class_names": np.asarray(coarse_names, dtype=str)}
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
              "y_train_coarse": yc_train, "y_test_coarse": yc_test}
    meta = {
        "name": NAME,
        "source": source,
        "official_url": URL,
        "size": size,
        "original_size": NATIVE_SIZE,
        "resample": "none" if size == NATIVE_SIZE else RESAMPLE,
        "labels": "y = fine labels (100); y_*_coarse = superclasses (20), names in coarse_class_names",
        "split": f"official train / test ({y_train.shape[0]} / {y_test.shape[0]})",
        "checksums": {"md5": {ARCHIVE: md5}, "md5_is_official": md5 == MD5,
                      "sha256": sha256_arrays(arrays)},
        "licence": "no licence stated by the source; cite the technical report",
        "credit": CREDIT,
        "built_by": "gsbnp.data.prepare.cifar100",
    }
    path = save_dataset(out, x_train, y_train, x_test, y_test, fine_names, meta, extras=extras)
    return path, describe(path, x_train, x_test, NUM_FINE)


def _parse_and_run(argv) -> str:
    parser = make_parser(NAME, __doc__, default_size=NATIVE_SIZE, download=True)
    parser.add_argument("--source", default=URL, help="URL or local path of the archive "
                        "(default: the official URL)")
    parser.add_argument("--md5", default=MD5, help="MD5 to expect from --source (default: the "
                        "official one); the download is always verified")
    args = parser.parse_args(argv)
    return _prepare(args.out, size=args.size, cache=args.cache, source=args.source, md5=args.md5,
                    progress=True)[1]


def main(argv=None) -> int:
    """``gsbnp data prepare cifar100 [--out F] [--size S] [--cache D] [--source U] [--md5 H]``."""
    return run_main(_parse_and_run, sys.argv[1:] if argv is None else list(argv))
