"""Course assignments (gsbnp.assignments): the regions, the student distribution, the instructor grader.

Claims (issue 13): the student copy holds no solution; grading takes only the student's regions into a
fresh instructor build, so an untouched copy scores 0 whatever else was edited, the instructor's code
pasted into the regions scores full points, and a wrong solution scores 0 with feedback naming the
wrong quantity. Grading runs one subprocess per task (about 0.5 s each), so copies are graded sparingly.
"""

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gsbnp import assignments as A
from gsbnp.assignments import builder as B
from gsbnp.assignments import checks as C
from gsbnp.assignments import regions as R

from venv_helpers import build_requires, missing_requirements, venv_seeing_this_environment

ISSUE_TASKS = {"LayerNorm backward", "attention backward", "sign STE", "type-A quantizer",
               "GSB attention backward", "GSB value backward", "popcount matmul", "distillation loss"}
ROOT = A.PACKAGE_DIR.parent


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A freshly built student distribution (every task stubbed) and its manifest."""
    d = tmp_path_factory.mktemp("assignments") / "hw"
    return d, A.build(d)


@pytest.fixture(scope="module")
def untouched_report(student):
    return A.grade(student[0])


@pytest.fixture(scope="module")
def solved(student, tmp_path_factory):
    """The student copy with the instructor's code pasted into every YOUR CODE block."""
    copy = tmp_path_factory.mktemp("solved") / "hw"
    shutil.copytree(student[0], copy)
    for t in A.TASKS:
        _fill(copy, t.id)
    return copy


def _solution_code(task_id: str) -> list[list[str]]:
    """The instructor's code of each region of a task, in file order (the lines a student writes)."""
    spans = [(r, r.begin + 1, r.end) for r in A.find_regions() if r.task_id == task_id]
    spans += [(r, r.begin, r.end + 1) for r in R.also_regions(A.get_task(task_id))]
    out = {}
    for r, a, b in sorted(spans, key=lambda s: (str(s[0].path), s[1])):
        out.setdefault(r.path, []).append((ROOT / r.path).read_text().split("\n")[a:b])
    return out


def _fill(copy: Path, task_id: str, chunks_by_file=None) -> None:
    """Write code into the YOUR CODE blocks of ``task_id`` (default: the instructor's solution)."""
    chunks_by_file = _solution_code(task_id) if chunks_by_file is None else chunks_by_file
    for rel, chunks in chunks_by_file.items():
        p = copy / rel
        lines, out, it, skip = p.read_text().split("\n"), [], iter(chunks), False
        for line in lines:
            m = R.STUDENT_BEGIN.match(line)
            if m and m.group("id") == task_id:
                out += [line] + next(it)
                skip = True
            elif skip and R.STUDENT_END.match(line):
                out.append(line)
                skip = False
            elif not skip:
                out.append(line)
        p.write_text("\n".join(out))


def _replace_in_solution(task_id: str, old: str, new: str) -> dict:
    """The instructor's code of a task with one line changed (a deliberately wrong solution)."""
    code = _solution_code(task_id)
    hits = [(rel, i, j) for rel, chunks in code.items() for i, ch in enumerate(chunks)
            for j, ln in enumerate(ch) if old in ln]
    assert len(hits) == 1, (task_id, old, hits)
    rel, i, j = hits[0]
    code[rel][i][j] = code[rel][i][j].replace(old, new)
    return code


# ----------------------------------------------------------------------------------------------
# the task table and the regions in the real package


