"""Chaoyang (colon histopathology, 4 classes) -> gsbnp ``.npz`` from a copy you obtained yourself.

The Chaoyang licence forbids redistribution, so nothing is downloaded and nothing of it is committed:
``--source DIR`` names the directory you received from the authors, laid out as

    DIR/train.json   [{"name": "train/xxx.jpg", "label": 0}, ...]   4,021 entries
    DIR/test.json    [{"name": "test/yyy.jpg", "label": 3}, ...]    2,139 entries
    DIR/train/...    512x512 JPEGs
    DIR/test/...

Labels (as in the dataset's files): 0 normal, 1 serrated, 2 adenocarcinoma, 3 adenoma. Each image is
resampled to ``--size`` (default 64) with Pillow's BICUBIC filter, antialiased (central square crop
first, a no-op for the square originals). Malformed JSON, a missing image or an unreadable JPEG stops
the script with an error naming the file; no output is written then. About 40% of the training labels
are noisy by design (the test labels are clean), as the paper notes.

Legend: N images, S output side, K = 4 classes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

import numpy as np

from gsbnp.data.dataset import save_dataset
from gsbnp.data.prepare.fetch import (
    RESAMPLE,
    PrepareError,
    check_size,
    default_out,
    describe,
    load_image_rgb,
    make_parser,
    run_main,
    sha256_arrays,
    sha256_file,
)

NAME = "chaoyang"
CLASS_NAMES = ("normal", "serrated", "adenocarcinoma", "adenoma")
DEFAULT_SIZE = 64
CREDIT = ("C. Zhu, W. Chen, T. Peng, Y. Wang, M. Jin, Hard Sample Aware Noise Robust Learning for "
          "Histopathology Image Classification, IEEE TMI 2021")


def read_index(json_path: Path, root: Path) -> tuple[list[Path], np.ndarray]:
    """Parse ``train.json`` / ``test.json``: (image paths under ``root``, int64 labels (N,))."""
    if not json_path.is_file():
        raise PrepareError(f"index file not found: {json_path}")
    try:
        entries = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PrepareError(f"{json_path}: malformed JSON ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise PrepareError(f"{json_path}: expected a non-empty JSON list of "
                           '{"name": ..., "label": ...} objects')
    paths, labels = [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or isinstance(entry.get("label"), bool) or not isinstance(entry.get("label"), int):
            raise PrepareError(f"{json_path}: entry {i} must be an object with a string 'name' and "
                               f"an integer 'label', got {json.dumps(entry)[:80]}")
        name, label = entry["name"], entry["label"]
        if not 0 <= label < len(CLASS_NAMES):
            raise PrepareError(f"{json_path}: entry {i} ({name}) has label {label}, "
                               f"outside [0, {len(CLASS_NAMES)})")
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise PrepareError(f"{json_path}: entry {i} has a path outside the dataset: {name!r}")
        path = root.joinpath(*rel.parts)
        if not path.is_file():
            raise PrepareError(f"{json_path}: entry {i}: image not found: {path}")
        paths.append(path)
        labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64)


def load_images(paths: list[Path], size: int, desc: str, progress: bool = True) -> np.ndarray:
    """Decode and resample every image: uint8 (N, size, size, 3)."""
    from tqdm import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)  # (N, S, S, 3)
    # Pillow decodes one file at a time; this runs once per dataset, not in training
    for i, path in enumerate(tqdm(paths, desc=desc, unit="img", disable=None if progress else True,
                                  leave=False)):
        out[i] = load_image_rgb(path, size)
    return out


def prepare_chaoyang(source, out=None, *, size: int = DEFAULT_SIZE, progress: bool = True) -> Path:
    """Convert a local copy of Chaoyang; return the written ``.npz`` path.

    Args:
        source: directory with ``train.json``, ``test.json``, ``train/``, ``test/``.
        out: output file (default ``data_cache/chaoyang_{size}.npz``).
        size: output side S (default 64).
    """
    return _prepare(source, out, size=size, progress=progress)[0]


def _prepare(source, out, *, size, progress) -> tuple[Path, str]:
    size = check_size(size)
    root = Path(source)
    if not root.is_dir():
        raise PrepareError(f"--source must be the Chaoyang directory (with train.json, test.json), "
                           f"got {root}")
    out = default_out(NAME, size) if out is None else Path(out)
    train_paths, y_train = read_index(root / "train.json", root)
    test_paths, y_test = read_index(root / "test.json", root)
    x_train = load_images(train_paths, size, "train", progress)
    x_test = load_images(test_paths, size, "test", progress)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    meta = {
        "name": NAME,
        "source": "local copy (Chaoyang may not be redistributed)",
        "official_url": "https://bupt-ai-cz.github.io/HSA-NRL/",
        "size": size,
        "resample": RESAMPLE,
        "labels": "as in train.json / test.json: 0 normal, 1 serrated, 2 adenocarcinoma, 3 adenoma",
        "split": f"official train ({y_train.shape[0]}; 4,021 expected) / test "
                 f"({y_test.shape[0]}; 2,139 expected)",
        "checksums": {"sha256_index": {name: sha256_file(root / name)
                                       for name in ("train.json", "test.json")},
                      "sha256": sha256_arrays(arrays)},
        "licence": "non-commercial use; redistribution of the data or modified versions is not "
                   "permitted (see the dataset's terms) - do not share this file",
        "credit": CREDIT,
        "built_by": "gsbnp.data.prepare.chaoyang",
    }
    path = save_dataset(out, x_train, y_train, x_test, y_test, CLASS_NAMES, meta)
    return path, describe(path, x_train, x_test, len(CLASS_NAMES))


def _parse_and_run(argv) -> str:
    parser = make_parser(NAME, __doc__, default_size=DEFAULT_SIZE)
    parser.add_argument("--source", type=Path, required=True,
                        help="the Chaoyang directory you obtained (train.json, test.json, train/, "
                        "test/)")
    args = parser.parse_args(argv)
    return _prepare(args.source, args.out, size=args.size, progress=True)[1]


def main(argv=None) -> int:
    """``gsbnp data prepare chaoyang --source DIR [--out F] [--size S]``."""
    return run_main(_parse_and_run, sys.argv[1:] if argv is None else list(argv))
