"""The student distribution: ``gsbnp assignments build --out hw/``.

``hw/`` is a project of its own: ``pyproject.toml`` (``pip install -e hw/`` installs the student's gsbnp
and pytest), ``README.md`` (setup, task order, points, time), ``gsbnp/`` (the package with every task's
region stubbed and the docstrings that would state an answer replaced by ``student/docstrings.txt``;
without this ``assignments`` sub-package), ``tests/`` (the public tests, the check cases and the frozen
expected values of one public case per task), ``notebooks/`` (one per group of tasks, from
``student/notebooks/``) and ``tutorials/`` (those the tasks name, cells that would show a solution left
out). Nothing in it holds a solution; ``solution_fingerprints`` is what the build and the tests search
for.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import checks
from .regions import PACKAGE_DIR, Region, also_regions, find_regions, strip_regions, stub_also
from .tasks import GROUPS, TASKS, Task, select

__all__ = [
    "MANIFEST",
    "STUDENT_DIR",
    "build",
    "find_leaks",
    "notebook",
    "percent_cells",
    "read_docstrings",
    "solution_fingerprints",
]

MANIFEST = ".gsbnp-assignments.json"
STUDENT_DIR = Path(__file__).resolve().parent / "student"
SOURCE_ROOT = PACKAGE_DIR.parent
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


# ----------------------------------------------------------------------------------------------
# what a solution looks like (for the leak filter and the leak test)
# ----------------------------------------------------------------------------------------------

def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _code_part(line: str) -> str:
    """A line without its trailing comment (comments follow two spaces, as the style asks)."""
    return line.split("  #")[0] if not line.lstrip().startswith("#") else ""


MIN_FINGERPRINT = 10  # squashed characters: shorter lines ("else:", "n = k + 1") say nothing of a task


def _by_path(regions) -> dict[Path, list[Region]]:
    out: dict[Path, list[Region]] = {}
    for r in regions:
        out.setdefault(r.path, []).append(r)
    return out


def solution_fingerprints(regions: list[Region] | None = None, task_ids=None,
                          source_root: Path | None = None) -> dict[str, set[str]]:
    """``{task id: squashed fragments}``: every code line of the task's regions and ``also`` spans of at least
    ``MIN_FINGERPRINT`` characters (whitespace removed) but its ``given`` lines, plus its ``leaks``."""
    root = Path(source_root) if source_root is not None else SOURCE_ROOT
    regions = find_regions(root / "gsbnp") if regions is None else regions
    ids = {t.id for t in TASKS} if task_ids is None else set(task_ids)
    out: dict[str, set[str]] = {i: set() for i in ids}
    cache: dict[Path, list[str]] = {}
    given = {t.id: {_squash(g) for g in t.given} for t in TASKS}
    spans = [(r, r.begin + 1, r.end) for r in regions]
    spans += [(r, r.begin, r.end + 1) for t in TASKS if t.id in ids for r in also_regions(t, root)]
    for r, a, b in spans:
        if r.task_id not in ids:
            continue
        lines = cache.setdefault(r.path, (root / r.path).read_text(encoding="utf-8").split("\n"))
        for line in lines[a:b]:
            s = _squash(_code_part(line))
            if len(s) >= MIN_FINGERPRINT and s not in given[r.task_id]:
                out[r.task_id].add(s)
    for t in TASKS:
        if t.id in ids:
            out[t.id] |= {_squash(x) for x in t.leaks}
    return out


def find_leaks(text: str, fingerprints: dict[str, set[str]]) -> list[tuple[str, str]]:
    """``[(task id, fragment)]`` of every fingerprint found in ``text`` (whitespace ignored)."""
    s = _squash(text)
    return sorted((tid, f) for tid, fs in fingerprints.items() for f in fs if f in s)


def _drop_leaking_comments(path: Path, rel: Path, fingerprints) -> None:
    """Remove the comments that state a solution; ValueError for code or docstring lines that do (give
    the function a student docstring, stub the code, or list the line in the task's ``given``)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    changed = False
    for i, line in enumerate(lines):
        hits = find_leaks(line, fingerprints)
        if not hits:
            continue
        code, sep, _ = line.partition("  #") if not line.lstrip().startswith("#") else ("", "#", "")
        if sep and not find_leaks(code, fingerprints):
            lines[i] = code.rstrip() if code.strip() else ""
            changed = True
        else:
            raise ValueError(f"{rel}:{i + 1} shows the solution of Task {hits[0][0]} ({hits[0][1]!r}) outside "
                             "its region: stub it, give the function a student docstring, or list the line "
                             "in the task's given")
    if changed:
        path.write_text("\n".join(lines), encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# student docstrings
# ----------------------------------------------------------------------------------------------

def read_docstrings(path: Path | None = None) -> list[tuple[str, str, str, str]]:
    """Entries ``(task id, file, function or "module", text)`` of ``student/docstrings.txt``."""
    path = STUDENT_DIR / "docstrings.txt" if path is None else path
    entries, head, body = [], None, []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("=== "):
            if head:
                entries.append((*head, "\n".join(body).strip("\n")))
            parts = line[4:].split()
            if len(parts) != 3:
                raise ValueError(f"{path}: bad entry header {line!r} (expected '=== <task> <file> <name>')")
            head, body = tuple(parts), []
        elif head:
            body.append(line)
    if head:
        entries.append((*head, "\n".join(body).strip("\n")))
    return entries


def _docstring_node(tree: ast.Module, name: str):
    if name == "module":
        owner = tree
    else:
        hits = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name]
        if len(hits) != 1:
            raise ValueError(f"expected one function {name!r}, found {len(hits)}")
        owner = hits[0]
    first = owner.body[0] if owner.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        raise ValueError(f"{name!r} has no docstring to replace")  # noqa: TRY004 - a bad entry, not a bad type
    return first


def replace_docstring(source: str, name: str, text: str) -> str:
    """``source`` with the docstring of function ``name`` (or of the module) replaced by ``text``."""
    if "\\" in text or '"""' in text:
        raise ValueError(f"the student docstring of {name!r} may not contain backslashes or triple quotes")
    node = _docstring_node(ast.parse(source), name)
    lines = source.split("\n")
    ind = " " * node.col_offset
    body = text.split("\n")
    new = [f'{ind}"""{body[0]}'] + [f"{ind}{ln}" if ln.strip() else "" for ln in body[1:]]
    new = new + [f'{ind}"""'] if len(body) > 1 else [new[0] + '"""']
    lines[node.lineno - 1:node.end_lineno] = new
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# notebooks: percent-format files -> nbformat 4.5 JSON
# ----------------------------------------------------------------------------------------------

_CELL = re.compile(r"^# %%(?P<md> \[markdown\])?(?P<meta>.*)$")


def percent_cells(text: str) -> list[tuple[str, str, str]]:
    """``[(kind, source, header)]`` of a jupytext percent-format file (text before the first cell is
    dropped; markdown lines lose their leading ``# ``)."""
    cells, kind, header, buf = [], None, "", []

    def flush():
        if kind is not None:
            src = "\n".join(buf).strip("\n")
            cells.append((kind, src, header))

    for line in text.split("\n"):
        m = _CELL.match(line)
        if m:
            flush()
            kind, header, buf = ("markdown" if m.group("md") else "code"), line, []
        elif kind == "markdown":
            buf.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        elif kind is not None:
            buf.append(line)
    flush()
    return cells


def notebook(cells: list[tuple[str, str]]) -> dict:
    out = []
    for i, (kind, src) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"cell-{i}", "metadata": {}, "source": src.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    return {"cells": out,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _heading(t: Task, stubbed: bool) -> str:
    bonus = f" + {t.bonus} bonus" if t.bonus else ""
    state = "" if stubbed else " (already solved in this copy)"
    return (f"## {t.name}{state}\n\n**{t.points} points{bonus}, about {t.minutes} minutes.** "
            f"**Implement** `{t.where}`.")


def _assignment_notebook(group: str, stub_ids: set[str]) -> dict:
    title = GROUPS[group][1]
    tasks = [t for t in TASKS if t.group == group]
    tutorials = sorted({p for t in tasks for p in t.tutorials})
    intro = (f"# Assignment {group}: {title}\n\nTasks {', '.join(t.id for t in tasks)} "
             f"({sum(t.points for t in tasks)} points). Tutorials: "
             f"{', '.join(f'`tutorials/{p}_*`' for p in tutorials)}.")
    setup = [(k, s) for k, s, _ in percent_cells((STUDENT_DIR / "notebooks" / "_setup.py").read_text(encoding="utf-8"))]
    cells = [("markdown", intro)]
    source = (STUDENT_DIR / "notebooks" / f"assignment_{group}.py").read_text(encoding="utf-8")
    for kind, src, _ in percent_cells(source):
        if kind == "code" and "\nfrom _setup import " in "\n" + src:  # the setup cell, shared by every notebook
            cells += setup
            continue
        m = re.match(r"\{\{heading (\d+\.\d+)\}\}", src)
        if m:
            t = next(t for t in tasks if t.id == m.group(1))
            src = _heading(t, t.id in stub_ids) + src[m.end():]
        cells.append((kind, src))
    return notebook(cells)


# ----------------------------------------------------------------------------------------------
# tutorials
# ----------------------------------------------------------------------------------------------

def _omitted(tids) -> str:
    return (f"*(A cell of this tutorial shows the solution of {', '.join('Task ' + i for i in tids)} and is left "
            "out of the student copy; it returns when the answers are published.)*")


def _copy_tutorial(src: Path, dst: Path, fingerprints) -> list[dict]:
    """Copy a tutorial (.ipynb or percent .py), dropping the cells that hold a fingerprint."""
    dropped = []
    text = src.read_text(encoding="utf-8")
    if src.suffix == ".ipynb":
        nb = json.loads(text)
        for i, c in enumerate(nb.get("cells", [])):
            hits = find_leaks("".join(c.get("source", [])), fingerprints)
            if c.get("cell_type") == "code":
                c["outputs"], c["execution_count"] = [], None
            if hits:
                tids = sorted({h[0] for h in hits})
                nb["cells"][i] = {"cell_type": "markdown", "id": c.get("id", f"cell-{i}"), "metadata": {},
                                  "source": [_omitted(tids)]}
                dropped.append({"tutorial": src.name, "cell": i, "tasks": tids})
        dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        parts = re.split(r"(?m)^(?=# %%)", text)
        for i, part in enumerate(parts):
            hits = find_leaks(part, fingerprints)
            if hits:
                tids = sorted({h[0] for h in hits})
                parts[i] = "# %% [markdown]\n# " + _omitted(tids) + "\n\n"
                dropped.append({"tutorial": src.name, "cell": i, "tasks": tids})
        dst.write_text("".join(parts), encoding="utf-8")
    return dropped


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------

def _readme(selected: list[Task], tutorials: list[str]) -> str:
    rows = "\n".join(f"| {t.id} | {t.title} | {t.points}" + (f" (+{t.bonus} bonus)" if t.bonus else "")
                     + f" | {t.minutes} min | {', '.join(t.needs) or '-'} | `{t.where}` | "
                     f"`notebooks/{GROUPS[t.group][0]}.ipynb` |"
                     for t in selected) or "| - | (none) | | | | | |"
    total = sum(t.points for t in selected)
    minutes = sum(t.minutes for t in selected)
    tut = ", ".join(f"`tutorials/{n}`" for n in tutorials) or "(none: build from a source checkout to include them)"
    text = (STUDENT_DIR / "README.md.in").read_text(encoding="utf-8")
    return (text.replace("{rows}", rows).replace("{total}", str(total))
            .replace("{hours}", f"{minutes / 60:.1f}").replace("{tutorials}", tut))


def build(out_dir, tasks=None, *, source_root=None) -> dict:
    """Write a student distribution to ``out_dir`` (which must not exist or be empty).

    Args:
        out_dir: the folder to create.
        tasks: task ids to stub (default: all of ``TASKS``). The other tasks keep their solution in the
            copy: ``tasks=()`` writes the answers, to publish after the deadline.
        source_root: the checkout whose ``tutorials/`` are copied (default: this package's parent; a
            gsbnp installed without its checkout ships no tutorials). The package itself is always the
            running instructor's gsbnp, which also computes the frozen expected values.
    Returns:
        the manifest written to ``out_dir/.gsbnp-assignments.json``: ``{"stubbed", "tasks", "points",
        "tutorial_cells_left_out", "files"}``.

    The copy is assembled in a temporary folder beside ``out_dir`` and renamed into place, so a failed
    build leaves nothing behind.
    """
    selected = select(tasks)
    stub_ids = {t.id for t in selected}
    root = Path(source_root).resolve() if source_root is not None else SOURCE_ROOT
    regions = find_regions(PACKAGE_DIR)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder; choose another --out")
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=parent))
    try:
        # the package: regions stubbed, answering docstrings replaced, no assignments sub-package
        shutil.copytree(PACKAGE_DIR, tmp / "gsbnp", ignore=_IGNORE)
        shutil.rmtree(tmp / "gsbnp" / "assignments")
        by_file: dict[Path, list[Region]] = {}
        for r in regions:
            by_file.setdefault(r.path, []).append(r)
        texts = {rel: "\n".join(strip_regions((PACKAGE_DIR.parent / rel).read_text(encoding="utf-8").split("\n"),
                                              regs, stub_ids))
                 for rel, regs in by_file.items()}
        for t in selected:  # spans elsewhere that repeat a task's derivation
            for rel, spans in _by_path(also_regions(t)).items():
                if rel not in texts:
                    texts[rel] = (PACKAGE_DIR.parent / rel).read_text(encoding="utf-8")
                texts[rel] = "\n".join(stub_also(texts[rel].split("\n"), spans))
        for tid, rel, name, text in read_docstrings():
            if tid in stub_ids:
                rel = Path(rel)
                if rel not in texts:
                    texts[rel] = (PACKAGE_DIR.parent / rel).read_text(encoding="utf-8")
                try:
                    texts[rel] = replace_docstring(texts[rel], name, text)
                except ValueError as e:
                    raise ValueError(f"student docstring of Task {tid} for {rel} {name}: {e}") from None
        for rel, text in texts.items():
            ast.parse(text, filename=str(rel))
            (tmp / rel).write_text(text, encoding="utf-8")
        fingerprints = solution_fingerprints(regions, stub_ids, PACKAGE_DIR.parent)
        for p in sorted((tmp / "gsbnp").rglob("*.py")):
            _drop_leaking_comments(p, p.relative_to(tmp), fingerprints)
        # packaging, public tests, frozen expected values
        from .. import __version__
        (tmp / "pyproject.toml").write_text((STUDENT_DIR / "pyproject.toml.in").read_text(encoding="utf-8")
                                            .replace("{version}", __version__), encoding="utf-8")
        (tmp / "tests" / "expected").mkdir(parents=True)
        for f in ("conftest.py", "helpers.py"):
            shutil.copy2(STUDENT_DIR / "tests" / f, tmp / "tests" / f)
        shutil.copy2(Path(checks.__file__), tmp / "tests" / "cases.py")
        for t in selected:
            shutil.copy2(STUDENT_DIR / "tests" / f"test_task_{t.slug}.py", tmp / "tests")
            (case,) = [c for c in checks.cases_of(t.id) if c.public]
            np.savez(tmp / "tests" / "expected" / f"task_{t.slug}.npz", **checks.run_case(case))
        # notebooks and tutorials
        (tmp / "notebooks").mkdir()
        for g in sorted({t.group for t in selected}):
            (tmp / "notebooks" / f"{GROUPS[g][0]}.ipynb").write_text(
                json.dumps(_assignment_notebook(g, stub_ids), indent=1, ensure_ascii=False) + "\n",
                encoding="utf-8")
        prefixes = sorted({p for t in selected for p in t.tutorials})
        copied, dropped = [], []
        tut_dir = root / "tutorials"
        if tut_dir.is_dir():
            for src in sorted(tut_dir.iterdir()):
                if src.suffix in (".py", ".ipynb") and src.name[:2] in prefixes and src.name[2:3] == "_":
                    (tmp / "tutorials").mkdir(exist_ok=True)
                    dropped += _copy_tutorial(src, tmp / "tutorials" / src.name, fingerprints)
                    copied.append(src.name)
        (tmp / "README.md").write_text(_readme(selected, copied), encoding="utf-8")
        (tmp / ".gitignore").write_text("__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\n", encoding="utf-8")
        manifest = {"format": "gsbnp-assignments", "version": 2, "gsbnp": __version__,
                    "stubbed": [t.id for t in selected], "tasks": {t.id: t.title for t in TASKS},
                    "points": {t.id: t.points for t in selected}, "tutorial_cells_left_out": dropped,
                    "files": sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above): os.replace needs the name free
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
