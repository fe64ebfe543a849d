"""Run one task's check cases on a fresh instructor build (a subprocess of :func:`gsbnp.assignments.grade`).

    python -I runner.py BUILD_DIR TASK_ID OUT_DIR

imports gsbnp from BUILD_DIR (the instructor's package with the student's region of TASK_ID spliced
in), runs every case of ``gsbnp.assignments.checks`` for the task and writes ``OUT_DIR/case<i>.npz``
(plain numeric arrays, no pickles) and ``OUT_DIR/results.json`` (``{case name: {"file" | "error"}}``).
The expected values are not here: the grader compares in its own process.
"""

import json
import sys
from pathlib import Path


def main(argv) -> int:
    build, task_id, out = argv[0], argv[1], argv[2]
    sys.path.insert(0, build)
    import numpy as np

    import gsbnp
    if not Path(gsbnp.__file__).resolve().is_relative_to(Path(build).resolve()):
        print(f"imported gsbnp from {gsbnp.__file__}, not from {build}", file=sys.stderr)
        return 3
    from gsbnp.assignments import checks
    results = {}
    for i, case in enumerate(checks.cases_of(task_id)):
        try:
            values = checks.run_case(case)
            np.savez(Path(out) / f"case{i}.npz", **values)
            results[case.name] = {"file": f"case{i}.npz"}
        except Exception as e:  # noqa: BLE001 - the student's code: any error is feedback, not a crash of the grader
            msg = " ".join(str(e).split())
            results[case.name] = {"error": f"{type(e).__name__}: {msg}"[:300]}
    (Path(out) / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
