"""Prepare chaoyang as a gsbnp .npz: `python data_scripts/chaoyang.py --help`.

The same as `gsbnp data prepare chaoyang ...`.
A thin wrapper: the code lives in gsbnp/data/prepare/chaoyang.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # works from a checkout

from gsbnp.data.prepare.chaoyang import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
