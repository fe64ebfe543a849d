"""The task table of the course assignments: what each task is, where it lives, what it is worth.

A task's solution sits in the package between ``# BEGIN SOLUTION Task <id>: <title>`` and
``# END SOLUTION`` (see :mod:`gsbnp.assignments.regions`); its instructor checks are
``gsbnp/assignments/checks.py``; its notebook cells are ``student/notebooks/assignment_<group>.py``; its
public tests are ``student/tests/test_task_<group>_<n>.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GROUPS", "TASKS", "Task", "get_task", "select"]


@dataclass(frozen=True)
class Task:
    """One assignment task.

    Attributes:
        id: "<group>.<number>", e.g. "3.1"; the group picks the notebook.
        title: as written in the marker, e.g. "GSB attention backward".
        where: the file and function(s) the student completes.
        points: what the paper-default behaviour is worth (weighted by difficulty).
        minutes: the time a student typically needs, for the syllabus.
        tutorials: number prefixes of the tutorials that go with the task (``"04"`` -> tutorials/04_*).
        bonus: extra points for the options beyond the paper default (0: no bonus).
        leaks: code fragments equivalent to the solution (besides its own lines) that must not appear
            anywhere in the student copy; whitespace is ignored when they are searched.
        needs: tasks whose code this task's public tests run (do those first).
        also: ``(file, first line, last line)`` spans elsewhere in the package that repeat the task's
            derivation (found by their stripped text, both lines included). The student copy stubs them
            inside YOUR CODE markers like a region, so that they give nothing away; grading reads only
            the marked regions (these spans keep the instructor's code there).
        given: lines of the solution that the copy may show because the task hands them out (a hint
            of the docstring, a call of the given API that a neighbouring function makes too).
    """

    id: str
    title: str
    where: str
    points: int
    minutes: int
    tutorials: tuple[str, ...]
    bonus: int = 0
    leaks: tuple[str, ...] = ()
    given: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    also: tuple[tuple[str, str, str], ...] = ()

    @property
    def name(self) -> str:
        """The name every stub raises with: ``"Task 3.1: GSB attention backward"``."""
        return f"Task {self.id}: {self.title}"

    @property
    def group(self) -> str:
        return self.id.split(".")[0]

    @property
    def slug(self) -> str:
        """``"3_1"``: the suffix of the task's file names."""
        return self.id.replace(".", "_")


TASKS: tuple[Task, ...] = (
    Task("1.1", "LayerNorm backward", "gsbnp/functional/normalization.py: layernorm_backward",
         10, 45, ("00",),
         leaks=("rstd*(g-mean(g)-x_hat*mean(g*x_hat))", "g-=x_hat*mean_gx"),
         given=("g = dout * weight",)),  # the hint: the gradient that reaches x_hat
    Task("1.2", "attention backward", "gsbnp/functional/attention.py: attention_backward (and the same chain "
         "in gsbnp/quant/product.py, for the binarized model; graded through attention_backward)",
         10, 45, ("00",),
         leaks=("dA=dY@vh.swapaxes(-1,-2)", "dS@kh"),
         # the binarized attention's backward walks the same chain (its quantizers in between)
         also=(("gsbnp/quant/product.py", "dA = dY @ Vb.swapaxes(-1, -2)  # Y = A @ Vb                  (B, H, N, N)",
                "dVb = A.swapaxes(-1, -2) @ dY  # (B, H, N, Dh)"),
               ("gsbnp/quant/product.py",
                'dS = F.softmax_backward(dA_re, A_re) * cache["scale"]  # A_re = softmax(S), S = Qb Kb^T * scale',
                "dKb = dS.swapaxes(-1, -2) @ Qb"))),
    Task("2.1", "sign STE", "gsbnp/quant/activations.py: _act_forward (the sign branch) and "
         "baseline_act_sign_forward; the Eq. 32 window in gsbnp/quant/value.py: gsb_value_forward",
         5, 20, ("01",),
         leaks=("1{|q|<=1}", "|(x-a_mu)/beta|<=1", "window=np.abs(q)<=1", "|x|<=1", "|V0/beta_i|<=1")),
    Task("2.2", "type-A quantizer", "gsbnp/quant/activations.py: _act_forward (the round branch) and "
         "baseline_act_round_forward; the window in gsbnp/quant/attention.py: baseline_attention_forward",
         5, 20, ("01",),
         leaks=("1{0<=q<=1}", "1{0<=x/beta<=1}", "(q>0.5).astype(q.dtype)", "window=(q>=0)&(q<=1)",
                "1{0<=A_re/gamma<=1}")),
    Task("2.3", "baseline Eq. 8 switch", "gsbnp/quant/attention.py: baseline_attention_forward, "
         "the mode=\"eq8\" block",
         10, 40, ("03",), needs=("2.2",),
         leaks=("(n_big==0)|(ones8<N)",)),
    Task("3.1", "GSB attention backward", "gsbnp/quant/attention.py: gsb_attention_backward",
         20, 90, ("04",), bonus=5,
         leaks=("dalpha_0=reduce(", "dalpha_i=reduce(g*M_i)", "sum_ialpha_i1{0<A_ret-Theta_i<1})")),
    Task("3.2", "GSB value backward", "gsbnp/quant/value.py: gsb_value_backward",
         15, 60, ("04",), bonus=5, needs=("2.1",),
         leaks=("dbeta_i=reduce(", "g*sum_i1{|V0/beta_i|<=1}*M_i", "count+=n-M.sum(")),
    Task("3.3", "GSB initial scales", "gsbnp/quant/init.py: _region_stats and _cumulative_scales "
         "(Eqs. 21-25, 33-34)",
         10, 45, ("04",),
         leaks=("mean(R_i)-(alpha_0+...+alpha_{i-1})", "masks&~nxt", "meanofA_retoverR_i-(")),
    Task("4.1", "popcount matmul", "gsbnp/bitops/popcount.py: the post-processing of matmul_sign_sign "
         "and matmul_mask_sign, and matmul_mask_ternary",
         10, 30, ("02", "06"),
         leaks=("K-2*popcount(axorb)", "2*popcount(aandb)-popcount(a)")),
    Task("5.1", "distillation loss", "gsbnp/train/losses.py: distillation_loss",
         5, 30, ("05",),
         leaks=("cross_entropy(dist_logits,teacher_labels)",),
         # the class head's CE call: the given API, made the same way by the no-teacher loss beside it
         given=("loss_cls, dcls = cross_entropy(cls_logits, target, label_smoothing=label_smoothing)",)),
)

# group -> (notebook file stem, heading)
GROUPS: dict[str, tuple[str, str]] = {
    "1": ("assignment_1_float_layers", "The float transformer's backward passes"),
    "2": ("assignment_2_binarizers", "Binarizers, their straight-through estimators, the baseline's Eq. 8"),
    "3": ("assignment_3_gsb", "Group Superposition Binarization: backward passes and initial scales"),
    "4": ("assignment_4_bitops", "xnor / popcount instead of a matrix product"),
    "5": ("assignment_5_training", "Distillation through the [dist] token"),
}


def get_task(task_id) -> Task:
    """The task with this id (a string such as ``"3.1"``); ValueError naming the valid ids."""
    for t in TASKS:
        if t.id == str(task_id):
            return t
    raise ValueError(f"unknown task {str(task_id)!r}; tasks are {', '.join(t.id for t in TASKS)}")


def select(tasks) -> list[Task]:
    """None -> every task; otherwise the listed ids, validated, in TASKS order."""
    if tasks is None:
        return list(TASKS)
    if isinstance(tasks, str):
        raise TypeError("tasks must be a list of task ids such as ['3.1'], not a string")
    ids = {get_task(t).id for t in tasks}
    return [t for t in TASKS if t.id in ids]
