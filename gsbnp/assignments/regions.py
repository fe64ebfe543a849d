"""Solution regions: finding them in the instructor's package, stubbing them, and taking a student's code.

In the instructor's package a task's solution sits between two whole-line comments::

    # BEGIN SOLUTION Task 3.1: GSB attention backward
    ... the lines a student writes ...
    # END SOLUTION

In a student copy each region becomes::

    # BEGIN YOUR CODE Task 3.1: GSB attention backward (notebooks/assignment_3_gsb.ipynb)
    raise NotImplementedError("Task 3.1: GSB attention backward")
    # END YOUR CODE

and grading takes back only what lies between ``BEGIN YOUR CODE`` and ``END YOUR CODE``. A task may have
several regions (in one file or several); they are matched in file order.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .tasks import GROUPS, TASKS, get_task

__all__ = [
    "ANY_MARKER",
    "BEGIN",
    "END",
    "STUDENT_BEGIN",
    "STUDENT_END",
    "Region",
    "also_regions",
    "check_student_code",
    "find_regions",
    "splice",
    "strip_regions",
    "stub_also",
    "stub_lines",
    "student_chunks",
]

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # gsbnp/

# A marker must be a whole comment line; the task id is "<group>.<number>".
BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION Task (?P<id>\d+\.\d+): (?P<title>\S.*?)\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
ANY_MARKER = re.compile(r"^[ \t]*# (BEGIN|END) SOLUTION\b")
STUDENT_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN YOUR CODE Task (?P<id>\d+\.\d+)\b")
STUDENT_END = re.compile(r"^[ \t]*# END YOUR CODE\s*$")


@dataclass(frozen=True)
class Region:
    """One marked solution region: ``lines[begin]`` is the BEGIN marker, ``lines[end]`` the END one."""

    path: Path      # relative to the package's parent (e.g. gsbnp/quant/attention.py)
    task_id: str
    title: str
    indent: str
    begin: int
    end: int


def _scan(rel: Path, lines: list[str]) -> list[Region]:
    regions, open_ = [], None
    for i, line in enumerate(lines):
        m = BEGIN.match(line)
        if m:
            if open_ is not None:
                raise ValueError(f"{rel}:{i + 1}: BEGIN SOLUTION inside the region opened at line "
                                 f"{open_[0] + 1}")
            open_ = (i, m)
        elif END.match(line):
            if open_ is None:
                raise ValueError(f"{rel}:{i + 1}: END SOLUTION without a BEGIN SOLUTION")
            b, bm = open_
            if not any(s.strip() and not s.strip().startswith("#") for s in lines[b + 1:i]):
                raise ValueError(f"{rel}:{b + 1}: the solution region of Task {bm.group('id')} is empty")
            regions.append(Region(rel, bm.group("id"), bm.group("title"), bm.group("indent"), b, i))
            open_ = None
        elif ANY_MARKER.match(line):
            raise ValueError(f"{rel}:{i + 1}: malformed marker {line.strip()!r} (expected "
                             "'# BEGIN SOLUTION Task <id>: <title>' or '# END SOLUTION')")
    if open_ is not None:
        raise ValueError(f"{rel}:{open_[0] + 1}: BEGIN SOLUTION without an END SOLUTION")
    return regions


def package_files(package_dir: Path):
    """The package's .py files that may hold regions (not this sub-package, which quotes the markers)."""
    for p in sorted(package_dir.rglob("*.py")):
        rel = p.relative_to(package_dir)
        if "__pycache__" in rel.parts or rel.parts[0] == "assignments":
            continue
        yield p


def find_regions(package_dir: str | os.PathLike | None = None) -> list[Region]:
    """Every solution region of the package, checked against ``TASKS``.

    Raises ValueError on a malformed or unbalanced marker, an unknown task id, a title that differs
    from ``TASKS``, or a task without any region.
    """
    package_dir = Path(package_dir) if package_dir is not None else PACKAGE_DIR
    regions = []
    for p in package_files(package_dir):
        rel = p.relative_to(package_dir.parent)
        regions += _scan(rel, p.read_text(encoding="utf-8").split("\n"))
    known = {t.id: t for t in TASKS}
    for r in regions:
        if r.task_id not in known:
            raise ValueError(f"{r.path}:{r.begin + 1}: Task {r.task_id} is not in gsbnp.assignments.TASKS")
        if r.title != known[r.task_id].title:
            raise ValueError(f"{r.path}:{r.begin + 1}: marker title {r.title!r} differs from TASKS "
                             f"({known[r.task_id].title!r})")
    missing = sorted(set(known) - {r.task_id for r in regions})
    if missing:
        raise ValueError(f"no solution region found for task(s) {', '.join(missing)} in {package_dir} "
                         "(a student copy has none: build from the instructor's gsbnp)")
    return regions


def also_regions(task, root: Path | None = None) -> list[Region]:
    """The ``also`` spans of a task as Regions whose ``begin`` and ``end`` are the span's first and last
    line (code, not markers); ValueError when a span's lines are not found exactly once."""
    root = PACKAGE_DIR.parent if root is None else Path(root)
    out = []
    for rel, first, last in task.also:
        lines = (root / rel).read_text(encoding="utf-8").split("\n")
        starts = [i for i, ln in enumerate(lines) if ln.strip() == first]
        ends = [i for i, ln in enumerate(lines) if ln.strip() == last and starts and i >= starts[0]]
        if len(starts) != 1 or not ends:
            raise ValueError(f"{rel}: the span of {task.name} starting {first!r} is not found exactly once "
                             "(update Task.also in gsbnp/assignments/tasks.py)")
        indent = lines[starts[0]][:len(lines[starts[0]]) - len(lines[starts[0]].lstrip())]
        out.append(Region(Path(rel), task.id, task.title, indent, starts[0], ends[0]))
    return out


