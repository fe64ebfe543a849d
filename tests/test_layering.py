"""The house of gsbnp as code: every import in the package points down (or sideways within a floor).

The floors, bottom first (docs/conventions.md#layers):

    0 ground      _io, _validate, _threads, errors, _ste (the STE hooks), the package root
    1 functional  the float forward/backward pairs; gradcheck (numerical checks, uses only _ste)
    2 quant       the paper's binarizers and quantizer objects
    3 bitops      kernels only: packing, popcount products, op counts
    4 nn          Module and the layers that are given their quantizers
    5 models      DeiT, config, checkpoints, packed export and packed inference
    6 data        datasets (and pretrained models, when bundled)
    7 train       optimizers, schedules, augmentation, losses, trainer, pipeline
    8 top         cli, assignments

A module may import from its own floor and any floor below. The checker parses every ``.py`` file with
``ast`` (imports inside functions count: a lazy import is still a dependency) and resolves relative
imports, so ``from .. import bitops`` in ``gsbnp/nn/layers.py`` is an import of ``gsbnp.bitops``.
"""

import ast
import os
import shutil
from pathlib import Path

import pytest

import gsbnp

FLOORS = [
    ("ground", ("gsbnp", "gsbnp._io", "gsbnp._validate", "gsbnp._threads", "gsbnp.errors", "gsbnp._ste")),
    ("functional", ("gsbnp.functional", "gsbnp.gradcheck")),
    ("quant", ("gsbnp.quant",)),
    ("bitops", ("gsbnp.bitops",)),
    ("nn", ("gsbnp.nn",)),
    ("models", ("gsbnp.models",)),
    ("data", ("gsbnp.data", "gsbnp.pretrained")),
    ("train", ("gsbnp.train",)),
    ("top", ("gsbnp.cli", "gsbnp.assignments", "gsbnp.__main__")),
]

PACKAGE_DIR = Path(gsbnp.__file__).resolve().parent


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file for every ``.py`` below ``root`` (the package directory)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def floor_of(name: str, floors, package: str) -> int | None:
    """Index of the floor holding module ``name`` (longest matching prefix; the package root itself
    matches only exactly, so a new top-level module must be given a floor); None if on none."""
    best, best_len = None, -1
    for i, (_, members) in enumerate(floors):
        for m in members:
            m = package + m[len("gsbnp"):] if m.startswith("gsbnp") else m
            if (name == m or (m != package and name.startswith(m + "."))) and len(m) > best_len:
                best, best_len = i, len(m)
    return best


def imported_modules(path: Path, name: str, known: set[str], package: str):
    """``(line, target)`` for every import of a module of ``package`` in the file ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]  # the package the file lives in
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if not (base == package or base.startswith(package + ".")):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if sub in known else base


def upward_imports(root: Path, package: str = "gsbnp", floors=FLOORS) -> list[str]:
    """Every import that points up a floor, and every module that is on no floor, as messages."""
    mods = module_names(root, package)
    problems = []
    for name, path in mods.items():
        mine = floor_of(name, floors, package)
        if mine is None:
            problems.append(f"{name} is on no floor: add it to FLOORS (tests/test_layering.py)")
            continue
        for line, target in imported_modules(path, name, set(mods), package):
            theirs = floor_of(target, floors, package)
            if theirs is None or theirs > mine:
                where = "no floor" if theirs is None else f"floor {floors[theirs][0]}"
                problems.append(f"{path.relative_to(root.parent)}:{line}: {name} (floor {floors[mine][0]}) "
                                f"imports {target} ({where})")
    return problems


def test_every_import_points_down():
    assert upward_imports(PACKAGE_DIR) == []


def test_nn_does_not_need_bitops_and_bitops_has_no_lazy_attributes():
    assert not hasattr(__import__("gsbnp.bitops", fromlist=["x"]), "__getattr__")
    for path in (PACKAGE_DIR / "nn").glob("*.py"):
        assert "bitops" not in {t.split(".")[1] for _, t in imported_modules(
            path, "gsbnp.nn." + path.stem, set(module_names(PACKAGE_DIR, "gsbnp")), "gsbnp") if "." in t}


def _write(root: Path, rel: str, text: str = "") -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_the_checker_catches_an_upward_import_in_a_synthetic_tree(tmp_path):
    root = tmp_path / "gsbnp"
    _write(root, "__init__.py")
    _write(root, "_validate.py")
    _write(root, "functional/__init__.py", "from .linear import f\n")
    _write(root, "functional/linear.py", "from .._validate import *\n\ndef f():\n    return 1\n")
    _write(root, "nn/__init__.py", "from .. import functional as F\nfrom ..functional.linear import f\n")
    assert upward_imports(root) == []
    # a lazy import inside a function of the float core, pointing at the layers above it
    _write(root, "functional/linear.py", "def f():\n    from ..nn import layer\n    return layer\n")
    problems = upward_imports(root)
    assert len(problems) == 1 and "gsbnp.functional.linear (floor functional) imports gsbnp.nn" in problems[0]
    # `from .. import nn` names a sub-package, which is what it imports
    _write(root, "functional/linear.py", "from .. import nn\n")
    assert "imports gsbnp.nn (floor nn)" in upward_imports(root)[0]
    # a module on no floor is reported too
    _write(root, "helpers.py")
    assert any("gsbnp.helpers is on no floor" in p for p in upward_imports(root))


def test_the_checker_catches_an_upward_import_planted_in_a_copy_of_the_package(tmp_path):
    root = tmp_path / "gsbnp"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    assert upward_imports(root) == []
    target = root / "quant" / "weights.py"
    target.write_text(target.read_text() + "\n\ndef _planted():\n    from ..models import DeiT\n    return DeiT\n")
    problems = upward_imports(root)
    assert len(problems) == 1
    assert f"gsbnp{os.sep}quant{os.sep}weights.py" in problems[0] and "imports gsbnp.models" in problems[0]


@pytest.mark.parametrize("name, floor", [("gsbnp._ste", "ground"), ("gsbnp.functional.dropout", "functional"),
                                         ("gsbnp.bitops.popcount", "bitops"), ("gsbnp.models.packed", "models")])
def test_floors_of_modules_named_in_the_docs(name, floor):
    assert FLOORS[floor_of(name, FLOORS, "gsbnp")][0] == floor
