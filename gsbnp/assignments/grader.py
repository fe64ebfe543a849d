"""Instructor grading: ``gsbnp assignments grade hw/``.

For each task the grader reads from the student's copy only the code between ``BEGIN YOUR CODE`` and
``END YOUR CODE`` of that task, splices it into a fresh copy of the instructor's own package (every
other task keeps the instructor's solution), and runs the task's check cases (:mod:`.checks`) there in
a subprocess (``python -I``, a time limit, a memory limit). The expected values come from the grader's
own process and never enter the subprocess. A region that does not parse, uses what a region may not
(:func:`.regions.check_student_code`), crashes or hangs scores 0 for that task only. The student's
tests, conftest files, other modules and packaging are never read.

A task earns its ``points`` when every core case matches (the paper-default behaviour), and its
``bonus`` when, in addition, every bonus case matches. The feedback names each wrong quantity and by
how much.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import checks
from .regions import PACKAGE_DIR, check_student_code, find_regions, splice, student_chunks
from .tasks import select

__all__ = ["DEFAULT_TIMEOUT", "format_report", "grade", "gradescope"]

DEFAULT_TIMEOUT = 60.0  # seconds per task (a correct task runs in about one second)
MEMORY_LIMIT = 4 << 30  # bytes of address space of one task's subprocess


def _limits():  # pragma: no cover - runs in the child before exec
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass


def _expected(task_id: str) -> list[tuple[checks.Case, dict]]:
    out = []
    for c in checks.cases_of(task_id):
        try:
            out.append((c, checks.run_case(c)))
        except Exception as e:
            raise RuntimeError(f"the instructor's gsbnp fails its own check {c.name!r} of Task {task_id}: "
                               f"{type(e).__name__}: {e} (grade with the instructor's gsbnp, not a student "
                               "copy)") from e
    return out


def _fail(report: dict, why: str) -> dict:
    report["feedback"].append(why)
    return report


def _grade_task(task, regions, root: Path, work: Path, timeout: float) -> dict:
    report = {"name": task.name, "title": task.title, "points": 0, "max_points": task.points,
              "bonus": 0, "max_bonus": task.bonus, "ok": False, "cases": [], "feedback": []}
    own = [r for r in regions if r.task_id == task.id]
    build = work / f"task_{task.slug}"
    shutil.copytree(PACKAGE_DIR, build / "gsbnp", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel in sorted({r.path for r in own}):
        student_file = root / rel
        if not student_file.is_file():
            return _fail(report, f"{rel} is missing from the copy")
        try:
            chunks = student_chunks(student_file.read_text(encoding="utf-8", errors="replace"), task.id)
            lines = (PACKAGE_DIR.parent / rel).read_text(encoding="utf-8").split("\n")
            new, spans = splice(lines, [r for r in regions if r.path == rel], task.id, chunks)
        except ValueError as e:
            return _fail(report, f"{rel}: {e} (keep the BEGIN YOUR CODE / END YOUR CODE lines as they were)")
        text = "\n".join(new)
        try:
            tree = ast.parse(text, filename=str(rel))
        except SyntaxError as e:
            return _fail(report, f"{rel}: your code does not parse: {e.msg} (line {e.lineno} of the graded file)")
        bad = check_student_code(tree, spans)
        if bad:
            return _fail(report, f"{rel}: {bad}")
        (build / rel).write_text(text, encoding="utf-8")
    out = work / f"out_{task.slug}"
    out.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "GSBNP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-I", str(build / "gsbnp" / "assignments" / "runner.py"), str(build), task.id, str(out)]
    try:
        proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=timeout, check=False,
                              preexec_fn=_limits if os.name == "posix" else None)
    except subprocess.TimeoutExpired:
        return _fail(report, f"did not finish within {timeout:g} s (an endless loop?)")
    res_file = out / "results.json"
    if proc.returncode != 0 or not res_file.is_file():
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])[-300:]
        return _fail(report, f"the checks crashed (exit code {proc.returncode}): {tail}")
    results = json.loads(res_file.read_text(encoding="utf-8"))
    core_ok, bonus_ok = True, True
    for c, expected in _expected(task.id):
        r = results.get(c.name, {"error": "no result"})
        if "error" in r:
            ok, msg = False, f"raised {r['error']}"
        else:
            with np.load(out / r["file"], allow_pickle=False) as z:
                got = {k: z[k] for k in z.files}
            rows = checks.compare(got, expected, c.tol)
            ok, msg = all(why is None for _, why in rows), checks.format_mismatches(rows)
        report["cases"].append({"name": c.name, "kind": c.kind, "ok": ok, "message": msg})
        if c.kind == "core":
            core_ok &= ok
        else:
            bonus_ok &= ok
        if not ok:
            report["feedback"].append(f"{'bonus: ' if c.kind == 'bonus' else ''}{c.name}: {msg}")
    report["ok"] = core_ok
    report["points"] = task.points if core_ok else 0
    report["bonus"] = task.bonus if core_ok and bonus_ok and task.bonus else 0
    return report


def grade(student_dir, tasks=None, *, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Grade a student copy: ``{task id: report}`` in task order.

    Args:
        student_dir: the student's copy (a folder holding ``gsbnp/``).
        tasks: task ids to grade (default: all).
        timeout: seconds each task's subprocess may run.
    Returns:
        per task ``{"name", "title", "points", "max_points", "bonus", "max_bonus", "ok", "cases":
        [{"name", "kind", "ok", "message"}], "feedback": [str]}``; ``ok`` is True when the task earned
        its points.
    """
    selected = select(tasks)
    root = Path(student_dir).resolve()
    if not (root / "gsbnp").is_dir():
        raise ValueError(f"{student_dir} is not a student copy: it has no gsbnp/ folder "
                         "(write one with `gsbnp assignments build --out DIR`)")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    regions = find_regions(PACKAGE_DIR)
    report = {}
    with tempfile.TemporaryDirectory(prefix="gsbnp-grade-") as work:
        for t in selected:
            report[t.id] = _grade_task(t, regions, root, Path(work), float(timeout))
    return report


