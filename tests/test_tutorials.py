"""Execute every tutorial notebook top to bottom (the assignment notebooks: tests/test_assignments.py).

Each tutorial ``tutorials/NN_name.py`` is a jupytext percent-format source; the ``.ipynb`` beside it is
generated from it (``jupytext --to ipynb tutorials/NN_name.py``) and must agree with it. Notebooks run
in full mode in a real Jupyter kernel (nbclient) with matplotlib's Agg backend; after every code cell a
hidden cell runs ``tests/figure_checker.py`` on the open figures (title, axis labels, colorbars,
legends, no grid over images) and closes them, so an unreadable figure fails the notebook. The kernel
gets a fresh, empty ``TMPDIR`` that must still be empty afterwards, and ``tutorials/`` must hold the
same files as before. Per-notebook times are printed at the end of the module.

Needs the ``tutorials`` extra (nbformat, nbclient, ipykernel, matplotlib, jupytext): without it these
tests are skipped, except under CI (``CI`` set), where a missing extra is a failure.
"""

import contextlib
import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
CHECKER = Path(__file__).resolve().with_name("figure_checker.py")
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_quickstart", "01_binarization_and_ste", "02_binary_linear_layer",
            "03_why_binarized_attention_fails", "04_gsb_step_by_step", "05_training", "06_cost"]
CELL_TIMEOUT = 300  # seconds per cell
# Each notebook should run in well under a minute (all seven < 6 min on the 2-core CI machine); the
# limit is looser so that a loaded machine does not fail the test, and can be set for a slower one.
NOTEBOOK_BUDGET_S = float(os.environ.get("GSBNP_TUTORIAL_BUDGET_S", "150"))

# Injected before the first cell: load the checker by path (the kernel does not import the tests).
SETUP_CELL = f"""\
import importlib.util as _gsbnp_util
_gsbnp_spec = _gsbnp_util.spec_from_file_location("_gsbnp_figure_checker", {str(CHECKER)!r})
_gsbnp_fc = _gsbnp_util.module_from_spec(_gsbnp_spec)
_gsbnp_spec.loader.exec_module(_gsbnp_fc)
_gsbnp_figures = []"""
CHECK_CELL = "_gsbnp_figures.append(_gsbnp_fc.check_open_figures({where!r}))"
REPORT_CELL = "print('figures checked:', sum(_gsbnp_figures))"


def _need(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"the tutorials extra is not installed (missing {', '.join(missing)}): pip install -e '.[tutorials]'"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def kernel_env(monkeypatch, tmp_path):
    """Environment inherited by the kernels: full mode, Agg, this checkout importable, a fresh TMPDIR.

    Returns the kernel's temporary folder (empty)."""
    _need("nbformat", "nbclient", "ipykernel", "matplotlib", "jupytext")
    monkeypatch.delenv("GSBNP_TUTORIAL_SMALL", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::DeprecationWarning")
    # The models are tiny: BLAS threads only add contention on a loaded 2-core machine, so each kernel
    # uses one.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    tmp = tmp_path / "kernel-tmp"
    tmp.mkdir()
    for var in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(var, str(tmp))
    return tmp


@pytest.fixture(scope="module")
def timings(request):
    """Collects (notebook, seconds, figures) and prints the table after the module's tests."""
    rows = []
    yield rows
    if rows:
        lines = [f"{name:36s} {t:6.1f} s  {n:3d} figures" for name, t, n in rows]
        lines.append(f"{'total':36s} {sum(t for _, t, _ in rows):6.1f} s")
        plugins = request.config.pluginmanager
        reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
        write = reporter.write_line if reporter is not None else print
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            write("")
            write("tutorial run times (full mode):")
            for line in lines:
                write("  " + line)


def _execute(path: Path, *, allow_errors: bool = False, check_figures: bool = False):
    """Run the notebook at ``path`` in a fresh kernel (cwd: its folder) and return it with outputs.

    With ``check_figures`` the figure checker runs after every code cell (hidden cells added to the
    executed copy), and a last cell prints how many figures it checked."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    if check_figures:
        cells = [nbformat.v4.new_code_cell(SETUP_CELL)]
        for i, cell in enumerate(nb.cells):
            cells.append(cell)
            if cell.cell_type == "code":
                first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")[:60]
                cells.append(nbformat.v4.new_code_cell(CHECK_CELL.format(where=f"{path.name}, cell {i} ({first})")))
        cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
        nb.cells = cells
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def _text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out.append(o["text"])
        elif o["output_type"] == "error":
            out.append(f"{o['ename']}: {o['evalue']}")
        elif "text/plain" in o.get("data", {}):
            out.append(o["data"]["text/plain"])
    return "".join(out)


def _files(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*") if ".ipynb_checkpoints" not in p.parts}


def test_each_notebook_is_generated_from_its_py_source():
    _need("nbformat", "jupytext")
    import jupytext
    assert [p.stem for p in NOTEBOOKS] == EXPECTED
    assert sorted(p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.py")) == EXPECTED
    for path in NOTEBOOKS:
        src = jupytext.read(path.with_suffix(".py"))
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert [(c.cell_type, c.source) for c in src.cells] == \
            [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]], \
            f"{path.name} differs from {path.stem}.py: run jupytext --to ipynb tutorials/{path.stem}.py"
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), \
            f"{path.name} has outputs: regenerate it with jupytext --to ipynb tutorials/{path.stem}.py"
        assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith(
            f"# {path.stem[:2]} · "), f"{path.name} must open with a markdown title '# {path.stem[:2]} · ...'"
        assert "CONVENTIONS.md" not in path.with_suffix(".py").read_text(encoding="utf-8"), \
            f"{path.stem}.py cites a file outside the repository (docs/conventions.md is the project's)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_runs_top_to_bottom(path, kernel_env, timings):
    before = _files(TUTORIALS)
    t0 = time.perf_counter()
    nb = _execute(path, check_figures=True)  # raises CellExecutionError (cell and traceback) on any error
    seconds = time.perf_counter() - t0
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 1, f"{path.name} drew no figure"
