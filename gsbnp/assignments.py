"""Course assignments built from the real package: ``gsbnp assignments build`` and ``grade``.

One source of truth (STYLE.md "Assignments"): the solution of every task sits in the package itself,
between two marker comments that name the task, e.g. in ``gsbnp/quant/attention.py``::

    g = _check_dout(dout, cache)
    # BEGIN SOLUTION Task 3.1: GSB attention backward
    ... the lines a student writes ...
    # END SOLUTION

The markers are comments, so the package behaves exactly as without them.

- ``build(out_dir)`` writes a *student copy*: the package with every region replaced by
  ``raise NotImplementedError("Task 3.1: GSB attention backward")`` (at the region's indentation),
  the project's tests that grade the tasks, and one notebook per group of tasks with "implement, run,
  expect" cells (``notebooks/assignment_<group>_*.ipynb``).
- ``grade(student_dir)`` runs those real tests against the copy (a pytest subprocess whose
  ``PYTHONPATH`` starts at the copy) and returns a per-task score; ``TASKS`` maps each task to its
  test node ids.

The command line (``gsbnp assignments ...``, wired to :func:`main`)::

    gsbnp assignments build --out DIR [--task 3.1 ...]   student copy (all tasks, or only those given)
    gsbnp assignments grade DIR [--task 3.1 ...]         per-task score; exit code 0 once graded
    gsbnp assignments list                               the tasks, where they live, their tests

Only the standard library is used here (the notebooks are written as plain nbformat-4 JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Task", "TASKS", "GROUPS", "find_regions", "build", "grade", "format_report", "main"]

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent
MANIFEST = ".gsbnp-assignments.json"

# A marker must be a whole comment line; the task id is "<group>.<number>".
_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION Task (?P<id>\d+\.\d+): (?P<title>\S.*?)\s*$")
_END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
_ANY_MARKER = re.compile(r"^[ \t]*# (BEGIN|END) SOLUTION\b")


@dataclass(frozen=True)
class Task:
    """One assignment task.

    Attributes:
        id: "<group>.<number>", e.g. "3.1"; the group picks the notebook.
        title: as written in the marker, e.g. "GSB attention backward".
        where: the file and function the student completes.
        tests: ``(node, token)`` pairs: ``node`` is ``tests/<file>.py::<test function>``; ``token``
            (or None) keeps only the parametrized cases whose id contains it as a ``-``-separated part.
    """

    id: str
    title: str
    where: str
    tests: tuple[tuple[str, str | None], ...]

    @property
    def name(self) -> str:
        """The name every stub raises with: ``"Task 3.1: GSB attention backward"``."""
        return f"Task {self.id}: {self.title}"

    @property
    def group(self) -> str:
        return self.id.split(".")[0]


TASKS: tuple[Task, ...] = (
    Task("1.1", "LayerNorm backward", "gsbnp/functional/normalization.py: layernorm_backward",
         (("tests/test_functional.py::test_layernorm", None),
          ("tests/test_nn.py::test_layer_gradients", "LayerNorm"))),
    Task("1.2", "attention backward", "gsbnp/functional/attention.py: attention_backward",
         (("tests/test_functional.py::test_attention", None),
          ("tests/test_nn.py::test_layer_gradients", "MHSA"))),
    Task("2.1", "sign STE", "gsbnp/quant/activations.py: _act_forward, the sign branch",
         (("tests/test_quant_activations.py::test_learnable_matches_surrogate", "sign"),
          ("tests/test_quant_activations.py::test_learnable_matches_paper_formula", "sign"))),
    Task("2.2", "type-A quantizer", "gsbnp/quant/activations.py: _act_forward, the round branch",
         (("tests/test_quant_activations.py::test_learnable_matches_surrogate", "round"),
          ("tests/test_quant_activations.py::test_learnable_matches_paper_formula", "round"))),
    Task("3.1", "GSB attention backward", "gsbnp/quant/attention.py: gsb_attention_backward",
         (("tests/test_quant_attention.py::test_gsb_matches_surrogate", None),
          ("tests/test_quant_attention.py::test_gsb_matches_paper_formula", None),
          ("tests/test_quant_attention.py::test_gsb_scale_grad_relations_and_empty_mask", None))),
    Task("3.2", "GSB value backward", "gsbnp/quant/value.py: gsb_value_backward",
         (("tests/test_quant_value.py::test_value_matches_surrogate", None),
          ("tests/test_quant_value.py::test_value_matches_paper_formula", None),
          ("tests/test_quant_value.py::test_value_scale_grad_relations", None),
          ("tests/test_quant_value.py::test_masked_vs_unmasked", None))),
    Task("4.1", "popcount matmul", "gsbnp/bitops/popcount.py: the post-processing of matmul_sign_sign "
         "and matmul_mask_sign",
         (("tests/test_bitops_popcount.py::test_sign_sign_equals_float_matmul", None),
          ("tests/test_bitops_popcount.py::test_mask_products_equal_float_matmul", None))),
    Task("5.1", "distillation loss", "gsbnp/train/losses.py: distillation_loss",
         (("tests/test_losses.py::test_distillation_gradients", None),
          ("tests/test_losses.py::test_eq36_hard_composition", None),
          ("tests/test_losses.py::test_hard_distillation_uses_teacher_argmax", None))),
)

# group -> (notebook file stem, heading, tutorial to read first)
GROUPS = {
    "1": ("assignment_1_float_layers", "The float transformer's backward passes",
          "tutorials/00_quickstart.ipynb and 04_gsb_step_by_step.ipynb (gradient checks)"),
    "2": ("assignment_2_binarizers", "Binarizers and their straight-through estimators",
          "tutorials/01_binarization_and_ste.ipynb"),
    "3": ("assignment_3_gsb", "Group Superposition Binarization: the backward passes",
          "tutorials/04_gsb_step_by_step.ipynb"),
    "4": ("assignment_4_bitops", "xnor / popcount instead of a matrix product",
          "tutorials/02_binary_linear_layer.ipynb and 06_cost.ipynb"),
    "5": ("assignment_5_training", "Distillation through the [dist] token",
          "tutorials/05_training.ipynb"),
}


def _task(task_id: str) -> Task:
    for t in TASKS:
        if t.id == task_id:
            return t
    raise ValueError(f"unknown task {task_id!r}; tasks are {', '.join(t.id for t in TASKS)}")


def _select(tasks) -> list[Task]:
    """None -> every task; otherwise the listed ids (strings), validated, in TASKS order."""
    if tasks is None:
        return list(TASKS)
    if isinstance(tasks, str):
        raise TypeError("tasks must be a list of task ids such as ['3.1'], not a string")
    ids = {str(_task(str(t)).id) for t in tasks}
    return [t for t in TASKS if t.id in ids]


# ----------------------------------------------------------------------------------------------
# solution regions
# ----------------------------------------------------------------------------------------------

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
        m = _BEGIN.match(line)
        if m:
            if open_ is not None:
                raise ValueError(f"{rel}:{i + 1}: BEGIN SOLUTION inside the region opened at line "
                                 f"{open_[0] + 1}")
            open_ = (i, m)
        elif _END.match(line):
            if open_ is None:
                raise ValueError(f"{rel}:{i + 1}: END SOLUTION without a BEGIN SOLUTION")
            b, bm = open_
            if not any(s.strip() and not s.strip().startswith("#") for s in lines[b + 1:i]):
                raise ValueError(f"{rel}:{b + 1}: the solution region of Task {bm.group('id')} is empty")
            regions.append(Region(rel, bm.group("id"), bm.group("title"), bm.group("indent"), b, i))
            open_ = None
        elif _ANY_MARKER.match(line):
            raise ValueError(f"{rel}:{i + 1}: malformed marker {line.strip()!r} (expected "
                             "'# BEGIN SOLUTION Task <id>: <title>' or '# END SOLUTION')")
    if open_ is not None:
        raise ValueError(f"{rel}:{open_[0] + 1}: BEGIN SOLUTION without an END SOLUTION")
    return regions


def _package_files(package_dir: Path):
    for p in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in p.parts or p.resolve() == Path(__file__).resolve():
            continue  # this file quotes the markers in its docs; it holds no region
        yield p


def find_regions(package_dir: str | os.PathLike | None = None) -> list[Region]:
    """Every solution region of the package, checked against ``TASKS``.

    Raises ValueError on a malformed or unbalanced marker, an unknown task id, a title that differs
    from ``TASKS``, or a task without any region.
    """
    package_dir = Path(package_dir) if package_dir is not None else PACKAGE_DIR
    regions = []
    for p in _package_files(package_dir):
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
                         "(a student copy has none: build from a source checkout of gsbnp)")
    return regions


def _stub_lines(region: Region, task: Task) -> list[str]:
    nb = GROUPS[task.group][0]
    return [f"{region.indent}# YOUR CODE HERE - {task.name} (notebooks/{nb}.ipynb)",
            f"{region.indent}raise NotImplementedError({json.dumps(task.name)})"]


def _strip(lines: list[str], regions: list[Region], stub_ids: set[str]) -> list[str]:
    """Stub the regions of ``stub_ids``; drop only the markers of the others."""
    out, last = [], 0
    for r in sorted(regions, key=lambda r: r.begin):
        out += lines[last:r.begin]
        if r.task_id in stub_ids:
            out += _stub_lines(r, _task(r.task_id))
        else:
            out += lines[r.begin + 1:r.end]
        last = r.end + 1
    return out + lines[last:]


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------

def _test_files() -> list[str]:
    files = {node.split("::")[0] for t in TASKS for node, _ in t.tests}
    return ["tests/conftest.py"] + sorted(files)


def build(out_dir, tasks=None, *, source_root=None) -> dict:
    """Write a student copy to ``out_dir`` (which must not exist or be empty).

    Args:
        out_dir: the folder to create.
        tasks: task ids to stub (default: all of ``TASKS``); the other regions keep their solution.
            ``tasks=()`` writes the solution itself (useful to check the graders).
        source_root: the checkout holding ``gsbnp/`` and ``tests/`` (default: this package's parent).
    Returns:
        the manifest written to ``out_dir/.gsbnp-assignments.json``: ``{"stubbed": [...], "tasks":
        {id: title}, "files": [...]}``.

    The copy is assembled in a temporary folder beside ``out_dir`` and renamed into place, so a failed
    build leaves nothing behind.
    """
    selected = _select(tasks)
    stub_ids = {t.id for t in selected}
    root = Path(source_root).resolve() if source_root is not None else SOURCE_ROOT
    package_dir = root / "gsbnp"
    missing = [f for f in _test_files() if not (root / f).is_file()]
    if not package_dir.is_dir() or missing:
        raise ValueError(f"building assignments needs a source checkout of gsbnp with its tests; "
                         f"{root} lacks {'gsbnp/' if not package_dir.is_dir() else ', '.join(missing)}")
    regions = find_regions(package_dir)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder; choose another --out")
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=parent))
    try:
        shutil.copytree(package_dir, tmp / "gsbnp",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
        by_file: dict[Path, list[Region]] = {}
        for r in regions:
            by_file.setdefault(r.path, []).append(r)
        for rel, regs in by_file.items():
            lines = (root / rel).read_text(encoding="utf-8").split("\n")
            (tmp / rel).write_text("\n".join(_strip(lines, regs, stub_ids)), encoding="utf-8")
        (tmp / "tests").mkdir()
        for f in _test_files():
            shutil.copy2(root / f, tmp / f)
        (tmp / "pytest.ini").write_text("[pytest]\ntestpaths = tests\naddopts = -ra\n", encoding="utf-8")
        (tmp / "notebooks").mkdir()
        for g in sorted(GROUPS):  # every notebook; a solved task is marked as such in its heading
            nb = _notebook(g, stub_ids)
            (tmp / "notebooks" / f"{GROUPS[g][0]}.ipynb").write_text(
                json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_readme(selected), encoding="utf-8")
        manifest = {"format": "gsbnp-assignments", "version": 1, "stubbed": [t.id for t in selected],
                    "tasks": {t.id: t.title for t in TASKS},
                    "files": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above): os.replace needs the name free
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _readme(selected: list[Task]) -> str:
    rows = "\n".join(f"| {t.id} | {t.title} | `{t.where}` |" for t in selected) or "| - | (none) | |"
    return textwrap.dedent("""\
        # gsbnp course assignments

        This folder is a copy of the gsbnp package in which the solution of each task below was replaced
        by `raise NotImplementedError("Task <id>: <title>")`. Implement them in place; the notebooks in
        `notebooks/` walk through each task (implement, run, expect).

        | task | title | where |
        |---|---|---|
        {rows}

        Grade your work with the real tests of the project (run from this folder):

            gsbnp assignments grade .            # every task
            gsbnp assignments grade . --task 3.1 # one task
            python -m gsbnp.assignments grade .  # the same without the console script

        or, inside Python, `from gsbnp.assignments import grade, format_report`. Run the tests
        yourself with `python -m pytest` from this folder (the copy's `gsbnp` is imported first).
        """).replace("{rows}", rows)


# ----------------------------------------------------------------------------------------------
# notebooks (plain nbformat 4.5 JSON)
# ----------------------------------------------------------------------------------------------

_SETUP = """\
# Use the student copy of gsbnp that this notebook belongs to (the folder above notebooks/).
import os, sys
ROOT = os.path.abspath("..")
sys.path.insert(0, ROOT)
import numpy as np
import gsbnp
assert os.path.abspath(gsbnp.__file__).startswith(ROOT), f"imported {gsbnp.__file__}, not the copy in {ROOT}"
from gsbnp.assignments import grade, format_report
from gsbnp.gradcheck import check_surrogate, numerical_gradient, rel_error
print("gsbnp from", os.path.dirname(gsbnp.__file__))"""

# Per task: (implement markdown, run code, expect markdown). Code runs against the real API.
_CELLS: dict[str, tuple[str, str, str]] = {
    "1.1": (
        """\
Open `gsbnp/functional/normalization.py` and complete `layernorm_backward(dout, cache)`.
The forward computed, over the last axis (D features),
`x_hat = (x - mean) * rstd`, `rstd = 1 / sqrt(var + eps)`, `y = x_hat * weight + bias` and cached
`(x_hat, rstd, weight)`. Return `dx (..., D)`, `dweight (D,)`, `dbias (D,)`:

- `dweight`, `dbias`: sums of `dout * x_hat` and `dout` over every leading axis;
- with `g = dout * weight`: `dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))`, means over the
  last axis. Derive it: `x_hat` depends on every feature through the mean and the variance.""",
        """\
import gsbnp.functional as F
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 5, 8)) * 3 + 1
w, b = rng.standard_normal(8), rng.standard_normal(8)
y, cache = F.layernorm_forward(x, w, b)
dout = rng.standard_normal(y.shape)
dx, dw, db = F.layernorm_backward(dout, cache)
f = lambda _: F.layernorm_forward(x, w, b)[0]
for name, arr, ana in (("x", x, dx), ("weight", w, dw), ("bias", b, db)):
    print(f"d{name:6s} rel error {rel_error(ana, numerical_gradient(f, arr, dout)):.1e}")""",
        """\