def format_report(report: dict) -> str:
    """The per-task table printed by ``gsbnp assignments grade``, with the feedback under each task."""
    if not report:
        return "no tasks graded"
    w = max(len(r["name"]) for r in report.values())
    lines = []
    for r in report.values():
        bonus = f" + {r['bonus']}/{r['max_bonus']} bonus" if r["max_bonus"] else ""
        lines.append(f"{r['name']:<{w}}  {r['points']:>3}/{r['max_points']:<3} points{bonus}  "
                     f"{'PASS' if r['ok'] else 'FAIL'}")
        lines += [f"    {f}" for f in r["feedback"]]
    got = sum(r["points"] for r in report.values())
    total = sum(r["max_points"] for r in report.values())
    bonus = sum(r["bonus"] for r in report.values())
    lines.append(f"score: {got}/{total} points + {bonus} bonus ({sum(r['ok'] for r in report.values())}/"
                 f"{len(report)} tasks complete)")
    return "\n".join(lines)


def gradescope(report: dict) -> dict:
    """The report in Gradescope's autograder ``results.json`` format.

    One test per task (``max_score`` its points) and one per bonus (``max_score`` 0: extra credit);
    ``output`` is the task's feedback; top-level ``score`` is the sum.
    """
    tests = []
    for r in report.values():
        passed = [c["name"] for c in r["cases"] if c["kind"] == "core" and c["ok"]]
        out = "\n".join(r["feedback"]) if r["feedback"] else "all checks passed"
        if passed and not r["ok"]:
            out += "\ncorrect: " + "; ".join(passed)
        tests.append({"name": r["name"], "score": r["points"], "max_score": r["max_points"], "output": out,
                      "visibility": "visible"})
        if r["max_bonus"]:
            bonus = [c for c in r["cases"] if c["kind"] == "bonus"]
            tests.append({"name": f"{r['name']} (bonus)", "score": r["bonus"], "max_score": 0,
                          "output": "; ".join(f"{c['name']}: {'correct' if c['ok'] else c['message']}"
                                              for c in bonus) or "needs the task's points first",
                          "visibility": "visible"})
    return {"score": sum(t["score"] for t in tests), "output": format_report(report),
            "visibility": "visible", "tests": tests}
