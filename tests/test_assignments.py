"""Course assignments (gsbnp.assignments): the marked solution regions, the student copy, the grader.

The central claims (issue 7): a freshly built student copy fails exactly the tasks it stubs, each with
the task's name in the message, and the solution passes every task. Grading runs the project's own
tests in a pytest subprocess (a few seconds per grade), so the copies here are graded once each.
"""

import ast
import json
from pathlib import Path

import pytest

from gsbnp import assignments as A

ISSUE_TASKS = {"LayerNorm backward", "attention backward", "sign STE", "type-A quantizer",
               "GSB attention backward", "GSB value backward", "popcount matmul", "distillation loss"}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A freshly built student copy (every task stubbed) and its grade report."""
    d = tmp_path_factory.mktemp("assignments") / "student"
    manifest = A.build(d)
    return d, manifest, A.grade(d)


def _python_files(root: Path):
    return sorted(p for p in (root / "gsbnp").rglob("*.py") if "__pycache__" not in p.parts)


# ----------------------------------------------------------------------------------------------
# the regions in the real package


def test_tasks_cover_the_issue_and_every_task_has_a_region():
    ids = [t.id for t in A.TASKS]
    assert len(ids) == len(set(ids)) >= 8
    assert ISSUE_TASKS <= {t.title for t in A.TASKS}
    regions = A.find_regions()
    assert {r.task_id for r in regions} == set(ids)
    for t in A.TASKS:
        assert t.tests, t.name
        assert t.group in A.GROUPS, t.name
        assert t.where.split(":")[0] in {str(r.path) for r in regions if r.task_id == t.id}, t.name


def test_markers_are_comments_only():
    """Deleting every marker line leaves the same syntax tree: the package behaves identically."""
    files = {r.path for r in A.find_regions()}
    root = A.PACKAGE_DIR.parent
    for rel in files:
        src = (root / rel).read_text()
        kept = "\n".join(ln for ln in src.split("\n") if not A._ANY_MARKER.match(ln))
        assert kept != src
        assert ast.dump(ast.parse(src)) == ast.dump(ast.parse(kept)), rel


@pytest.mark.parametrize("text, match", [
    ("    # BEGIN SOLUTION Task 1.1: LayerNorm backward\n    x = 1\n", "without an END"),
    ("    x = 1\n    # END SOLUTION\n", "END SOLUTION without"),
    ("    # BEGIN SOLUTION Task 9.9: nothing\n    x = 1\n    # END SOLUTION\n", "not in"),
    ("    # BEGIN SOLUTION Task 1.1: Layernorm backward\n    x = 1\n    # END SOLUTION\n", "differs"),
    ("    # BEGIN SOLUTION Task 1.1: LayerNorm backward\n    # a comment\n    # END SOLUTION\n", "empty"),
    ("    # BEGIN SOLUTION 1.1 LayerNorm backward\n    x = 1\n", "malformed"),
    ("    # BEGIN SOLUTION Task 1.1: LayerNorm backward\n    # BEGIN SOLUTION Task 1.2: attention "
     "backward\n", "inside the region"),
    ("x = 1\n", "no solution region"),
])
def test_bad_markers_are_reported(tmp_path, text, match):
    pkg = tmp_path / "gsbnp"
    pkg.mkdir()
    (pkg / "mod.py").write_text("def f():\n" + text)
    with pytest.raises(ValueError, match=match):
        A.find_regions(pkg)


# ----------------------------------------------------------------------------------------------
# the student copy


def test_student_copy_replaces_every_region_by_a_stub(student):
    d, manifest, _ = student
    assert manifest["stubbed"] == [t.id for t in A.TASKS]
    regions = A.find_regions()
    region_files = {str(r.path) for r in regions}
    for p in _python_files(d):
        rel = str(p.relative_to(d))
        src = p.read_text()
        ast.parse(src)  # still valid Python
        if p.name == "assignments.py":
            continue
        assert not any(A._ANY_MARKER.match(ln) for ln in src.split("\n")), rel
        if rel not in region_files:  # untouched files are copied byte for byte
            assert p.read_bytes() == (A.PACKAGE_DIR.parent / rel).read_bytes(), rel
    for r in regions:
        name = A._task(r.task_id).name
        stub = f'{r.indent}raise NotImplementedError("{name}")'
        assert stub in (d / r.path).read_text().split("\n"), (r.path, name)
    for f in A._test_files():
        assert (d / f).is_file()
    assert json.loads((d / A.MANIFEST).read_text()) == manifest


def test_student_notebooks_have_implement_run_expect_cells(student):
    d, _, _ = student
    books = sorted((d / "notebooks").glob("*.ipynb"))
    assert [b.stem for b in books] == sorted(stem for stem, _, _ in A.GROUPS.values())
    for b in books:
        nb = json.loads(b.read_text())
        assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3"
        text = ["".join(c["source"]) for c in nb["cells"]]
        for t in A.TASKS:
            if b.stem == A.GROUPS[t.group][0]:
                head = next(i for i, s in enumerate(text) if s.startswith(f"## {t.name}"))
                assert "**Implement**" in text[head] and t.where in text[head]
                assert text[head + 1] == "**Run**" and nb["cells"][head + 2]["cell_type"] == "code"
                assert text[head + 3].startswith("**Expect**")
                assert f"grade(ROOT, tasks=[{t.id!r}])" in text[head + 4]
        for c in nb["cells"]:
            if c["cell_type"] == "code":
                compile("".join(c["source"]), b.name, "exec")
                assert c["outputs"] == [] and c["execution_count"] is None


def test_student_copy_fails_every_task_with_its_name(student):
    _, _, report = student
    assert list(report) == [t.id for t in A.TASKS]
    for t in A.TASKS:
        r = report[t.id]
        assert r["total"] >= 1 and r["passed"] == 0 and not r["ok"] and r["score"] == 0.0, r
        assert len(r["failures"]) == r["total"]
        for f in r["failures"]:
            assert f["message"] == f"NotImplementedError: {t.name}", f


def test_partial_copies_fail_exactly_the_stubbed_tasks(tmp_path):
    """Each task's tests depend on its own region only: stub half the tasks, exactly those fail."""
    ids = [t.id for t in A.TASKS]
    for stubbed in (ids[0::2], ids[1::2]):
        d = tmp_path / ("stub-" + "-".join(stubbed))
        assert A.build(d, stubbed)["stubbed"] == stubbed
        report = A.grade(d)
        assert {i for i, r in report.items() if not r["ok"]} == set(stubbed)
        for i in stubbed:
            assert report[i]["passed"] == 0
            assert all(A._task(i).name in f["message"] for f in report[i]["failures"])


