"""The instructor's checks of every task: fixed inputs, the named quantities a solution must reproduce.

A check case is a function that calls the public API of whatever ``gsbnp`` is importable and returns a
dict ``{quantity name: array or number}``. Grading runs each case twice: in the grader's own process
(the instructor's gsbnp, which gives the expected values) and in a subprocess on a fresh instructor
build holding the student's region (see :mod:`gsbnp.assignments.grader`); :func:`compare` then names
every quantity that differs and by how much. The cases only call the API, so this file holds no
solution; the student copy ships it as ``tests/cases.py`` together with the expected values of the
``public`` cases.

Points come from the ``core`` cases (the paper-default behaviour the task teaches); ``bonus`` cases
cover options beyond it. Inputs are float64 and include the exact edges (``|q| = 1``, ``q = 0.5``,
``A_ret - Theta = 0``) that tell a correct window from an almost correct one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["CASES", "Case", "cases_of", "compare", "format_mismatches", "run_case", "to_arrays"]

TOL = 1e-6  # relative error a float quantity must stay under (float64 inputs: a correct one is ~1e-15)


@dataclass(frozen=True)
class Case:
    """One check: ``fn() -> {name: value}``; ``kind`` is "core" (points) or "bonus" (extra points)."""

    task: str
    name: str
    fn: Callable[[], dict]
    kind: str = "core"
    public: bool = False
    tol: float = TOL


CASES: list[Case] = []


def case(task: str, name: str, *, kind: str = "core", public: bool = False, tol: float = TOL):
    def deco(fn):
        CASES.append(Case(task, name, fn, kind, public, tol))
        return fn
    return deco


def cases_of(task_id: str, kind: str | None = None) -> list[Case]:
    return [c for c in CASES if c.task == task_id and (kind is None or c.kind == kind)]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _quiet(fn, *args, **kwargs):
    """Call ``fn`` with its RuntimeWarnings (floored initial scales) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# 1.x float layers
# ----------------------------------------------------------------------------------------------

def _layernorm(shape, seed):
    from gsbnp.functional import layernorm_backward, layernorm_forward
    rng = _rng(seed)
    x = rng.standard_normal(shape) * 3 + 1
    w, b = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    y, cache = layernorm_forward(x, w, b)
    dx, dw, db = layernorm_backward(rng.standard_normal(y.shape), cache)
    return {"dx": dx, "dweight": dw, "dbias": db}


@case("1.1", "LayerNorm backward on (2, 5, 8)", public=True)
def _ln_public():
    return _layernorm((2, 5, 8), 11)


@case("1.1", "LayerNorm backward on (3, 4, 7, 6)")
def _ln_rank4():
    return _layernorm((3, 4, 7, 6), 12)


def _attention(B, N, D, H, seed):
    from gsbnp.functional import attention_backward, attention_forward
    rng = _rng(seed)
    q, k, v = (rng.standard_normal((B, N, D)) for _ in range(3))
    out, cache = attention_forward(q, k, v, H)
    dq, dk, dv = attention_backward(rng.standard_normal(out.shape), cache)
    return {"dq": dq, "dk": dk, "dv": dv}


@case("1.2", "attention backward, B=2 N=5 D=8 H=2", public=True)
def _att_public():
    return _attention(2, 5, 8, 2, 21)


@case("1.2", "attention backward, B=1 N=7 D=12 H=3")
def _att_hidden():
    return _attention(1, 7, 12, 3, 22)


# ----------------------------------------------------------------------------------------------
# 2.x binarizers
# ----------------------------------------------------------------------------------------------

# q = x / alpha at the exact edges of the windows, around them, and far outside
_EDGES = np.array([-3.0, -1.0 - 1e-9, -1.0, -0.7, -0.0, 0.0, 0.2, 0.5, 0.5 + 1e-9, 1.0, 1.0 + 1e-9, 2.5])