def test_tasks_cover_the_issue_and_every_task_has_its_parts():
    ids = [t.id for t in A.TASKS]
    assert len(ids) == len(set(ids)) >= 10
    assert ISSUE_TASKS <= {t.title for t in A.TASKS}
    assert len({t.title for t in A.TASKS} - ISSUE_TASKS) >= 2  # tasks where the paper is the teacher
    regions = A.find_regions()
    assert {r.task_id for r in regions} == set(ids)
    student = B.STUDENT_DIR
    for t in A.TASKS:
        assert t.points > 0 and t.minutes > 0 and t.group in A.GROUPS, t.name
        assert t.where.split(":")[0] in {str(r.path) for r in regions if r.task_id == t.id}, t.name
        assert (student / "tests" / f"test_task_{t.slug}.py").is_file(), t.name
        assert f"{{{{heading {t.id}}}}}" in (student / "notebooks" / f"assignment_{t.group}.py").read_text()
        kinds = [c.kind for c in C.cases_of(t.id)]
        assert kinds.count("core") >= 2 and sum(c.public for c in C.cases_of(t.id)) == 1, t.name
        assert ("bonus" in kinds) == (t.bonus > 0), t.name
        assert all(list((ROOT / "tutorials").glob(f"{p}_*")) for p in t.tutorials), t.name
    # points weighted by difficulty: the GSB backward passes are worth the most, the small forwards least
    pts = {t.id: t.points for t in A.TASKS}
    assert pts["3.1"] == max(pts.values()) and pts["2.1"] == min(pts.values())


def test_markers_are_comments_only():
    """Deleting every marker line leaves the same syntax tree: the package behaves identically."""
    for rel in {r.path for r in A.find_regions()}:
        src = (ROOT / rel).read_text()
        kept = "\n".join(ln for ln in src.split("\n") if not A.ANY_MARKER.match(ln))
        assert kept != src
        assert ast.dump(ast.parse(src)) == ast.dump(ast.parse(kept)), rel


@pytest.mark.parametrize("text, match", [
    ("    # BEGIN SOLUTION Task 1.1: LayerNorm backward\n    x = 1\n", "without an END"),
    ("    x = 1\n    # END SOLUTION\n", "END SOLUTION without"),
    ("    # BEGIN SOLUTION Task 9.9: nothing\n    x = 1\n    # END SOLUTION\n", "not in"),
    ("    # BEGIN SOLUTION Task 1.1: Layernorm backward\n    x = 1\n    # END SOLUTION\n", "differs"),
    ("    # BEGIN SOLUTION Task 1.1: LayerNorm backward\n    # a comment\n    # END SOLUTION\n", "empty"),
    ("    # BEGIN SOLUTION 1.1 LayerNorm backward\n    x = 1\n", "malformed"),
    (("    # BEGIN SOLUTION Task 1.1: LayerNorm backward\n    # BEGIN SOLUTION Task 1.2: attention "
      "backward\n"), "inside the region"),
    ("x = 1\n", "no solution region"),
])
def test_bad_markers_are_reported(tmp_path, text, match):
    pkg = tmp_path / "gsbnp"
    pkg.mkdir()
    (pkg / "mod.py").write_text("def f():\n" + text)
    with pytest.raises(ValueError, match=match):
        A.find_regions(pkg)


def test_student_docstrings_name_real_docstrings():
    entries = B.read_docstrings()
    assert {tid for tid, *_ in entries} <= {t.id for t in A.TASKS}
    for _tid, rel, name, text in entries:
        src = (ROOT / rel).read_text()
        new = B.replace_docstring(src, name, text)
        assert new != src and text.split("\n")[0] in new, (rel, name)
        ast.parse(new)


# ----------------------------------------------------------------------------------------------
# the student distribution


def test_student_copy_is_a_standalone_project(student):
    d, manifest = student
    assert manifest["stubbed"] == [t.id for t in A.TASKS]
    assert not (d / "gsbnp" / "assignments").exists()  # no grader, no checks inside the student's package
    py = (d / "pyproject.toml").read_text()
    assert 'name = "gsbnp-coursework"' in py and '"pytest>=7"' in py
    readme = (d / "README.md").read_text()
    for t in A.TASKS:
        assert f"| {t.id} | {t.title} | {t.points}" in readme and f"| {t.minutes} min |" in readme
    assert f"({sum(t.points for t in A.TASKS)} points" in readme
    region_files = {str(r.path) for r in A.find_regions()} | {rel for _, rel, _, _ in B.read_docstrings()}
    region_files |= {rel for t in A.TASKS for rel, _, _ in t.also}
    fps = A.solution_fingerprints()
    for p in sorted((d / "gsbnp").rglob("*.py")):
        rel = p.relative_to(d).as_posix()
        src = p.read_text()
        ast.parse(src)
        assert not any(A.ANY_MARKER.match(ln) for ln in src.split("\n")), rel
        if rel not in region_files:  # other files: byte for byte, or without the comments that leak
            orig = (ROOT / rel).read_text()
            if A.find_leaks(orig, fps):
                assert ast.dump(ast.parse(src)) == ast.dump(ast.parse(orig)), rel
            else:
                assert src == orig, rel
    for r in A.find_regions() + [r for t in A.TASKS for r in R.also_regions(t)]:
        name = A.get_task(r.task_id).name
        assert f'{r.indent}raise NotImplementedError("{name}")' in (d / r.path).read_text().split("\n")
    for t in A.TASKS:
        assert (d / "tests" / f"test_task_{t.slug}.py").is_file()
        assert (d / "tests" / "expected" / f"task_{t.slug}.npz").is_file()
    assert json.loads((d / A.MANIFEST).read_text()) == manifest
    assert {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()} - {A.MANIFEST} \
        == set(manifest["files"])