Every relative error below `1e-6` (typically around `1e-10`). Before you implement the task the run
cell stops with `NotImplementedError: Task 1.1: LayerNorm backward`."""),
    "1.2": (
        """\
Open `gsbnp/functional/attention.py` and complete `attention_backward(dout, cache)`. The forward was

    S = q_h k_h^T * scale          (B, H, N, N), scale = 1 / sqrt(Dh)
    A = softmax(S)                 rows sum to 1
    out = merge(A @ v_h)           (B, N, D)

and the cache holds `qh, kh, vh` (B, H, N, Dh), `A` and `scale`. Go backwards one line at a time:
`split_heads(dout, H)` gives `dY`; `dA = dY v^T`, `dv = A^T dY`; `softmax_backward(dA, A)` gives `dS`
(times `scale`); `dq = dS k`, `dk = dS^T q`. Return `merge_heads` of `dq, dk, dv`.""",
        """\
import gsbnp.functional as F
rng = np.random.default_rng(1)
q, k, v = (rng.standard_normal((2, 5, 8)) for _ in range(3))
out, cache = F.attention_forward(q, k, v, 2)
dout = rng.standard_normal(out.shape)
grads = F.attention_backward(dout, cache)
f = lambda _: F.attention_forward(q, k, v, 2)[0]
for name, arr, ana in zip("qkv", (q, k, v), grads):
    print(f"d{name} rel error {rel_error(ana, numerical_gradient(f, arr, dout)):.1e}")""",
        """\
