"""Build gsbnp/data/digits.npz, the bundled default dataset, from scikit-learn's copy of the digits.

The 1,797 8x8 handwritten digits that scikit-learn ships (the test part of the UCI "Optical
Recognition of Handwritten Digits" set, CC BY 4.0). scikit-learn is needed only here, to build; it is
not a dependency of gsbnp (``pip install scikit-learn`` first).

Recipe (deterministic: two runs give identical arrays):
- pixel values 0..16 -> uint8 ``rint(v * 255 / 16)`` (the only half-way value, v = 8 -> 127.5, rounds to
  128 either way), images (N, 8, 8, 1);
- a stratified split with 20% test: 360 test / 1437 train. Per class, the test count is
  ``floor(0.2 * n_c)``, and the images still missing to reach ``ceil(1797 / 5) = 360`` go one each to
  the classes with the largest fractional part (ties to the lower class); which images of a class go
  to test is ``numpy.random.default_rng(0)``'s permutation of that class's indices, classes in order;
  both splits keep the original sample order.

Usage: ``python data_scripts/build_digits.py [--out gsbnp/data/digits.npz]``
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gsbnp.data.dataset import bundled_digits_path, save_dataset  # noqa: E402

TEST_FRACTION = Fraction(1, 5)
SEED = 0
CREDIT = ("E. Alpaydin, C. Kaynak, UCI Optical Recognition of Handwritten Digits; via scikit-learn")


def stratified_split(y: np.ndarray, test_fraction: Fraction, rng: np.random.Generator):
    """Return sorted (train_idx, test_idx) with per-class test counts by largest remainder.

    Exact integer arithmetic (``test_fraction`` is a Fraction), so ties really go to the lower class.
    """
    classes, counts = np.unique(y, return_counts=True)
    num, den = test_fraction.numerator, test_fraction.denominator
    n_test = -(-y.shape[0] * num // den)  # ceil
    per_class = counts * num // den  # (K,) floor of the quota
    remainder = counts * num % den  # (K,) fractional part, in units of 1/den
    extra = n_test - int(per_class.sum())
    order = np.lexsort((classes, -remainder))  # largest fraction first, then lower class
    per_class[order[:extra]] += 1
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k]
                           for c, k in zip(classes, per_class)])
    is_test = np.zeros(y.shape[0], dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def build_arrays():
    """Load scikit-learn's digits and return (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    values = np.asarray(digits.data, dtype=np.float64)  # (1797, 64), integers 0..16
    if values.min() < 0 or values.max() > 16 or not np.array_equal(values, np.rint(values)):
        raise ValueError("scikit-learn digits are expected to hold integers 0..16")
    x = np.rint(values * 255.0 / 16.0).astype(np.uint8).reshape(-1, 8, 8, 1)  # (1797, 8, 8, 1)
    y = np.asarray(digits.target, dtype=np.int64)  # (1797,)
    train, test = stratified_split(y, TEST_FRACTION, np.random.default_rng(SEED))
    return x[train], y[train], x[test], y[test]


def build(out: Path) -> Path:
    x_train, y_train, x_test, y_test = build_arrays()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    meta = {
        "name": "digits",
        "source": "sklearn.datasets.load_digits (the UCI optdigits test set, 1,797 images)",
        "url": "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        "licence": "CC BY 4.0",
        "credit": CREDIT,
        "size": 8,
        "resample": "none (original 8x8 grid)",
        "scaling": "uint8 = rint(v * 255 / 16) of the original 0..16 counts",
        "split": {"test_fraction": float(TEST_FRACTION), "seed": SEED, "stratified": True,
                  "n_train": int(y_train.shape[0]), "n_test": int(y_test.shape[0])},
        "checksums": {"sha256": {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
                                 for k, v in arrays.items()}},
        "built_by": "data_scripts/build_digits.py",
        # a mirrored digit is another symbol or none: gsbnp's augmentation defaults read this
        "hflip": False,
    }
    return save_dataset(out, x_train, y_train, x_test, y_test, [str(d) for d in range(10)], meta,
                        compress=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=bundled_digits_path(),
                        help="output .npz (default: the bundled gsbnp/data/digits.npz)")
    args = parser.parse_args(argv)
    path = build(args.out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