def test_no_solution_anywhere_in_the_student_copy(student):
    """Every non-trivial line of every region, and each task's equivalent forms (``Task.leaks``: the
    same rule in a docstring or a neighbouring helper), is absent from every text file of the copy:
    package, tests, notebooks, tutorials (what ``pip install -e hw/`` installs is this package)."""
    d, _ = student
    fps = A.solution_fingerprints()
    pkg_text = "\n".join(p.read_text() for p in sorted((ROOT / "gsbnp").rglob("*.py"))
                         if "assignments" not in p.parts)
    pkg_text += "\n".join(p.read_text() for p in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*")))
    for t in A.TASKS:
        assert len(fps[t.id]) >= 2, t.name
        code = {B._squash(B._code_part(ln)) for chunks in _solution_code(t.id).values() for ch in chunks for ln in ch}
        assert {B._squash(g) for g in t.given} <= code, t.name  # a given line is a line of the solution
        # the search can fail: the instructor's package and tutorials hold every fingerprint
        assert {f for _, f in A.find_leaks(pkg_text, {t.id: fps[t.id]})} == fps[t.id], t.name
    files = [p for p in sorted(d.rglob("*")) if p.is_file() and p.suffix != ".npz"]
    assert any(p.suffix == ".ipynb" and p.parent.name == "tutorials" for p in files)
    leaks = {p.relative_to(d).as_posix(): A.find_leaks(p.read_text(), fps) for p in files}
    assert not {k: v for k, v in leaks.items() if v}, leaks


def test_leak_search_catches_a_solution_line_in_a_tutorial(tmp_path):
    """A tutorial cell that holds a solution line is left out of the copy, the others are kept."""
    tut = tmp_path / "src" / "tutorials"
    tut.mkdir(parents=True)
    line = next(ln for ln in _solution_code("1.1")[Path("gsbnp/functional/normalization.py")][0] if "einsum" in ln)
    nb = B.notebook([("markdown", "# T"), ("code", "x = 1"), ("code", line.strip())])
    (tut / "00_demo.ipynb").write_text(json.dumps(nb))
    (tut / "00_demo.py").write_text(f"# %%\nx = 1\n\n# %%\n{line.strip()}\n")
    (tut / "01_other.ipynb").write_text(json.dumps(nb))
    m = A.build(tmp_path / "hw", ["1.1"], source_root=tmp_path / "src")
    assert sorted(c["tutorial"] for c in m["tutorial_cells_left_out"]) == ["00_demo.ipynb", "00_demo.py"]
    cells = json.loads((tmp_path / "hw" / "tutorials" / "00_demo.ipynb").read_text())["cells"]
    assert "".join(cells[1]["source"]) == "x = 1" and "Task 1.1" in "".join(cells[2]["source"])
    assert not (tmp_path / "hw" / "tutorials" / "01_other.ipynb").exists()  # task 1.1 names tutorial 00 only
    assert "x = 1" in (tmp_path / "hw" / "tutorials" / "00_demo.py").read_text()


def test_student_notebooks(student):
    d, _ = student
    books = sorted((d / "notebooks").glob("*.ipynb"))
    assert [b.stem for b in books] == sorted(stem for stem, _ in A.GROUPS.values())
    for b in books:
        nb = json.loads(b.read_text())
        assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3"
        text = ["".join(c["source"]) for c in nb["cells"]]
        for t in A.TASKS:
            if b.stem != A.GROUPS[t.group][0]:
                continue
            head = next(i for i, s in enumerate(text) if s.startswith(f"## {t.name}\n"))
            assert f"**{t.points} points" in text[head] and t.where in text[head] and "**Derive" in text[head]
            assert nb["cells"][head + 1]["cell_type"] == "code" and text[head + 2].startswith("**Expect**")
            assert f'public_tests("test_task_{t.slug}.py")' in text[head + 3]
        for c in nb["cells"]:
            if c["cell_type"] == "code":
                compile("".join(c["source"]), b.name, "exec")
                assert c["outputs"] == [] and c["execution_count"] is None


# ----------------------------------------------------------------------------------------------
# grading


@pytest.mark.slow
def test_untouched_copy_scores_zero_with_each_task_name(untouched_report):
    assert list(untouched_report) == [t.id for t in A.TASKS]
    for t in A.TASKS:
        r = untouched_report[t.id]
        assert r["points"] == r["bonus"] == 0 and not r["ok"] and r["max_points"] == t.points, r
        assert r["feedback"] and all(f"NotImplementedError: {t.name}" in f for f in r["feedback"]), r


@pytest.mark.slow
def test_pasted_solutions_score_full_and_pass_the_public_tests(solved):
    copy = solved
    report = A.grade(copy)
    bad = {i: r["feedback"] for i, r in report.items() if not (r["ok"] and r["points"] == r["max_points"])}
    assert not bad, bad
    assert all(r["bonus"] == r["max_bonus"] for r in report.values())
    assert "score: 100/100 points + 10 bonus (10/10 tasks complete)" in A.format_report(report)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=copy,
                          env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert re.search(r"\b2[0-9] passed\b", proc.stdout), proc.stdout[-500:]


def test_tampering_outside_the_regions_changes_nothing(student, tmp_path):
    """Hooks that mark every test passed, rewritten check cases and expected values, a sitecustomize,
    edited packaging and a neighbouring function: an untouched task still scores 0."""
    copy = tmp_path / "tampered"
    shutil.copytree(student[0], copy)
    hook = ("\nimport pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
            "    out = yield\n    out.get_result().outcome = 'passed'\n")
    for f in ("tests/conftest.py", "conftest.py"):
        with open(copy / f, "a") as fh:
            fh.write(hook)
    (copy / "tests" / "cases.py").write_text("def compare(*a, **k):\n    return []\n")
    (copy / "sitecustomize.py").write_text("import gsbnp.assignments.checks as c\nc.compare = lambda *a, **k: []\n")
    (copy / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    act = copy / "gsbnp" / "quant" / "activations.py"
    act.write_text(act.read_text().replace("def _act_backward(dout, cache):\n",
                                           "def _act_backward(dout, cache):\n    return dout, 0.0, None\n"))
    report = A.grade(copy, ["2.1", "3.1", "5.1"])
    assert all(r["points"] == 0 and "NotImplementedError" in r["feedback"][0] for r in report.values()), report


WRONG = [  # (task, instructor line fragment, replacement, quantity named wrong, quantities named correct)
    ("2.1", "window = np.abs(q) <= 1  # Eq. 5, inclusive", "window = np.abs(q) < 1", "dx", "x_b"),
    ("3.1", "np.dot(gflat, A_bin.reshape(-1)) - np.dot(g_in, cache[\"u\"].reshape(-1))",
     "np.dot(gflat, A_bin.reshape(-1))", "dalphas", "dA_ret"),
    ("3.2", "dbetas *= _scale_grad_factor(cache[\"scale_grad\"], numel)", "dbetas *= 1.0", "dbetas", "dV0"),
]


def test_wrong_solutions_score_zero_with_feedback_naming_the_quantity(student, tmp_path):
    """A strict STE window, Eq. 14 without its q-term, a summed instead of averaged scale gradient."""
    copy = tmp_path / "wrong"
    shutil.copytree(student[0], copy)
    for task, old, new, _, _ in WRONG:
        _fill(copy, task, _replace_in_solution(task, old, new))
    js = tmp_path / "results.json"
    assert A.main(["grade", str(copy), "--task", "2.1", "--task", "3.1", "--task", "3.2", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    by_name = {t["name"]: t for t in res["tests"]}
    for task, _, _, wrong, right in WRONG:
        t = by_name[A.get_task(task).name]
        assert t["score"] == 0 and t["max_score"] == A.get_task(task).points, t
        assert re.search(rf"\b{wrong}: relative error \d\.\de[+-]\d\d \(expected < 1e-06\)", t["output"]), t
        assert re.search(rf"\b{right}\b[^;]* correct", t["output"]), t
        assert "assert" not in t["output"].lower()
    assert res["score"] == 0
    # the example of docs/teaching.md is this feedback, with placeholders for the numbers
    doc = (ROOT / "docs" / "teaching.md").read_text()
    example = " ".join(re.search(r"`(dx: relative error <e>.*?)`", doc, re.DOTALL).group(1).split())
    pattern = re.escape(example).replace("<e>", r"\d\.\de[+-]\d\d").replace("<index>", r"\([\d, ]+\)")
    pattern = pattern.replace("<value>", r"-?[\d.e+-]+")
    assert re.search(pattern, by_name[A.get_task("2.1").name]["output"]), (example, by_name)


def test_teaching_guide_matches_the_task_table():
    """docs/teaching.md states points, bonus, minutes and tutorials per task, the syllabus and the
    grader's limits: every number there is the task table's or the grader's."""
    text = (ROOT / "docs" / "teaching.md").read_text()
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r"^\| (\d\.\d) \| ([^|]+) \| (\d+) \| (\d+) \| (\d+) \| ([\d, ]+) \|$", text, re.MULTILINE)}
    assert list(rows) == [t.id for t in A.TASKS]
    for t in A.TASKS:
        assert rows[t.id] == (t.title, str(t.points), str(t.bonus), str(t.minutes), ", ".join(t.tutorials)), t.id
    total = re.search(r"\*\*total\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\*", text)
    assert total.groups() == tuple(str(sum(getattr(t, f) for t in A.TASKS)) for f in ("points", "bonus", "minutes"))
    syllabus = re.findall(r"^\| (\d) \| [^|]+ \| ([\d, ]+) \| ([\d., ]+) \|$", text, re.MULTILINE)
    taught = {}
    for _, tuts, tids in syllabus:
        for tid in tids.split(", "):
            taught[tid] = set(tuts.split(", "))
    assert set(taught) == {t.id for t in A.TASKS}
    assert all(set(A.get_task(i).tutorials) <= tuts for i, tuts in taught.items())
    from gsbnp.assignments import grader
    assert f"{grader.DEFAULT_TIMEOUT:g} s per task" in text and f"{grader.MEMORY_LIMIT >> 30} GiB" in text
    assert f"(expected < {C.TOL:.0e})" in text
    assert "docs/teaching.md" in (ROOT / "README.md").read_text()


def test_gradescope_results_json_has_the_required_fields(untouched_report, tmp_path):
    res = A.gradescope(untouched_report)
    json.loads(json.dumps(res))  # plain JSON
    assert isinstance(res["tests"], list) and len(res["tests"]) == len(A.TASKS) + sum(t.bonus > 0 for t in A.TASKS)
    for t in res["tests"]:
        assert {"name", "score", "max_score", "output"} <= set(t)
        assert isinstance(t["name"], str) and isinstance(t["output"], str) and t["output"]
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float))
        assert t.get("visibility", "visible") in {"hidden", "after_due_date", "after_published", "visible"}
    assert isinstance(res["score"], (int, float)) and res["score"] == sum(t["score"] for t in res["tests"])
    assert sum(t["max_score"] for t in res["tests"]) == sum(t.points for t in A.TASKS)


