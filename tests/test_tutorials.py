"""Execute every tutorial notebook top to bottom and check its figures.

The assignment notebooks are run by tests/test_assignments.py.

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
        assert "CONVEN" + "TIONS.md" not in path.with_suffix(".py").read_text(encoding="utf-8"), \
            f"{path.stem}.py cites a file outside the repository " \
            "(docs/conventions.md#how-gsbnp-reads-the-paper is the project's)"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_runs_top_to_bottom(path, kernel_env, timings):
    before = _files(TUTORIALS)
    t0 = time.perf_counter()
    nb = _execute(path, check_figures=True)  # raises CellExecutionError (cell and traceback) on any error
    seconds = time.perf_counter() - t0
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    report = _text(code[-1])
    assert report.startswith("figures checked:"), report
    figures = int(report.split(":")[1])
    timings.append((path.stem, seconds, figures))
    assert figures >= 1, f"{path.name} drew no figure"
    left = sorted(p.name for p in kernel_env.iterdir())
    assert not left, f"{path.name} left files in the temporary folder: {left}"
    assert _files(TUTORIALS) == before, f"{path.name} wrote into tutorials/: {_files(TUTORIALS) ^ before}"
    assert seconds < NOTEBOOK_BUDGET_S, f"{path.name} took {seconds:.0f} s (budget {NOTEBOOK_BUDGET_S:.0f} s)"


def _tiny_notebook(folder: Path, plot: str) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a figure"),
                nbformat.v4.new_code_cell("import numpy as np\nimport matplotlib.pyplot as plt"),
                nbformat.v4.new_code_cell(plot)]
    path = folder / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


GOOD_PLOT = """\
fig, (a, b) = plt.subplots(1, 2)
a.plot([0, 1], [0, 1], label="up"); a.plot([0, 1], [1, 0], label="down"); a.legend()
a.set(title="two lines", xlabel="x", ylabel="y")
im = b.imshow(np.eye(3)); fig.colorbar(im, ax=b); b.set(title="an image", xlabel="column", ylabel="row")
plt.show()"""


@pytest.mark.slow
def test_figure_checker_passes_a_readable_figure(tmp_path, kernel_env):
    nb = _execute(_tiny_notebook(tmp_path, GOOD_PLOT), check_figures=True)
    assert _text(nb.cells[-1]).strip() == "figures checked: 1"


@pytest.mark.slow
def test_figure_checker_fails_a_notebook_with_an_unlabelled_axis(tmp_path, kernel_env):
    from nbclient.exceptions import CellExecutionError
    bad = GOOD_PLOT.replace(', ylabel="y"', "")
    with pytest.raises(CellExecutionError) as err:
        _execute(_tiny_notebook(tmp_path, bad), check_figures=True)
    assert err.value.ename == "FigureCheckError"
    assert err.value.evalue == ("tiny.ipynb, cell 2 (fig, (a, b) = plt.subplots(1, 2)): unreadable figure\n"
                                "  figure 1: Axes 0 ('two lines'): no y label")


def _draw(plt, np, *, title=True, xlabel=True, colorbar=True, legend=True, grid=False):
    """The figure of GOOD_PLOT, with one of its readability features switched off."""
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], [0, 1], label="up")
    a.plot([0, 1], [1, 0], label="down")
    if legend:
        a.legend()
    a.set(xlabel="x", ylabel="y", **({"title": "two lines"} if title else {}))
    im = b.imshow(np.eye(3))
    if colorbar:
        fig.colorbar(im, ax=b)
    b.set(title="an image", ylabel="row", **({"xlabel": "column"} if xlabel else {}))
    if grid:
        b.grid(True)
    return fig


@pytest.mark.parametrize("switch, problem", [
    ({"title": False}, "Axes 0: no title"),
    ({"xlabel": False}, "Axes 1 ('an image'): no x label"),
    ({"colorbar": False}, "Axes 1 ('an image'): an image (AxesImage) without a colorbar"),
    ({"legend": False}, "Axes 0 ('two lines'): 2 labelled series (up, down) but no legend"),
    ({"grid": True}, "Axes 1 ('an image'): grid lines drawn over an image"),
])
def test_figure_checker_names_each_rule(switch, problem):
    _need("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    spec = importlib.util.spec_from_file_location("figure_checker", CHECKER)
    fc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fc)
    plt.close("all")
    assert fc.figure_problems(_draw(plt, np)) == []
    assert fc.check_open_figures("here") == 1 and plt.get_fignums() == []
    assert fc.figure_problems(_draw(plt, np, **switch)) == [problem]
    with pytest.raises(fc.FigureCheckError, match="here: unreadable figure"):
        fc.check_open_figures("here")
    assert plt.get_fignums() == []  # closed even when the check fails
    # a shared colorbar covers thumbnails drawn with the same colormap and range; axis-off thumbnails
    # may use the figure's suptitle
    fig, axes = plt.subplots(1, 3)
    for ax in axes:
        im = ax.imshow(np.eye(2), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.colorbar(im, ax=axes)
    fig.suptitle("thumbnails")
    assert fc.figure_problems(fig) == []
    axes[0].images[0].set_clim(0, 2)
    assert fc.figure_problems(fig) == ["Axes 0: an image (AxesImage) without a colorbar"]
    plt.close("all")
