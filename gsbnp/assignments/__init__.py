"""Course assignments built from the real package: ``gsbnp assignments list | build | grade``.

One source of truth (STYLE "Assignments"): the solution of every task sits in the package itself,
between two marker comments that name the task (``# BEGIN SOLUTION Task 3.1: GSB attention backward``
... ``# END SOLUTION``); the markers are comments, so the package behaves exactly as without them.

- :mod:`.tasks`: the task table (points, time, tutorials) and the notebook groups;
- :mod:`.regions`: finding, stubbing and taking back the marked regions, the rules a region obeys;
- :mod:`.builder`: the student distribution (its own packaging, README, public tests, notebooks,
  tutorials; no solution anywhere);
- :mod:`.checks` and :mod:`.grader`: the instructor's checks, run on a fresh instructor build holding
  only the student's regions (:mod:`.runner` is the subprocess);
- ``student/``: package data copied into the distribution (tests, notebook cells, docstrings, templates).

The command line (``gsbnp assignments ...``, wired to :func:`main`)::

    gsbnp assignments list                                   tasks, points, time, tutorials
    gsbnp assignments build --out DIR [--task 3.1 ...]       the student distribution
    gsbnp assignments build --out DIR --answers              the solved copy, to publish after the deadline
    gsbnp assignments grade DIR [DIR ...] [--task 3.1 ...] [--json FILE] [--csv FILE] [--timeout S]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from .builder import MANIFEST, build, find_leaks, solution_fingerprints
from .grader import DEFAULT_TIMEOUT, format_report, grade, gradescope
from .regions import ANY_MARKER, PACKAGE_DIR, Region, find_regions
from .tasks import GROUPS, TASKS, Task, get_task

__all__ = [
    "ANY_MARKER",
    "GROUPS",
    "MANIFEST",
    "PACKAGE_DIR",
    "TASKS",
    "Region",
    "Task",
    "build",
    "find_leaks",
    "find_regions",
    "format_report",
    "get_task",
    "grade",
    "gradescope",
    "main",
    "solution_fingerprints",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="gsbnp assignments", description="Course assignments built from gsbnp's own code.")
    sub = ap.add_subparsers(dest="action", parser_class=_Parser)
    p = sub.add_parser("build", help="write the student distribution (stubs, public tests, notebooks, tutorials)")
    p.add_argument("--out", required=True, help="folder to create (must not exist or be empty)")
    p.add_argument("--task", action="append", metavar="ID", help="stub only this task (repeatable)")
    p.add_argument("--answers", action="store_true", help="stub nothing: the answers, to publish after the deadline")
    p = sub.add_parser("grade", help="grade student copies with the instructor's checks")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="student copies")
    p.add_argument("--task", action="append", metavar="ID", help="grade only this task (repeatable)")
    p.add_argument("--json", metavar="FILE", help="Gradescope results.json (one DIR only)")
    p.add_argument("--csv", metavar="FILE", help="one row per copy: points per task and the total")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per task (default %(default)s)")
    sub.add_parser("list", help="the tasks: points, time, where, tutorials")
    return ap


def _list() -> str:
    lines = [f"{'task':<42} {'points':>6} {'bonus':>5} {'min':>4}  tutorials  where"]
    for t in TASKS:
        lines.append(f"{t.name:<42} {t.points:>6} {t.bonus or '':>5} {t.minutes:>4}  "
                     f"{','.join(t.tutorials):<9}  {t.where}")
    lines.append(f"{'total':<42} {sum(t.points for t in TASKS):>6} {sum(t.bonus for t in TASKS):>5} "
                 f"{sum(t.minutes for t in TASKS):>4}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``gsbnp assignments build|grade|list``; returns the exit code (2 on an error in the input)."""
    from ..nn.module import atomic_write_bytes
    try:
        args = _parser().parse_args(argv)
        if args.action is None:
            _parser().print_help()
            return 2
        if args.action == "list":
            print(_list())
            return 0
        if args.action == "build":
            if args.answers and args.task:
                raise ValueError("--answers stubs nothing; it cannot be combined with --task")
            m = build(args.out, () if args.answers else args.task)
            print(f"wrote {args.out}: {len(m['stubbed'])} task(s) to implement ({', '.join(m['stubbed']) or 'none'}), "
                  f"{sum(m['points'].values())} points; {len(m['tutorial_cells_left_out'])} tutorial cell(s) left out")
            return 0
        if args.json and len(args.dirs) != 1:
            raise ValueError("--json writes one Gradescope results.json: give exactly one DIR")
        rows = []
        for d in args.dirs:
            report = grade(d, args.task, timeout=args.timeout)
            if len(args.dirs) > 1:
                print(f"== {d}")
            print(format_report(report))
            rows.append([d] + [r["points"] + r["bonus"] for r in report.values()]
                        + [sum(r["points"] + r["bonus"] for r in report.values())])
        if args.json:
            atomic_write_bytes(args.json, (json.dumps(gradescope(report), indent=2) + "\n").encode())
        if args.csv:
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(["copy"] + [f"Task {i}" for i in report] + ["total"])
            w.writerows(rows)
            atomic_write_bytes(args.csv, buf.getvalue().encode())
        return 0
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"gsbnp: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