@pytest.mark.slow
def test_broken_regions_score_zero_for_that_task_only(student, tmp_path):
    """A region that does not parse, one that imports os, one that hangs: 0 for each, full for the rest."""
    copy = tmp_path / "broken"
    shutil.copytree(student[0], copy)
    for t in ("1.1", "1.2", "4.1", "5.1"):
        _fill(copy, t)
    ln = Path("gsbnp/functional/normalization.py")
    _fill(copy, "1.1", {ln: [["    return (dout,"]]})  # a fresh copy of the stub is replaced below
    at = Path("gsbnp/functional/attention.py")
    code = _solution_code("1.2")
    code[at][0].insert(0, "    import os")
    _fill(copy, "1.2", code)
    _fill(copy, "5.1", {Path("gsbnp/train/losses.py"): [["    while True:", "        pass"]]})
    report = A.grade(copy, ["1.1", "1.2", "4.1", "5.1"], timeout=10)
    assert report["4.1"]["points"] == 10 and report["4.1"]["ok"]
    assert report["1.1"]["points"] == 0 and "does not parse" in report["1.1"]["feedback"][0]
    assert report["1.2"]["points"] == 0 and "imports os" in report["1.2"]["feedback"][0]
    assert report["5.1"]["points"] == 0 and "did not finish within 10 s" in report["5.1"]["feedback"][0]