def _learnable(kind, x, alpha, bias, seed):
    from gsbnp import quant
    fwd = quant.act_sign_forward if kind == "sign" else quant.act_round_forward
    bwd = quant.act_sign_backward if kind == "sign" else quant.act_round_backward
    xb, cache = fwd(x, alpha, bias)
    dx, dalpha, dbias = bwd(_rng(seed).standard_normal(xb.shape), cache)
    out = {"x_b": xb, "dx": dx, "dalpha": dalpha}
    if bias is not None:
        out["dbias"] = dbias
    return out


@case("2.1", "type-B binarizer at the exact window edges (alpha = 0.5)", public=True)
def _sign_edges():
    x = np.tile(_EDGES * 0.5, (2, 1))  # q = x / 0.5 hits -1, 0, +1 exactly
    return _learnable("sign", x, 0.5, None, 31)


@case("2.1", "type-B binarizer with a bias, (2, 5, 8)")
def _sign_bias():
    rng = _rng(32)
    return _learnable("sign", rng.standard_normal((2, 5, 8)) * 1.5, 0.8, rng.standard_normal(8) * 0.3, 33)


@case("2.1", "baseline type-B binarizer (Eqs. 1, 2, 4) and the GSB value window (Eq. 32)")
def _sign_baseline():
    from gsbnp import quant
    rng = _rng(34)
    x = rng.standard_normal((3, 4, 6)) * 2
    out, cache = quant.baseline_act_sign_forward(x)
    dx = quant.baseline_act_sign_backward(rng.standard_normal(out.shape), cache)
    V0 = np.zeros((1, 1, 2, 6))
    V0[0, 0] = [[0.5, -0.5, 0.25, -0.125, 0.9, -1.3], [0.125, 0.0, -0.0, 0.3, -0.6, 0.05]]
    betas = np.array([0.5, 0.25, 0.125])
    _, vcache = quant.gsb_value_forward(V0, betas, 2)
    return {"baseline out": out, "baseline dx": dx, "value window": vcache["window"]}


@case("2.2", "type-A binarizer at the exact window edges (alpha = 2)", public=True)
def _round_edges():
    x = np.tile(_EDGES * 2.0, (2, 1))  # q = x / 2 hits 0, 0.5, 1 exactly
    return _learnable("round", x, 2.0, None, 41)


@case("2.2", "type-A binarizer with a bias, (2, 5, 12)")
def _round_bias():
    rng = _rng(42)
    return _learnable("round", np.abs(rng.standard_normal((2, 5, 12))), 1.3, rng.standard_normal(12) * 0.2, 43)


@case("2.2", "baseline type-A binarizer (Eqs. 1-3) and the baseline attention window (Eq. 5)")
def _round_baseline():
    from gsbnp import quant
    rng = _rng(44)
    x = np.abs(rng.standard_normal((3, 4, 6)))
    x[0, 0, :3] = [0.0, 1.0, 0.5]
    out, cache = quant.baseline_act_round_forward(x)
    dx = quant.baseline_act_round_backward(rng.standard_normal(out.shape), cache)
    A = _softmax(rng.standard_normal((2, 2, 5, 5)) * 2)
    A_out, acache = quant.baseline_attention_forward(A, mode="eq2")
    dA = quant.baseline_attention_backward(rng.standard_normal(A.shape), acache)
    return {"baseline out": out, "baseline dx": dx, "attention out (eq2)": A_out, "attention dA_re (eq2)": dA}


def _eq8(A, seed):
    from gsbnp import quant
    out, cache = quant.baseline_attention_forward(A, mode="eq8")
    dA = quant.baseline_attention_backward(_rng(seed).standard_normal(A.shape), cache)
    return {"out": out, "gamma": cache["gamma"], "switched": cache["switched"], "dA_re": dA}


@case("2.3", "Eq. 8 on peaked maps, flat maps and maps with too few ones", public=True)
def _eq8_mixed():
    rng = _rng(51)
    N = 6
    A = np.empty((2, 3, N, N))
    A[:, 0] = _softmax(rng.standard_normal((2, N, N)) * 0.3)  # flat: no value > 0.5 -> Eq. 2
    A[:, 1] = _softmax(rng.standard_normal((2, N, N)) * 6)  # peaked rows
    A[:, 2] = _softmax(rng.standard_normal((2, N, N)) * 0.3)
    A[:, 2, :2] = _softmax(np.eye(N)[:2] * 9)  # only two rows above 0.5: fewer than N ones
    return _eq8(A, 52)


