"""Oxford-Flowers102 -> gsbnp ``.npz``: download three files, verify, extract, split, downsample.

Source: https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ with

    102flowers.tgz   MD5 52808999861908f626f3c1f4e79d11fa   8,189 JPEGs jpg/image_00001.jpg ...
    imagelabels.mat  MD5 e0620be6f572b9609742df49c70aed4d   ``labels`` (1, 8189), classes 1..102
    setid.mat        MD5 a5357ecc9cb78c4bef273ce3793fc85c   ``trnid``, ``valid``, ``tstid``: image ids

Image ids and labels are 1-based in the files; gsbnp labels are ``label - 1`` in 0..101. The split is
the paper's (Section V-A): train = ``trnid`` + ``valid`` (1,020 + 1,020 = 2,040 images, in that order),
test = ``tstid`` (6,149). Each image is centre-cropped to its central square and resampled to
``--size`` (default 64) with Pillow's BICUBIC filter, antialiased - the same as resizing the shorter
side to ``--size`` and centre-cropping. The official files carry no class names, so ``class_names``
holds the official 1-based label numbers "1".."102" (class i of gsbnp is official label i + 1).

Legend: N images, S output side, K = 102 classes.
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
    join_source,
    load_image_rgb,
    make_parser,
    run_main,
    safe_extract_tar,
    sha256_arrays,
)

NAME = "flowers102"
BASE_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
FILES = {
    "102flowers.tgz": "52808999861908f626f3c1f4e79d11fa",
    "imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
    "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c",
}
NUM_CLASSES = 102
DEFAULT_SIZE = 64
CREDIT = ("M.-E. Nilsback and A. Zisserman, Automated flower classification over a large number of "
          "classes, ICVGIP 2008")


def _mat_ids(mat: dict, key: str, source: Path, hi: int) -> np.ndarray:
    """A 1-based integer vector of ``mat[key]`` checked to lie in [1, hi]."""
    if key not in mat:
        raise PrepareError(f"{source}: missing variable '{key}'")
    values = np.asarray(mat[key])
    if values.dtype.kind not in "iuf" or values.size == 0:
        raise PrepareError(f"{source}: '{key}' must be a non-empty numeric array")
    values = values.reshape(-1)
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise PrepareError(f"{source}: '{key}' must hold integers")
    ids = values.astype(np.int64)
    if ids.min() < 1 or ids.max() > hi:
        raise PrepareError(f"{source}: '{key}' has values in [{ids.min()}, {ids.max()}], "
                           f"outside [1, {hi}]")
    return ids


def _load_mat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except Exception as err:  # scipy raises several types for a broken .mat file
        raise PrepareError(f"{path}: not a readable .mat file ({' '.join(str(err).split())})") from None


def read_split(labels_mat: Path, setid_mat: Path):
    """Return (train_ids, y_train, test_ids, y_test): 1-based image ids and 0-based labels.

    Train ids are ``trnid`` followed by ``valid``; test ids are ``tstid``.
    """
    labels = _mat_ids(_load_mat(labels_mat), "labels", labels_mat, NUM_CLASSES)  # (I,) 1..102
    setid = _load_mat(setid_mat)
    n_images = labels.shape[0]
    trnid, valid, tstid = (_mat_ids(setid, key, setid_mat, n_images)
                           for key in ("trnid", "valid", "tstid"))
    train_ids = np.concatenate([trnid, valid])  # (2040,) for the official files
    all_ids = np.concatenate([train_ids, tstid])
    if np.unique(all_ids).shape[0] != all_ids.shape[0]:
        raise PrepareError(f"{setid_mat}: an image id appears twice in trnid/valid/tstid")
    return train_ids, labels[train_ids - 1] - 1, tstid, labels[tstid - 1] - 1


def load_images(jpg_dir: Path, ids: np.ndarray, size: int, progress: bool = True) -> np.ndarray:
    """Decode ``jpg_dir/image_%05d.jpg`` for each id and resample: uint8 (N, size, size, 3)."""
    from tqdm import tqdm

    out = np.empty((ids.shape[0], size, size, 3), dtype=np.uint8)  # (N, S, S, 3)
    # Pillow decodes one file at a time; this runs once per dataset, not in training
    for i, image_id in enumerate(tqdm(ids.tolist(), desc=f"images -> {size}x{size}", unit="img",
                                      disable=None if progress else True, leave=False)):
        path = jpg_dir / f"image_{image_id:05d}.jpg"
        if not path.is_file():
            raise PrepareError(f"image missing from the archive: {path}")
        out[i] = load_image_rgb(path, size)
    return out


def _parse_md5s(values) -> dict:
    """``NAME=HEX`` overrides for the three files; unknown names are an error."""
    md5s = dict(FILES)
    for item in values or ():
        name, sep, digest = item.partition("=")
        if not sep or name not in FILES:
            raise PrepareError(f"--md5 takes NAME=HEX with NAME one of {', '.join(FILES)}, "
                               f"got {item!r}")
        md5s[name] = check_md5(digest, f"--md5 {name}")
    return md5s


def prepare_flowers102(out=None, *, size: int = DEFAULT_SIZE, cache="data_cache",
                       source: str = BASE_URL, md5s: dict | None = None,
                       progress: bool = True) -> Path:
    """Download (or copy), verify and convert Oxford-Flowers102; return the written ``.npz`` path.

    Args:
        out: output file (default ``data_cache/flowers102_{size}.npz``).
        size: output side S (default 64).
        cache: directory for the downloads and the extracted JPEGs.
        source: base URL or local directory holding the three files.
        md5s: ``{file name: MD5}`` to expect from ``source`` (official ones for names not given).
    """
    return _prepare(out, size=size, cache=cache, source=source, md5s=md5s, progress=progress)[0]


def _prepare(out, *, size, cache, source, md5s, progress) -> tuple[Path, str]:
    size = check_size(size)
    expected = dict(FILES)
    for name, digest in (md5s or {}).items():
        if name not in FILES:
            raise PrepareError(f"unknown file {name!r} in md5s (expected one of {', '.join(FILES)})")
        expected[name] = check_md5(digest, f"md5 of {name}")
    out = default_out(NAME, size) if out is None else Path(out)
    cache = Path(cache)
    # the MD5 of every file is checked before the archive is opened or a .mat file is parsed
    paths = {name: fetch(join_source(str(source), name), cache, name, md5=digest, progress=progress)
             for name, digest in expected.items()}
    root = safe_extract_tar(paths["102flowers.tgz"], cache / "102flowers.extracted",
                            marker=expected["102flowers.tgz"])
    train_ids, y_train, test_ids, y_test = read_split(paths["imagelabels.mat"], paths["setid.mat"])
    x_train = load_images(root / "jpg", train_ids, size, progress)
    x_test = load_images(root / "jpg", test_ids, size, progress)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    meta = {
        "name": NAME,
        "source": str(source),
        "official_url": BASE_URL,
        "size": size,
        "resample": RESAMPLE,
        "labels": "y = official label - 1; class_names[i] is the official label number i + 1",
        "split": f"train = trnid + valid ({y_train.shape[0]}), test = tstid ({y_test.shape[0]})",
        "checksums": {"md5": expected, "md5_is_official": expected == FILES,
                      "sha256": sha256_arrays(arrays)},
        "licence": "no licence stated by the source; cite the paper",
        "credit": CREDIT,
        "built_by": "gsbnp.data.prepare.flowers102",
    }
    class_names = [str(i + 1) for i in range(NUM_CLASSES)]
    path = save_dataset(out, x_train, y_train, x_test, y_test, class_names, meta)
    return path, describe(path, x_train, x_test, NUM_CLASSES)


def _parse_and_run(argv) -> str:
    parser = make_parser(NAME, __doc__, default_size=DEFAULT_SIZE, download=True)
    parser.add_argument("--source", default=BASE_URL, help="base URL or local directory holding "
                        "102flowers.tgz, imagelabels.mat, setid.mat (default: the official URL)")
    parser.add_argument("--md5", action="append", metavar="NAME=HEX",
                        help="MD5 to expect for one file from --source (repeatable; default: the "
                        "official ones); every file is always verified")
    args = parser.parse_args(argv)
    return _prepare(args.out, size=args.size, cache=args.cache, source=args.source,
                    md5s=_parse_md5s(args.md5), progress=True)[1]


def main(argv=None) -> int:
    """``gsbnp data prepare flowers102 [--out F] [--size S] [--cache D] [--source U] [--md5 N=H]``."""
    return run_main(_parse_and_run, sys.argv[1:] if argv is None else list(argv))
