"""Virtual environments for the install tests, independent of the base interpreter.

A test that installs something into a new venv must not depend on what the machine's base Python
happens to hold (a fresh machine has only pip and setuptools there, and no ``wheel``). The venv made
here has no system site-packages; a ``.pth`` file shows it the site-packages of the environment that
runs the tests, so numpy, pytest and every build requirement come from what the project's own test
extra installed - and nothing is downloaded.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement


def this_environment_paths() -> list[str]:
    """The site-packages folders of the running environment (its purelib and platlib, deduplicated)."""
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    return list(dict.fromkeys(p for p in paths if os.path.isdir(p)))


def venv_seeing_this_environment(where: Path) -> tuple[Path, dict]:
    """A new venv at ``where`` (no pip of its own, no system site-packages) whose interpreter also sees
    this environment's packages; returns its python and an environment for subprocesses."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    py = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    Path(purelib, "_test_environment.pth").write_text("\n".join(this_environment_paths()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", COLUMNS="400")  # COLUMNS: untruncated summary lines
    return py, env


def build_requires(pyproject: Path) -> list[str]:
    """The ``[build-system] requires`` of a pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the only TOML reader is the one pip vendors
        from pip._vendor import tomli as tomllib
    return list(tomllib.loads(pyproject.read_text())["build-system"]["requires"])


def missing_requirements(reqs: list[str]) -> list[str]:
    """The requirements that the running environment does not satisfy."""
    missing = []
    for text in reqs:
        r = Requirement(text)
        try:
            have = metadata.version(r.name)
        except metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if r.specifier and not r.specifier.contains(have, prereleases=True):
            missing.append(f"{text} (installed: {have})")
    return missing