`dq`, `dk`, `dv` all below `1e-6`. A transposition bug shows up as an error near 1 (B, N, D, H are
all different on purpose)."""),
    "2.1": (
        """\
Open `gsbnp/quant/activations.py`, function `_act_forward`, the branch `kind == "sign"` (used by
`act_sign_forward`, the learnable type-B quantizer of Eqs. 4-5). `q = (x + bias) / alpha` is given.
Set two arrays of q's shape:

- `value = sign(q)` with `sign(0) = +1` (Eq. 4) - the helper `_sign(q)` does exactly that;
- `window`, the boolean STE window of Eq. 5: `|q| <= 1` (inclusive).

The shared backward then applies the straight-through estimator: `dx = g * window` and
`dalpha = reduce(g * (value - q * window))` (Eq. 29). Your window *is* the pseudo-gradient.""",
        """\
from gsbnp.quant import act_sign_forward, act_sign_backward
x = np.array([-1.5, -1.0, -0.25, 0.0, 0.25, 1.0, 1.5])
out, cache = act_sign_forward(x, 1.0, None)
dx, dalpha, _ = act_sign_backward(np.ones_like(x), cache)
print("x_b =", out)
print("dx  =", dx)
rng = np.random.default_rng(2)
xs, bias = rng.standard_normal((2, 5, 8)), rng.standard_normal(8) * 0.1
err_x, err_bias = check_surrogate(lambda: act_sign_forward(xs, 0.7, bias, scale_grad="sum"),
                                  lambda g, c: act_sign_backward(g, c)[::2], [xs, bias], rng=rng)