def stub_also(lines: list[str], spans: list[Region]) -> list[str]:
    """Replace each ``also`` span (code lines ``begin..end`` included) by the task's stub."""
    for r in sorted(spans, key=lambda r: -r.begin):
        lines = lines[:r.begin] + stub_lines(r) + lines[r.end + 1:]
    return lines


def stub_lines(region: Region) -> list[str]:
    """The student's version of a region: markers they keep, and a stub raising with the task's name."""
    task = get_task(region.task_id)
    nb = GROUPS[task.group][0]
    return [f"{region.indent}# BEGIN YOUR CODE {task.name} (notebooks/{nb}.ipynb)",
            f"{region.indent}raise NotImplementedError({json.dumps(task.name)})",
            f"{region.indent}# END YOUR CODE"]


def strip_regions(lines: list[str], regions: list[Region], stub_ids: set[str]) -> list[str]:
    """Stub the regions of ``stub_ids``; drop only the markers of the others."""
    out, last = [], 0
    for r in sorted(regions, key=lambda r: r.begin):
        out += lines[last:r.begin]
        out += stub_lines(r) if r.task_id in stub_ids else lines[r.begin + 1:r.end]
        last = r.end + 1
    return out + lines[last:]


def student_chunks(text: str, task_id: str) -> list[list[str]]:
    """The lines between each ``BEGIN YOUR CODE Task <task_id>`` and the next ``END YOUR CODE``, in order.

    Raises ValueError (naming the line) when a marker of the task is unbalanced.
    """
    lines = text.split("\n")
    chunks, start = [], None
    for i, line in enumerate(lines):
        m = STUDENT_BEGIN.match(line)
        if m and m.group("id") == task_id:
            if start is not None:
                raise ValueError(f"line {i + 1}: a second BEGIN YOUR CODE before END YOUR CODE")
            start = i
        elif start is not None and STUDENT_END.match(line):
            chunks.append(lines[start + 1:i])
            start = None
    if start is not None:
        raise ValueError(f"line {start + 1}: BEGIN YOUR CODE without END YOUR CODE")
    return chunks


def splice(lines: list[str], regions: list[Region], task_id: str, chunks: list[list[str]]) -> tuple[list[str], list]:
    """Replace the regions of ``task_id`` in an instructor file by the student's chunks.

    The other regions keep their solution (markers dropped). Returns the new lines and, for each of
    the task's regions, the (first, last) 1-based line numbers its code occupies in the new file.
    """
    own = [r for r in sorted(regions, key=lambda r: r.begin) if r.task_id == task_id]
    if len(own) != len(chunks):
        raise ValueError(f"expected {len(own)} BEGIN/END YOUR CODE pair(s) of Task {task_id}, found {len(chunks)}")
    out, last, spans, it = [], 0, [], iter(chunks)
    for r in sorted(regions, key=lambda r: r.begin):
        out += lines[last:r.begin]
        if r.task_id == task_id:
            code = next(it)
            spans.append((len(out) + 1, len(out) + len(code)))
            out += code
        else:
            out += lines[r.begin + 1:r.end]
        last = r.end + 1
    return out + lines[last:], spans


# What a region may use: NumPy, math and the names of its module. No imports of anything else, no
# dunder attributes or names (frames, globals, builtins), no file, process or code-evaluation built-ins.
ALLOWED_IMPORTS = ("numpy", "math")
FORBIDDEN_NAMES = frozenset({
    "open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "getattr", "setattr",
    "delattr", "breakpoint", "input", "help", "memoryview", "importlib", "os", "sys", "subprocess",
    "builtins", "inspect", "gc", "ctypes", "pickle", "shutil", "pathlib", "io", "socket", "signal",
    "threading", "multiprocessing", "gsbnp",
})


def check_student_code(tree: ast.AST, spans: list[tuple[int, int]]) -> str | None:
    """None if the nodes of the student's lines (``spans``, 1-based, inclusive) use only what a region
    may use; otherwise a message naming the line and the offending construct."""
    def inside(node) -> bool:
        ln = getattr(node, "lineno", None)
        return ln is not None and any(a <= ln <= b for a, b in spans)

    for node in ast.walk(tree):
        if not inside(node):
            continue
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name.split(".")[0] not in ALLOWED_IMPORTS]
        elif isinstance(node, ast.ImportFrom):
            bad = [] if node.level == 0 and (node.module or "").split(".")[0] in ALLOWED_IMPORTS \
                else ["." * node.level + (node.module or "")]
        else:
            bad = None
        if bad:
            return f"line {node.lineno}: imports {', '.join(bad)} (a region may import only numpy and math)"
        if isinstance(node, ast.Name) and (node.id in FORBIDDEN_NAMES or node.id.startswith("__")):
            return f"line {node.lineno}: uses {node.id!r}, which a region may not use"
        if isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            return f"line {node.lineno}: uses the attribute {node.attr!r}, which a region may not use"
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return f"line {node.lineno}: a region may not declare global or nonlocal names"
    return None