@case("2.3", "Eq. 8 where every row has exactly one value above 0.5")
def _eq8_exact():
    N = 5
    A = np.full((1, 2, N, N), 0.1)
    for i in range(N):
        A[0, 0, i, i] = 0.6
        A[0, 1, i, (i + 1) % N] = 0.9 if i else 0.5  # 0.5 is not above 0.5, but 0.5 / gamma8 is
    return _eq8(A, 53)


# ----------------------------------------------------------------------------------------------
# 3.x GSB
# ----------------------------------------------------------------------------------------------

def _A_ret(seed, shape=(2, 2, 6, 6)):
    A = _softmax(_rng(seed).standard_normal(shape) * 2)
    return A - A.mean(axis=-1, keepdims=True) * 0.5  # A_re - Phi, Phi a per-row constant (Eq. 9)


def _gsb_attention(seed, k, **opts):
    from gsbnp import quant
    A_ret = _A_ret(seed)
    alphas = np.array([0.25, 0.12, 0.06, 0.03, 0.02])[:k + 1]  # fixed: the public test must not need Task 3.3
    out, cache = quant.gsb_attention_forward(A_ret, alphas, k, **opts)
    dA, dalphas = quant.gsb_attention_backward(_rng(seed + 1).standard_normal(out.shape), cache)
    return {"dA_ret": dA, "dalphas": dalphas}


@case("3.1", "GSB attention backward, k = 2 (paper defaults)", public=True)
def _gsb_a_public():
    return _gsb_attention(61, 2)


@case("3.1", "GSB attention backward, k = 1 and k = 3")
def _gsb_a_k():
    r1, r3 = _gsb_attention(62, 1), _gsb_attention(63, 3)
    return {"dA_ret (k=1)": r1["dA_ret"], "dalphas (k=1)": r1["dalphas"],
            "dA_ret (k=3)": r3["dA_ret"], "dalphas (k=3)": r3["dalphas"]}


@case("3.1", "GSB attention backward with entries exactly on the window edges")
def _gsb_a_edges():
    from gsbnp import quant
    A_ret = np.zeros((1, 1, 4, 4))
    A_ret[0, 0] = [[0.8, 0.0, 0.4, 0.1], [1.0, 0.5, 0.25, 0.0], [0.2, 0.3, 0.6, -0.1], [0.9, 0.45, 0.0, 0.05]]
    alphas = np.array([0.8, 0.2, 0.1])  # A_ret / alpha_0 = 1 and 0 occur exactly
    out, cache = quant.gsb_attention_forward(A_ret, alphas, 2)
    dA, dalphas = quant.gsb_attention_backward(_rng(64).standard_normal(out.shape), cache)
    return {"dA_ret": dA, "dalphas": dalphas}


@case("3.1", "options: scale_grad=\"sqrt\", \"sum\" and abin=\"mask\" (Table VIII)", kind="bonus")
def _gsb_a_bonus():
    out = {}
    for tag, opts in (("sqrt", {"scale_grad": "sqrt"}), ("sum", {"scale_grad": "sum"}),
                      ("mask", {"abin": "mask"})):
        r = _gsb_attention(65, 2, **opts)
        out[f"dA_ret ({tag})"], out[f"dalphas ({tag})"] = r["dA_ret"], r["dalphas"]
    return out


def _V0(seed, shape=(2, 2, 5, 4)):
    V = _rng(seed).standard_normal(shape)
    return V - V.mean(axis=-2, keepdims=True) * 0.3  # V - Omega


def _gsb_value(seed, k, **opts):
    from gsbnp import quant
    V0 = _V0(seed)
    betas = np.array([0.6, 0.3, 0.2, 0.1, 0.05])[:k + 1]
    out, cache = quant.gsb_value_forward(V0, betas, k, **opts)
    dV0, dbetas = quant.gsb_value_backward(_rng(seed + 1).standard_normal(out.shape), cache)
    return {"dV0": dV0, "dbetas": dbetas}


