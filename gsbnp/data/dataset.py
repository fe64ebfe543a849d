"""The gsbnp dataset format: one ``.npz`` per dataset and image size, loaded without pickle.

Every dataset the trainer reads - the bundled digits and whatever ``data_scripts`` build from CIFAR-100,
Oxford-Flowers102 or Chaoyang - is one NumPy ``.npz`` archive holding

    x_train      uint8  (N, H, W, C)   images, channels last, values 0..255
    y_train      int64  (N,)           labels in [0, K)
    x_test       uint8  (M, H, W, C)
    y_test       int64  (M,)
    class_names  str    (K,)           unicode array; K = number of classes
    meta         str    ()             a JSON object: source, size, resampling filter, checksums, credit

plus optional extra arrays (e.g. CIFAR-100's ``y_train_coarse``), which the loader keeps in
``Dataset.extras``. Nothing is ever pickled: files are written from plain numeric / unicode arrays and
read with ``allow_pickle=False``, so opening a dataset cannot run code.

Legend: N train images, M test images, H x W image size, C colour channels, K classes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from .._io import atomic_writer, check_npz_magic
from .._validate import check_float, check_int
from ..errors import DataError, UsageError, UsageTypeError

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test", "class_names", "meta")


@dataclasses.dataclass(frozen=True, eq=False)  # arrays make field-wise == ambiguous
class Dataset:
    """A loaded dataset: the arrays of the ``.npz`` plus its decoded ``meta``.

    Attributes:
        x_train: uint8 (N, H, W, C).     y_train: int64 (N,).
        x_test:  uint8 (M, H, W, C).     y_test:  int64 (M,).
        class_names: unicode (K,).       meta: dict decoded from the JSON string.
        extras: any further arrays of the file, by key (e.g. ``y_train_coarse``).
        path: the file it came from (None when built in memory).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: np.ndarray
    meta: dict
    extras: dict = dataclasses.field(default_factory=dict)
    path: Path | None = None

    @property
    def image_size(self) -> int:
        """Side length H (= W; the format holds square images)."""
        return int(self.x_train.shape[1])

    @property
    def channels(self) -> int:
        """Number of colour channels C (1 for grey, 3 for RGB)."""
        return int(self.x_train.shape[3])

    @property
    def num_classes(self) -> int:
        """K = ``len(class_names)`` (some classes may have no samples in a split)."""
        return int(self.class_names.shape[0])


def _check_arrays(where: str, x_train, y_train, x_test, y_test, class_names) -> None:
    """Raise a one-line ``DataError`` prefixed by ``where`` when the arrays break the format."""
    for key, x in (("x_train", x_train), ("x_test", x_test)):
        if x.dtype != np.uint8:
            raise DataError(f"{where}: '{key}' must have dtype uint8, got {x.dtype}")
        if x.ndim != 4:
            raise DataError(f"{where}: '{key}' must have shape (N, H, W, C), got {x.shape}")
        if x.shape[0] == 0:
            raise DataError(f"{where}: '{key}' is empty (no images)")
        if x.shape[1] != x.shape[2]:
            raise DataError(f"{where}: '{key}' images must be square (H == W), got {x.shape}")
        if x.shape[1] == 0 or x.shape[3] == 0:
            raise DataError(f"{where}: '{key}' has an empty image axis, shape {x.shape}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{where}: 'x_train' images are {x_train.shape[1:]} but 'x_test' images are "
                         f"{x_test.shape[1:]} (H, W, C must match)")
    if class_names.dtype.kind != "U" or class_names.ndim != 1:
        raise DataError(f"{where}: 'class_names' must be a 1-D unicode string array, "
                         f"got dtype {class_names.dtype} shape {class_names.shape}")
    num_classes = class_names.shape[0]
    if num_classes == 0:
        raise DataError(f"{where}: 'class_names' is empty")
    if len(set(class_names.tolist())) != num_classes:
        raise DataError(f"{where}: 'class_names' has duplicate names")
    for key, y, x in (("y_train", y_train, x_train), ("y_test", y_test, x_test)):
        if y.dtype.kind not in "iu":
            raise DataError(f"{where}: '{key}' must have an integer dtype, got {y.dtype}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{where}: '{key}' must have shape ({x.shape[0]},) to match the images, "
                             f"got {y.shape}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise DataError(f"{where}: '{key}' has labels in [{lo}, {hi}], outside [0, {num_classes}) "
                             f"given {num_classes} class names")


