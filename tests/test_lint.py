"""The tree is lint-clean: ``ruff check`` with the configuration of pyproject.toml ([tool.ruff]) on the
package, the tests, the benchmarks, the data scripts and the tutorial sources."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["gsbnp", "tests", "bench", "data_scripts", "tutorials"]


def _ruff() -> str:
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")
    return str(find_ruff_bin())


def test_ruff_is_configured_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "[tool.ruff]" in text and "line-length = 120" in text and "[tool.ruff.lint]" in text


def test_ruff_check_is_clean():
    res = subprocess.run([_ruff(), "check", "--no-cache", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_check_catches_a_planted_problem(tmp_path):
    bad = tmp_path / "planted.py"
    bad.write_text("import os\n\n\ndef f(x=[]):\n    return undefined_name\n")
    res = subprocess.run([_ruff(), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad)],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 1
    for code in ("F401", "F821", "B006"):  # unused import, undefined name, mutable default
        assert code in res.stdout, res.stdout
