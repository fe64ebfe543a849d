"""Dataset scripts: ``gsbnp data prepare NAME [flags]`` -> one gsbnp ``.npz`` per dataset and size.

NAME is ``cifar100``, ``flowers102`` (downloaded from their official sites, MD5-verified before use) or
``chaoyang`` (converted from a local copy: its licence forbids redistribution). The download, verify,
extract and unpickle guards they share are in ``gsbnp.data.prepare.fetch``. Common flags:
``--out FILE.npz``, ``--size N``; the downloaders add ``--cache DIR``, ``--source URL_OR_PATH`` and
``--md5 HEX`` (the checksum to expect from that source; there is no way to skip the check).

Errors print one line ``gsbnp: error: ...`` on stderr and exit with code 2; no output file is left.
"""

from __future__ import annotations

import importlib
import sys

DATASETS = {
    "cifar100": "CIFAR-100, python version (50,000 / 10,000 images, 32x32, 100 classes)",
    "flowers102": "Oxford-Flowers102 (2,040 / 6,149 images, 102 classes; default --size 64)",
    "chaoyang": "Chaoyang histopathology from a local copy (4,021 / 2,139 images, 4 classes)",
}

USAGE = ("usage: gsbnp data prepare {" + ",".join(DATASETS) + "} [flags]\n\n"
         + "\n".join(f"  {name:<11} {text}" for name, text in DATASETS.items())
         + "\n\n'gsbnp data prepare NAME --help' lists the flags of one dataset.")


def main(argv=None) -> int:
    """Dispatch ``[NAME, *flags]`` to ``gsbnp.data.prepare.NAME.main(flags)``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name = argv[0]
    if name not in DATASETS:
        print(f"gsbnp: error: unknown dataset {name!r} (choose from {', '.join(DATASETS)})",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"gsbnp.data.prepare.{name}")
    return module.main(argv[1:])


__all__ = ["DATASETS", "main"]