@case("3.2", "GSB value backward, k = 2 (paper defaults)", public=True)
def _gsb_v_public():
    return _gsb_value(71, 2)


@case("3.2", "GSB value backward, k = 1 and k = 3")
def _gsb_v_k():
    r1, r3 = _gsb_value(72, 1), _gsb_value(73, 3)
    return {"dV0 (k=1)": r1["dV0"], "dbetas (k=1)": r1["dbetas"],
            "dV0 (k=3)": r3["dV0"], "dbetas (k=3)": r3["dbetas"]}


@case("3.2", "GSB value backward with |V0 / beta_i| = 1 exactly")
def _gsb_v_edges():
    from gsbnp import quant
    V0 = np.zeros((1, 1, 2, 6))
    V0[0, 0] = [[0.5, -0.5, 0.25, -0.125, 0.9, -1.3], [0.125, 0.0, -0.0, 0.3, -0.6, 0.05]]
    out, cache = quant.gsb_value_forward(V0, np.array([0.5, 0.25, 0.125]), 2)
    dV0, dbetas = quant.gsb_value_backward(_rng(74).standard_normal(out.shape), cache)
    return {"dV0": dV0, "dbetas": dbetas}


@case("3.2", "options: scale_grad=\"sqrt\", \"sum\" and v_grad=\"unmasked\"", kind="bonus")
def _gsb_v_bonus():
    out = {}
    for tag, opts in (("sqrt", {"scale_grad": "sqrt"}), ("sum", {"scale_grad": "sum"}),
                      ("unmasked", {"v_grad": "unmasked"})):
        r = _gsb_value(75, 2, **opts)
        out[f"dV0 ({tag})"], out[f"dbetas ({tag})"] = r["dV0"], r["dbetas"]
    return out


@case("3.3", "initial alphas of GSB attention (Eq. 25), k = 1, 2, 3", public=True)
def _init_attention():
    from gsbnp import quant
    A_ret = _A_ret(81, (2, 2, 8, 8))
    return {f"alphas (k={k})": _quiet(quant.gsb_attention_init, A_ret, k) for k in (1, 2, 3)}


@case("3.3", "initial betas of the GSB value (Eq. 34), k = 1, 2, 3")
def _init_value():
    from gsbnp import quant
    V0 = _V0(82, (2, 3, 6, 4))
    V0[0, 0, 0, :2] = 0.0  # exact zeros are not counted (Eq. 34's n_{v m > 0})
    return {f"betas (k={k})": _quiet(quant.gsb_value_init, V0, k) for k in (1, 2, 3)}


@case("3.3", "initial scales of a second batch, k = 2")
def _init_second():
    from gsbnp import quant
    return {"alphas": _quiet(quant.gsb_attention_init, _A_ret(83, (1, 3, 7, 7)), 2),
            "betas": _quiet(quant.gsb_value_init, _V0(84, (1, 3, 7, 5)), 2)}


# ----------------------------------------------------------------------------------------------
# 4.1 popcount, 5.1 distillation
# ----------------------------------------------------------------------------------------------

def _popcount(seed, M, N, K, lead=()):
    from gsbnp.bitops import matmul_mask_sign, matmul_sign_sign, pack_mask, pack_signs
    rng = _rng(seed)
    a = rng.choice([-1, 1], size=lead + (M, K))
    w = rng.choice([-1, 1], size=lead + (N, K))
    m = rng.integers(0, 2, size=lead + (M, K))
    return {"sign x sign": matmul_sign_sign(pack_signs(a), pack_signs(w)),
            "mask x sign": matmul_mask_sign(pack_mask(m), pack_signs(w))}


@case("4.1", "popcount products, K = 70 (a padded last word)", public=True)
def _pop_public():
    return _popcount(91, 3, 4, 70)


@case("4.1", "popcount products, K = 64 and K = 130, batched")
def _pop_hidden():
    r64, r130 = _popcount(92, 5, 3, 64), _popcount(93, 2, 6, 130, lead=(2,))
    return {f"{n} (K={K})": v for K, r in ((64, r64), (130, r130)) for n, v in r.items()}


