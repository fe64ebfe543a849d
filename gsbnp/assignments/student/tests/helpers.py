"""Helpers of the public tests: run a task's public case and compare it with the frozen reference."""

from pathlib import Path

import cases
import numpy as np

EXPECTED = Path(__file__).resolve().parent / "expected"


def check_public(task_id: str) -> None:
    """Run the public case of ``task_id`` on your gsbnp; AssertionError naming every wrong quantity."""
    (case,) = [c for c in cases.cases_of(task_id) if c.public]
    got = cases.run_case(case)
    with np.load(EXPECTED / f"task_{task_id.replace('.', '_')}.npz", allow_pickle=False) as z:
        expected = {name: z[name] for name in z.files}
    rows = cases.compare(got, expected, case.tol)
    if any(why is not None for _, why in rows):
        raise AssertionError(f"{case.name}: {cases.format_mismatches(rows)}")