def save_dataset(path, x_train, y_train, x_test, y_test, class_names, meta: dict, *,
                 extras: dict | None = None, compress: bool = False) -> Path:
    """Validate and write a dataset ``.npz`` atomically.

    Args:
        path: output file (its parent directory is created if missing).
        x_train: uint8 (N, H, W, C); y_train: integer (N,) labels in [0, K).
        x_test: uint8 (M, H, W, C); y_test: integer (M,).
        class_names: K distinct strings (a sequence of str or a unicode array).
        meta: JSON-serialisable dict (source, size, filter, checksums, credit), stored as a 0-d string.
        extras: further arrays to store under their own keys (numeric or unicode, never objects).
        compress: deflate the members (worth it for the small bundled digits only).
    Returns:
        The written path. The file appears complete or not at all (``gsbnp._io.atomic_writer``:
        temp file, fsync, the umask's mode, ``os.replace``); a failed write raises ``WriteError``.
    """
    path = Path(path)
    arrays = {}
    for key, value in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test),
                       ("y_test", y_test)):
        if not isinstance(value, np.ndarray):
            raise UsageTypeError(f"{key} must be a numpy.ndarray, got {type(value).__name__}")
        arrays[key] = value
    # strings only: a list of ints or a nested list fails the unicode 1-D check below
    names = class_names if isinstance(class_names, np.ndarray) else np.asarray(list(class_names))
    _check_arrays("save_dataset", x_train, y_train, x_test, y_test, names)
    if not isinstance(meta, dict):
        raise UsageTypeError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        meta_json = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise UsageError(f"meta must be JSON-serialisable: {err}") from None
    arrays["y_train"] = np.asarray(y_train, dtype=np.int64)
    arrays["y_test"] = np.asarray(y_test, dtype=np.int64)
    arrays["class_names"] = names
    arrays["meta"] = np.array(meta_json)
    for key, value in (extras or {}).items():
        if key in arrays:
            raise UsageError(f"extras key {key!r} clashes with a required key")
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biufU":
            raise UsageError(f"extras[{key!r}] must be a numeric or unicode numpy array")
        arrays[key] = value
    if path.is_dir():
        raise UsageError(f"output path {path} is a directory, expected a .npz file name")
    with atomic_writer(path) as f:  # a file object: np.savez would append ".npz" to a temp name
        (np.savez_compressed if compress else np.savez)(f, **arrays)
    return path