def test_solution_passes_every_task(tmp_path):
    d = tmp_path / "solution"
    assert A.build(d, tasks=())["stubbed"] == []
    report = A.grade(d)
    bad = {i: r["failures"][:2] for i, r in report.items() if not r["ok"]}
    assert not bad, bad
    assert all(r["passed"] == r["total"] >= 1 and r["score"] == 1.0 for r in report.values())


# ----------------------------------------------------------------------------------------------
# command line and input errors


def test_cli_build_grade_list(tmp_path, capsys):
    d = tmp_path / "one"
    assert A.main(["build", "--out", str(d), "--task", "5.1"]) == 0
    assert "1 task(s) to implement (5.1)" in capsys.readouterr().out
    js = tmp_path / "report.json"
    assert A.main(["grade", str(d), "--task", "5.1", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "Task 5.1: distillation loss" in out and "FAIL" in out and "score: 0/1 tasks" in out
    assert "NotImplementedError: Task 5.1: distillation loss" in out
    assert json.loads(js.read_text())["5.1"]["passed"] == 0
    assert A.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(t.name in listed for t in A.TASKS)


@pytest.mark.parametrize("argv, match", [
    ([], None),
    (["build"], "--out"),
    (["build", "--out", "{tmp}/x", "--task", "9.9"], "unknown task '9.9'"),
    (["build", "--out", "{tmp}/full"], "already exists"),
    (["grade", "{tmp}/nothing"], "not a student copy"),
    (["grade", "{tmp}/full", "--task", "0"], "unknown task '0'"),
])
def test_cli_errors_exit_2_without_traceback(tmp_path, capsys, argv, match):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "full" / "gsbnp").mkdir()
    (tmp_path / "full" / "gsbnp" / "__init__.py").write_text("")
    (tmp_path / "full" / "tests").mkdir()
    assert A.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    if match:
        assert err.startswith("gsbnp: error:") and match in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]  # no temp folder left


def test_api_input_errors(tmp_path):
    with pytest.raises(TypeError, match="list of task ids"):
        A.build(tmp_path / "x", "3.1")
    with pytest.raises(ValueError, match="source checkout"):
        A.build(tmp_path / "x", source_root=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    A.build(empty, ["1.1"])  # an existing empty folder is fine
    assert (empty / "gsbnp" / "functional" / "normalization.py").is_file()