@pytest.mark.parametrize("code, what", [
    ("x = open('/etc/passwd').read()", "'open'"),
    ("x = dout.__class__", "'__class__'"),
    ("from gsbnp import quant", "imports gsbnp"),
    ("import numpy.linalg as la", None),
])
def test_region_rules(code, what):
    tree = ast.parse("def f(dout):\n    " + code + "\n    return dout\n")
    msg = R.check_student_code(tree, [(2, 2)])
    assert (msg is None) if what is None else (what in msg), msg


def _execute(path: Path, allow_errors: bool = False):
    for m in ("nbformat", "nbclient", "ipykernel"):
        if importlib.util.find_spec(m) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{m} is missing (the test extra installs it)")
            pytest.skip(f"{m} is not installed")
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    env = {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": ""}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel imports the copy's gsbnp (its first cell puts it on sys.path)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    out = []
    for c in nb.cells:
        if c.cell_type == "code":
            out.append("".join(o.get("text", "") if o["output_type"] == "stream" else
                               f"{o.get('ename')}: {o.get('evalue')}" if o["output_type"] == "error" else ""
                               for o in c.outputs))
    return nb, out


@pytest.mark.slow
def test_notebooks_run_on_the_solved_copy_and_stop_on_a_stub(solved, student):
    """Every notebook's code cells, run in order as one script from notebooks/ (no kernel: a Jupyter
    kernel per notebook costs more than the cells), print the expected checks; the public-test cells
    are recorded, not run (test_pasted_solutions runs those tests). In a real kernel an untouched
    notebook stops at its task's stub and its public-test cell reports the failures."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for stem, _ in A.GROUPS.values():
        nb = json.loads((solved / "notebooks" / f"{stem}.ipynb").read_text())
        script = solved / "notebooks" / f"_{stem}.py"
        code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        code.insert(1, "def public_tests(name):\n    print('public tests', name)")  # after the setup cell
        script.write_text("\n\n".join(code))
        proc = subprocess.run([sys.executable, script.name], cwd=script.parent, env=env, capture_output=True,
                              text=True, check=False, timeout=300)
        script.unlink()
        assert proc.returncode == 0, (stem, proc.stderr[-1500:])
        assert str(solved) in proc.stdout  # the copy's gsbnp was imported
        runs = re.findall(r"^public tests test_task_(\d_\d)\.py$", proc.stdout, re.MULTILINE)
        assert runs == [t.slug for t in A.TASKS if A.GROUPS[t.group][0] == stem], (stem, proc.stdout[-1500:])
        assert "failed" not in proc.stdout and "Error" not in proc.stdout, (stem, proc.stdout[-1500:])
    nb, outs = _execute(student[0] / "notebooks" / f"{A.GROUPS['4'][0]}.ipynb", allow_errors=True)
    assert next(o for o in outs if "Error" in o) == "NotImplementedError: Task 4.1: popcount matmul"
    assert any("2 failed" in o for o in outs)


# ----------------------------------------------------------------------------------------------
# the student's own environment: pip install -e hw/ && pytest


@pytest.mark.slow
def test_fresh_venv_installs_the_student_copy_and_runs_its_public_tests(student, tmp_path):
    """``pip install -e hw/ && pytest`` in a new virtual environment, offline: the new environment sees
    only the packages of the environment running this test (never what the base interpreter happens to
    hold), and ``--no-build-isolation --no-deps --no-index`` keeps pip from fetching anything, so every
    build requirement the copy declares must be installed here by the test extra."""
    d, _ = student
    py, env = venv_seeing_this_environment(tmp_path / "venv")
    missing = missing_requirements(build_requires(d / "pyproject.toml"))
    assert not missing, f"the test environment lacks the copy's build requirements {missing} (the test extra)"
    pip = subprocess.run([str(py), "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
                          "-q", "-e", str(d)], env=env, capture_output=True, text=True, check=False, timeout=240)
    assert pip.returncode == 0, pip.stderr[-2000:]
    where = subprocess.run([str(py), "-c", "import gsbnp; print(gsbnp.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=False, timeout=60)
    assert Path(where.stdout.strip()).resolve().is_relative_to(d.resolve()), where
    proc = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf"], cwd=d, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:]
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED ")]
    assert len(failed) >= 2 * len(A.TASKS) and "passed" not in proc.stdout.splitlines()[-1]
    for t in A.TASKS:
        mine = [ln for ln in failed if f"test_task_{t.slug}.py" in ln]
        names = [A.get_task(i).name for i in (t.id,) + t.needs]  # a task's tests may run the tasks it needs
        assert mine and all(any(f"NotImplementedError: {n}" in ln for n in names) for ln in mine), (t.name, mine)


# ----------------------------------------------------------------------------------------------
# command line and input errors


def test_cli_list_build_answers_csv(tmp_path, capsys):
    assert A.main(["list"]) == 0
    listed = capsys.readouterr().out
    for t in A.TASKS:
        assert re.search(rf"{re.escape(t.name)}\s+{t.points}\s", listed), t.name
    assert re.search(rf"total\s+{sum(t.points for t in A.TASKS)}\s+{sum(t.bonus for t in A.TASKS)}\s", listed)
    d = tmp_path / "one"
    assert A.main(["build", "--out", str(d), "--task", "5.1"]) == 0
    assert "1 task(s) to implement (5.1), 5 points" in capsys.readouterr().out
    csv_file = tmp_path / "scores.csv"
    assert A.main(["grade", str(d), str(d), "--task", "5.1", "--csv", str(csv_file)]) == 0
    out = capsys.readouterr().out
    assert "Task 5.1: distillation loss" in out and "0/5" in out and "score: 0/5 points + 0 bonus" in out
    assert csv_file.read_text().splitlines() == ["copy,Task 5.1,total", f"{d},0,0", f"{d},0,0"]
    ans = tmp_path / "answers"
    assert A.main(["build", "--out", str(ans), "--answers"]) == 0
    assert "0 task(s) to implement" in capsys.readouterr().out
    assert "NotImplementedError" not in (ans / "gsbnp" / "quant" / "attention.py").read_text()


@pytest.mark.parametrize("argv, match", [
    ([], None),
    (["build"], "--out"),
    (["build", "--out", "{tmp}/x", "--task", "9.9"], "unknown task '9.9'"),
    (["build", "--out", "{tmp}/x", "--task", "1.1", "--answers"], "cannot be combined"),
    (["build", "--out", "{tmp}/full"], "already exists"),
    (["grade", "{tmp}/nothing"], "not a student copy"),
    (["grade", "{tmp}/full", "--task", "0"], "unknown task '0'"),
    (["grade", "{tmp}/full", "{tmp}/full", "--json", "{tmp}/r.json"], "exactly one DIR"),
    (["grade", "{tmp}/full", "--timeout", "-1"], "timeout must be"),
])
def test_cli_errors_exit_2_without_traceback(tmp_path, capsys, argv, match):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "full" / "gsbnp").mkdir()
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
    empty = tmp_path / "empty"
    empty.mkdir()
    A.build(empty, ["1.1"])  # an existing empty folder is fine
    assert (empty / "gsbnp" / "functional" / "normalization.py").is_file()
    rows = C.compare({"a": [1.0, 2.0]}, {"a": [1.0, 2.0], "b": [True]})
    assert rows == [("a", None), ("b", "missing")]
    expected = "dx: relative error 2.2e-01 (expected < 1e-06); dgamma, dbeta correct"
    assert C.format_mismatches([("dx", "relative error 2.2e-01 (expected < 1e-06)"), ("dgamma", None),
                                ("dbeta", None)]) == expected