def load_dataset(path) -> Dataset:
    """Read and validate a dataset ``.npz`` (never unpickles anything).

    Args:
        path: the ``.npz`` file.
    Returns:
        ``Dataset`` with int64 labels and ``meta`` decoded to a dict.
    Raises:
        FileNotFoundError: no such file.
        DataError (a ValueError): one line naming the file and the problem - not an npz (a text
            file, random bytes, a single .npy), a missing key, a pickled object array, wrong dtype,
            inconsistent shapes, labels outside [0, K), empty splits.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "dataset file not found" if not path.exists() else "not a file", str(path))
    check_npz_magic(path, "a gsbnp dataset, a NumPy .npz archive")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a valid .npz file ({_one_line(err)})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not a valid .npz file (it holds a single .npy array)")
    with npz:
        for key in REQUIRED_KEYS:
            if key not in npz.files:
                raise DataError(f"{path}: missing required key '{key}'")
        arrays = {}
        for key in npz.files:
            try:
                arrays[key] = npz[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise DataError(f"{path}: array '{key}' holds pickled Python objects; refusing "
                                     "to load it (allow_pickle=False)") from None
                raise DataError(f"{path}: array '{key}' is unreadable ({_one_line(err)})") from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise DataError(f"{path}: array '{key}' is unreadable ({_one_line(err)})") from None
    _check_arrays(str(path), arrays["x_train"], arrays["y_train"], arrays["x_test"],
                  arrays["y_test"], arrays["class_names"])
    meta_arr = arrays["meta"]
    if meta_arr.ndim != 0 or meta_arr.dtype.kind != "U":
        raise DataError(f"{path}: 'meta' must be a 0-d string array holding JSON, "
                         f"got dtype {meta_arr.dtype} shape {meta_arr.shape}")
    try:
        meta = json.loads(str(meta_arr))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: 'meta' is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: 'meta' must be a JSON object, got {type(meta).__name__}")
    extras = {k: v for k, v in arrays.items() if k not in REQUIRED_KEYS}
    return Dataset(x_train=arrays["x_train"], y_train=arrays["y_train"].astype(np.int64, copy=False),
                   x_test=arrays["x_test"], y_test=arrays["y_test"].astype(np.int64, copy=False),
                   class_names=arrays["class_names"], meta=meta, extras=extras, path=path)


def subset_train(data: Dataset, *, per_class: int | None = None, fraction: float | None = None,
                 seed: int = 0) -> Dataset:
    """A seeded, stratified subset of the training split; the test split is untouched.

    Exactly one of ``per_class`` (N images of every class) or ``fraction`` (``round(F * n_c)``
    images of each class c with n_c images, at least one) is given. Within each class the images are
    drawn by ``np.random.default_rng(seed).permutation`` (classes in label order), and the subset
    keeps the file's order. Extras whose key contains ``train`` and that have one row per training
    image (e.g. ``y_train_coarse``) are subset alike.

    Returns:
        A ``Dataset`` whose ``meta["subset"]`` records the rule, the seed, the per-class counts and
        the chosen training indices' SHA-256.
    Raises:
        UsageError: both or neither rule, a value out of range, or a class with fewer than
            ``per_class`` training images.
    """
    if (per_class is None) == (fraction is None):
        raise UsageError("give exactly one of per_class or fraction")
    check_int(seed, "seed", lo=0)
    y = data.y_train
    counts = np.bincount(y, minlength=data.num_classes)  # (K,)
    if per_class is not None:
        check_int(per_class, "per_class", lo=1)
        short = [(str(data.class_names[c]), int(n)) for c, n in enumerate(counts) if n < per_class]
        if short:
            name, n = short[0]
            raise UsageError(f"cannot draw {per_class} training images per class: class {name!r} has only {n}"
                             f"{f' (and {len(short) - 1} more classes too few)' if len(short) > 1 else ''}")
        take = np.full(data.num_classes, per_class)
    else:
        fraction = check_float(fraction, "fraction", lo=0.0, hi=1.0, lo_open=True)
        take = np.where(counts > 0, np.maximum(1, np.rint(fraction * counts)), 0).astype(np.int64)
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(y == c))[:take[c]] for c in range(data.num_classes)]
    idx = np.sort(np.concatenate(chosen)).astype(np.int64)  # (N',)
    n = len(y)
    extras = {k: (v[idx] if "train" in k and v.ndim >= 1 and v.shape[0] == n else v)
              for k, v in data.extras.items()}
    record = {"per_class": per_class, "fraction": fraction, "seed": seed, "train_images": len(idx),
              "of": int(n), "per_class_counts": np.bincount(y[idx], minlength=data.num_classes).tolist(),
              "indices_sha256": hashlib.sha256(idx.tobytes()).hexdigest()}
    return dataclasses.replace(data, x_train=data.x_train[idx], y_train=y[idx], extras=extras,
                               meta={**data.meta, "subset": record})


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def bundled_digits_path() -> Path:
    """Path of the bundled ``digits.npz`` (1,797 8x8 grey digits, from data_scripts/build_digits.py)."""
    return Path(__file__).resolve().with_name("digits.npz")


def load_digits() -> Dataset:
    """Load the bundled digits: x_train (1437, 8, 8, 1), x_test (360, 8, 8, 1), 10 classes "0".."9"."""
    return load_dataset(bundled_digits_path())


def channel_stats(x_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units (for normalisation).

    Exact and memory-light: each channel is reduced to its 256-bin histogram (in chunks of pixels), so
    a CIFAR-sized array never gets a float copy.

    Args:
        x_uint8: uint8 (N, H, W, C).
    Returns:
        mean: float64 (C,), std: float64 (C,) (population std, ddof=0), both of ``x / 255``.
    """
    if not isinstance(x_uint8, np.ndarray):
        raise UsageTypeError(f"x_uint8 must be a numpy.ndarray, got {type(x_uint8).__name__}")
    if x_uint8.dtype != np.uint8:
        raise UsageTypeError(f"x_uint8 must have dtype uint8, got {x_uint8.dtype}")
    if x_uint8.ndim != 4 or x_uint8.size == 0:
        raise UsageError(f"x_uint8 must be a non-empty (N, H, W, C) array, got shape {x_uint8.shape}")
    channels = x_uint8.shape[3]
    flat = x_uint8.reshape(-1, channels)  # (P, C), P = N*H*W pixels
    # value v of channel c counts in bin c*256 + v: one bincount per chunk covers every channel, and
    # chunking bounds the int64 temporaries (a CIFAR-sized array would need 1.2 GB in one go)
    offsets = np.arange(channels, dtype=np.int64) * 256  # (C,)
    hist = np.zeros(256 * channels, dtype=np.int64)
    chunk = max(1, (1 << 22) // channels)
    for start in range(0, flat.shape[0], chunk):
        hist += np.bincount((flat[start:start + chunk] + offsets).ravel(), minlength=256 * channels)
    hist = hist.reshape(channels, 256).astype(np.float64)  # (C, 256)
    levels = np.arange(256, dtype=np.float64) / 255.0  # (256,)
    count = flat.shape[0]
    mean = hist @ levels / count  # (C,)
    var = (hist * (levels[None, :] - mean[:, None]) ** 2).sum(axis=1) / count  # (C,) two-pass form
    return mean, np.sqrt(var)