@case("4.1", "the ternary value planes of Fig. 10 (mask x ternary)")
def _pop_ternary():
    from gsbnp.bitops import matmul_mask_ternary, pack_mask, pack_ternary
    rng = _rng(94)
    a = rng.integers(0, 2, size=(4, 75))
    t = rng.integers(-1, 2, size=(3, 75))
    return {"mask x ternary": matmul_mask_ternary(pack_mask(a), pack_ternary(t))}


def _distill(seed, **opts):
    from gsbnp.train.losses import distillation_loss
    rng = _rng(seed)
    cls, dist, teacher = (rng.standard_normal((4, 6)) for _ in range(3))
    y = rng.integers(0, 6, size=4)
    loss, dcls, ddist = distillation_loss(cls, dist, y, teacher, **opts)
    return {"loss": loss, "dcls_logits": dcls, "ddist_logits": ddist}


@case("5.1", "hard distillation, lam = 0.5 (the paper's recipe)", public=True)
def _distill_public():
    return _distill(101)


@case("5.1", "hard distillation, lam = 0.3, label smoothing 0.1 on the class head")
def _distill_smooth():
    return _distill(102, lam=0.3, label_smoothing=0.1)


@case("5.1", "soft distillation, tau = 2")
def _distill_soft():
    return _distill(103, kind="soft", tau=2.0, lam=0.4)


# ----------------------------------------------------------------------------------------------
# running and comparing
# ----------------------------------------------------------------------------------------------

def to_arrays(values) -> dict[str, np.ndarray]:
    """A case's result as plain numeric arrays (bool, int or float64); TypeError for anything else."""
    if not isinstance(values, dict):
        raise TypeError(f"a check case must return a dict, got {type(values).__name__}")
    out = {}
    for name, v in values.items():
        a = np.asarray(v)
        if a.dtype == object or not (a.dtype == bool or np.issubdtype(a.dtype, np.number)):
            raise TypeError(f"{name}: expected a numeric array or number, got {type(v).__name__}")
        out[str(name)] = a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a
    return out


def run_case(c: Case) -> dict[str, np.ndarray]:
    return to_arrays(c.fn())


def compare(got: dict, expected: dict, tol: float = TOL) -> list[tuple[str, str | None]]:
    """``[(quantity, None if correct else why)]`` for every expected quantity, in order."""
    rows = []
    for name, ref in expected.items():
        ref = np.asarray(ref)
        if name not in got:
            rows.append((name, "missing"))
            continue
        a = np.asarray(got[name])
        if a.shape != ref.shape:
            rows.append((name, f"shape {a.shape} (expected {ref.shape})"))
        elif ref.dtype == bool or np.issubdtype(ref.dtype, np.integer):
            bad = int(np.count_nonzero(a != ref))
            rows.append((name, None if bad == 0 else f"{bad} of {ref.size} entries differ (expected exact)"))
        elif not np.all(np.isfinite(a)):
            rows.append((name, f"{int(np.count_nonzero(~np.isfinite(a)))} entries are NaN or inf"))
        else:
            scale = float(np.max(np.abs(ref))) if ref.size else 0.0
            err = float(np.max(np.abs(a - ref))) / max(scale, 1e-12) if ref.size else 0.0
            where = ""
            if err >= tol and ref.ndim:
                idx = np.unravel_index(int(np.argmax(np.abs(a - ref))), ref.shape)
                where = f", worst at {tuple(int(i) for i in idx)}: {a[idx]:.6g} instead of {ref[idx]:.6g}"
            rows.append((name, None if err < tol else f"relative error {err:.1e} (expected < {tol:.0e}){where}"))
    return rows


def format_mismatches(rows) -> str:
    """``"dx: relative error 2.2e-01 (expected < 1e-06); dweight, dbias correct"``."""
    bad = [f"{n}: {why}" for n, why in rows if why is not None]
    good = [n for n, why in rows if why is None]
    text = "; ".join(bad)
    if good:
        text += ("; " if text else "") + ", ".join(good) + " correct"
    return text