print("frozen-residual check: dx", f"{err_x:.1e}", " dbias", f"{err_bias:.1e}")""",
        """\
`x_b = [-1 -1 -1 1 1 1 1]` (sign(0) = +1) and `dx = [0 1 1 1 1 1 0]` (the window includes |q| = 1);
both frozen-residual errors below `1e-8`."""),
    "2.2": (
        """\
Same function `_act_forward` in `gsbnp/quant/activations.py`, the `else` branch: the learnable
type-A quantizer (`act_round_forward`, Eqs. 3 and 5) used after GELU and on attention maps. With
`q = (x + bias) / alpha` set

- `value = clip(round(q), 0, 1)` - NumPy's `np.round` rounds half to even, so `q = 0.5 -> 0`
  exactly as Eq. 3 ("0 if x <= 0.5");
- `window = 0 <= q <= 1` (inclusive: the clip window of Eq. 5).""",
        """\
from gsbnp.quant import act_round_forward, act_round_backward
x = np.array([-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
out, cache = act_round_forward(x, 1.0, None)
dx, dalpha, _ = act_round_backward(np.ones_like(x), cache)
print("x_b =", out)
print("dx  =", dx)""",
        """\
`x_b = [0 0 0 0 1 1 1]` (0.5 rounds to 0) and `dx = [0 1 1 1 1 1 0]`."""),
    "3.1": (
        """\
Open `gsbnp/quant/attention.py` and complete `gsb_attention_backward(dout, cache)` (Eqs. 14-20).
The forward built `A_gsb = alpha_0 A_bin + sum_i alpha_i M_i` and cached (see its docstring)
`A_bin`, `window0` (`0 < A_ret/alpha_0 < 1`), `u = A_ret / alpha_0`, the masks `M` (k, B, H, N, N),
their windows `windows` (`0 < A_ret - Theta_i < 1`), `alphas`, `k`, `abin`, `scale_grad`, `dtype`.
Return `(dA_ret, dalphas)`:

    dA_ret   = g * (1{0 < u < 1} + sum_i alpha_i 1{0 < A_ret - Theta_i < 1})        Eqs. 16-20
    dalpha_0 = reduce(g * (A_bin - u * 1{0 < u < 1}))                                Eq. 14
    dalpha_i = reduce(g * M_i)                                                       Eq. 15

`reduce` is the mean over all elements for `scale_grad="mean"`, the plain sum for `"sum"`; for
`"sqrt"` divide by `sqrt(numel)` (alpha_0) and `sqrt(|M_i|)` (alpha_i, zero counts guarded) - use
`_scale_grad_factor`. With `abin="mask"` alpha_0 acts like a mask scale: its dA_ret term is
`alpha_0 * window0` and `dalpha_0 = reduce(g * A_bin)`. No Python loop over i.""",
        """\
from gsbnp.quant import gsb_attention_forward, gsb_attention_backward
rng = np.random.default_rng(3)
A_ret = rng.dirichlet(np.ones(5), size=(2, 2, 5))          # (B, H, N, N) rows of a softmax
alphas = np.array([0.3, 0.05, 0.1])
err_A, err_alphas = check_surrogate(lambda: gsb_attention_forward(A_ret, alphas, 2, scale_grad="sum"),
                                    gsb_attention_backward, [A_ret, alphas], rng=rng)
print("dA_ret  rel error", f"{err_A:.1e}")
print("dalphas rel error", f"{err_alphas:.1e}")""",
        """\
Both errors below `1e-8`: with the thresholds and windows frozen at the check point, the numerical
derivative of the surrogate *is* the straight-through gradient."""),
    "3.2": (
        """\
Open `gsbnp/quant/value.py` and complete `gsb_value_backward(dout, cache)` (Eqs. 28-32). The forward
built `V_gsb = sum_i beta_i sign(V0) M_i` (M_0 = 1) and cached `M` (k+1, B, H, N, Dh), `window`
(`|V0/beta_i| <= 1` and `M_i`), `q` (`V0 / beta_i`, stacked), `sign`, `k`, `v_grad`, `scale_grad`,
`dtype`. Return `(dV0, dbetas)`:

    dV0     = g * sum_i window_i                                   v_grad="masked" (Eq. 32)
              + g * (number of masks that exclude the entry)       v_grad="unmasked" adds this
    dbeta_i = reduce(g * (sign * M_i - q_i * window_i))            Eqs. 28-29

`reduce`: mean over all elements ("mean"), sum ("sum"), or for "sqrt" divide dbeta_0 by
`sqrt(numel)` and dbeta_i (i >= 1) by `sqrt(|M_i|)` (guard zero counts).""",
        """\
from gsbnp.quant import gsb_value_forward, gsb_value_backward
rng = np.random.default_rng(4)
V0 = rng.standard_normal((2, 2, 5, 4))
betas = np.array([0.8, 0.4, 0.2])
err_V0, err_betas = check_surrogate(lambda: gsb_value_forward(V0, betas, 2, scale_grad="sum"),
                                    gsb_value_backward, [V0, betas], rng=rng)
print("dV0    rel error", f"{err_V0:.1e}")
print("dbetas rel error", f"{err_betas:.1e}")""",
        """\
Both errors below `1e-8`."""),
    "4.1": (
        """\
Open `gsbnp/bitops/popcount.py`. The kernel already computes, for every output entry, the number of
set bits of `a xor b` (for `matmul_sign_sign`) or of `a and b` (for `matmul_mask_sign`) over the K
packed positions, and hands them to the local `post(counts, o, extra)` function, which must write
the integer product into `o` (int32, in place):

- ±1 x ±1 (Fig. 3): a position agrees (product +1) unless the bits differ, so
  `o = K - 2 * popcount(a xor b)`;
- {0,1} x ±1 (Fig. 2): only positions with `a = 1` count, `+1` where `b` is set, `-1` elsewhere:
  `o = 2 * popcount(a and b) - popcount(a)`; `popcount(a)` of each row arrives as `extra`.

Write into `o` with `out=` arguments or `o[...] = ...`; `counts` is a small unsigned type.""",
        """\
from gsbnp.bitops import matmul_mask_sign, matmul_sign_sign, pack_mask, pack_signs
rng = np.random.default_rng(5)
a = rng.choice([-1, 1], size=(3, 70)); w = rng.choice([-1, 1], size=(4, 70))
m = rng.integers(0, 2, size=(3, 70))
print("±1 x ±1 :", np.array_equal(matmul_sign_sign(pack_signs(a), pack_signs(w)), a @ w.T))
print("0/1 x ±1:", np.array_equal(matmul_mask_sign(pack_mask(m), pack_signs(w)), m @ w.T))""",
        """\
`True` twice: the popcount products equal the float matrix products exactly (K = 70 also checks the
zero padding of the last 64-bit word)."""),
    "5.1": (
        """\
Open `gsbnp/train/losses.py` and complete `distillation_loss` (Eq. 36) after the input checks:

    L = (1 - lam) * CE(cls_logits, target) + lam * L_dis(dist_logits, teacher_logits)

- `CE` is `cross_entropy(logits, target, label_smoothing=...)` (returns the loss and dlogits);
- `kind="hard"`: `L_dis = CE(dist_logits, argmax(teacher_logits))` (no smoothing of the teacher's labels);
- `kind="soft"`: `L_dis, ddist = soft_distillation(dist_logits, teacher_logits, tau)`.

Return `(loss, dcls_logits, ddist_logits)` with the gradients scaled by `1 - lam` and `lam`.""",
        """\
from gsbnp.train.losses import distillation_loss
rng = np.random.default_rng(6)
cls, dist, teacher = rng.standard_normal((3, 5)), rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
y = np.array([4, 1, 0])
for kind in ("hard", "soft"):
    L = lambda c, d: distillation_loss(c, d, y, teacher, lam=0.3, kind=kind, tau=2.0)
    loss, dcls, ddist = L(cls, dist)
    num_c = numerical_gradient(lambda z: L(z, dist)[0], cls)
    num_d = numerical_gradient(lambda z: L(cls, z)[0], dist)
    print(f"{kind}: loss {loss:.4f}  dcls err {rel_error(dcls, num_c):.1e}  ddist err {rel_error(ddist, num_d):.1e}")""",  # noqa: E501
        """\
Both gradient errors below `1e-6` for "hard" and "soft"."""),
}


def _cell(kind: str, text: str, idx: int) -> dict:
    cell = {"cell_type": kind, "id": f"cell-{idx}", "metadata": {}, "source": text.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _notebook(group: str, stub_ids: set[str]) -> dict:
    stem, heading, tutorial = GROUPS[group]
    tasks = [t for t in TASKS if t.group == group]
    cells = [("markdown", f"# Assignment {group}: {heading}\n\nRead {tutorial} first. For every task: "
              "**implement** the marked function in this copy of gsbnp, **run** the check cell, compare "
              "with what to **expect**, then grade the task with the project's own tests."),
             ("code", _SETUP)]
    for t in tasks:
        implement, run, expect = _CELLS[t.id]
        state = "to implement" if t.id in stub_ids else "already solved in this copy"
        cells += [("markdown", f"## {t.name} ({state})\n\n**Implement** ({t.where})\n\n{implement}"),
                  ("markdown", "**Run**"), ("code", run),
                  ("markdown", f"**Expect**\n\n{expect}"),
                  ("code", f"print(format_report(grade(ROOT, tasks=[{t.id!r}])))")]
    return {"cells": [_cell(k, s, i) for i, (k, s) in enumerate(cells)],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


# ----------------------------------------------------------------------------------------------
# grade
# ----------------------------------------------------------------------------------------------

_PLUGIN = '''\
"""pytest plugin of gsbnp.assignments.grade: one JSON record per test and where gsbnp came from."""
import json, os

_results = {}


def pytest_runtest_logreport(report):
    rec = _results.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        msg = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1:]
        rec["outcome"] = "failed" if report.when == "call" else "error"
        rec["message"] = msg if isinstance(msg, str) else " ".join(msg)
    elif report.skipped and rec["outcome"] == "passed":
        rec["outcome"] = "skipped"


def pytest_collectreport(report):
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        msg = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1]
        _results[report.nodeid] = {"outcome": "error", "message": "collection failed: " + msg}


def pytest_sessionfinish(session):
    import gsbnp
    with open(os.environ["GSBNP_GRADE_OUT"], "w") as f:
        json.dump({"gsbnp": os.path.abspath(gsbnp.__file__), "results": _results}, f)
'''


def _matches(nodeid: str, node: str, token: str | None) -> bool:
    if nodeid == node:
        return token is None
    if not nodeid.startswith(node + "["):
        return False
    return token is None or token in nodeid[len(node) + 1:-1].split("-")


def _first_line(msg: str) -> str:
    """The first non-empty line of an error message, whitespace collapsed, at most 200 characters."""
    line = next((ln for ln in msg.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    return line if len(line) <= 200 else line[:197] + "..."


def grade(student_dir, tasks=None, *, timeout: float = 600.0) -> dict:
    """Run the real tests of each task against the copy in ``student_dir``.

    Args:
        student_dir: a folder holding ``gsbnp/`` and ``tests/`` (a student copy, or a checkout).
        tasks: task ids to grade (default: all).
        timeout: seconds for the pytest run.
    Returns:
        ``{task_id: {"name", "title", "passed", "total", "score", "ok", "failures"}}`` in task order;
        ``failures`` lists ``{"test": node id, "message": first line of the error}``; ``score`` is
        ``passed / total``; ``ok`` is True when every test of the task passed.
    """
    selected = _select(tasks)
    root = Path(student_dir).resolve()
    if not (root / "gsbnp" / "__init__.py").is_file() or not (root / "tests").is_dir():
        raise ValueError(f"{student_dir} is not a student copy: it needs gsbnp/ and tests/ "
                         "(write one with `gsbnp assignments build --out DIR`)")
    nodes = sorted({node for t in selected for node, _ in t.tests})
    present = [n for n in nodes if (root / n.split("::")[0]).is_file()]
    raw: dict = {}
    if present:
        with tempfile.TemporaryDirectory(prefix="gsbnp-grade-") as tmp:
            (Path(tmp) / "_gsbnp_grade_plugin.py").write_text(_PLUGIN, encoding="utf-8")
            out_json = Path(tmp) / "results.json"
            env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
            env["PYTHONPATH"] = os.pathsep.join([str(root), tmp] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                  else []))
            env["GSBNP_GRADE_OUT"] = str(out_json)
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, "1")  # the graded tests use tiny matrices: threads only contend
            cmd = [sys.executable, "-m", "pytest", "-q", "--no-header", "--tb=line", "-p", "no:cacheprovider",
                   "-p", "no:randomly", "-p", "_gsbnp_grade_plugin", "--rootdir", str(root),
                   "-o", "addopts=", "-o", "testpaths=tests", *present]
            ini = root / "pytest.ini"
            if ini.is_file():
                cmd[3:3] = ["-c", str(ini)]
            proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
            if not out_json.is_file():
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise RuntimeError(f"grading could not run pytest in {root} (exit code {proc.returncode}):\n{tail}")
            data = json.loads(out_json.read_text(encoding="utf-8"))
        if not Path(data["gsbnp"]).is_relative_to(root):
            raise RuntimeError(f"the tests imported gsbnp from {data['gsbnp']}, not from {root}")
        raw = data["results"]
    report = {}
    for t in selected:
        passed, total, failures = 0, 0, []
        for node, token in t.tests:
            hits = [(nid, r) for nid, r in raw.items() if _matches(nid, node, token)]
            if not hits:
                file_err = raw.get(node.split("::")[0])
                why = file_err["message"] if file_err else "test not found (missing file or renamed test)"
                total += 1
                failures.append({"test": node, "message": _first_line(why)})
                continue
            for nid, r in sorted(hits):
                total += 1
                if r["outcome"] == "passed":
                    passed += 1
                else:
                    failures.append({"test": nid, "message": _first_line(r["message"] or r["outcome"])})
        report[t.id] = {"name": t.name, "title": t.title, "passed": passed, "total": total,
                        "score": passed / total if total else 0.0, "ok": total > 0 and passed == total,
                        "failures": failures}
    return report


def format_report(report: dict) -> str:
    """The per-task table printed by ``gsbnp assignments grade``."""
    if not report:
        return "no tasks graded"
    w = max(len(r["name"]) for r in report.values())
    lines = []
    for r in report.values():
        status = "PASS" if r["ok"] else "FAIL"
        line = f"{r['name']:<{w}}  {r['passed']:>3}/{r['total']:<3} tests  {status}"
        if r["failures"]:
            line += f"  ({r['failures'][0]['message']})"
        lines.append(line)
    ok = sum(r["ok"] for r in report.values())
    lines.append(f"score: {ok}/{len(report)} tasks complete, "
                 f"{sum(r['passed'] for r in report.values())}/{sum(r['total'] for r in report.values())} tests")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="gsbnp assignments", description="Course assignments built from gsbnp's own code.")
    sub = ap.add_subparsers(dest="action", parser_class=_Parser)
    p = sub.add_parser("build", help="write a student copy (package with stubs, tests, notebooks)")
    p.add_argument("--out", required=True, help="folder to create (must not exist or be empty)")
    p.add_argument("--task", action="append", metavar="ID", help="stub only this task (repeatable)")
    p = sub.add_parser("grade", help="run the real tests against a student copy, per-task score")
    p.add_argument("dir", help="the student copy")
    p.add_argument("--task", action="append", metavar="ID", help="grade only this task (repeatable)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    sub.add_parser("list", help="the tasks, where they live and their tests")
    return ap


def main(argv=None) -> int:
    """``gsbnp assignments build|grade|list``; returns the exit code (2 on an error in the input)."""
    try:
        args = _parser().parse_args(argv)
        if args.action is None:
            _parser().print_help()
            return 2
        if args.action == "list":
            for t in TASKS:
                print(f"{t.name}\n    {t.where}")
                for node, token in t.tests:
                    print(f"    {node}" + (f"  [{token}]" if token else ""))
            return 0
        if args.action == "build":
            m = build(args.out, args.task)
            print(f"wrote {args.out}: {len(m['stubbed'])} task(s) to implement "
                  f"({', '.join(m['stubbed']) or 'none'}); grade with `gsbnp assignments grade {args.out}`")
            return 0
        report = grade(args.dir, args.task)
        print(format_report(report))
        if args.json:
            from .nn.module import atomic_write_bytes
            atomic_write_bytes(args.json, (json.dumps(report, indent=2) + "\n").encode())
        return 0
    except (ValueError, TypeError, OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"gsbnp: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
