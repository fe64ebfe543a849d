"""Optimizers (SGD, Adam, AdamW) and global gradient-norm clipping, with PyTorch's update rules.

The model exposes its parameters as one flat dict ``params`` (dotted name -> ndarray, e.g.
``blocks.0.attn.qkv.W``) and fills a dict ``grads`` with the same keys after ``backward``. An optimizer
keeps a reference to that dict and updates its arrays **in place** (``p -= ...``), so every layer that
holds the same array sees the new values. Load checkpoint weights into those arrays in place too
(``np.copyto``): replacing an array object in the dict is picked up on the next step, but a layer still
holding the old object would not see it.

Each rule is ``torch.optim``'s, written in the same algebraic form and order, so gsbnp and PyTorch agree
up to float rounding (PyTorch computes ``m`` with ``lerp``, which can differ in the last ulp):

- SGD:   ``g += wd p``; ``buf = mu buf + g`` (``buf = g`` at step 1); ``g = g + mu buf`` (Nesterov) or
         ``g = buf``; ``p -= lr g``.
- Adam:  ``g += wd p`` (L2 penalty in the gradient); ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
         ``p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
- AdamW: as Adam, but the decay is decoupled: ``p *= 1 - lr wd`` before the moment update (the
         paper's optimiser with the weight decay 0.05 of docs/conventions.md#training).

Names in ``no_decay`` (biases, norms, tokens, pos-embed, quantizer scales and biases, Phi, Omega, as
the model lists them) get ``wd = 0``.

Precision: the moment buffers take each parameter's dtype (float32 in training), as PyTorch keeps its
state. A float64 copy would double the optimizer memory for no measurable gain: the update is applied
to a float32 parameter anyway, and the step counter and bias corrections are computed in float64
Python scalars. float64 parameters (gradient checks, tests) get float64 moments.

State: ``state_dict()`` is a flat dict of NumPy arrays and Python scalars (``"step"``, ``"lr"``, the
hyper-parameters, ``"m/<name>"``, ``"v/<name>"`` or ``"momentum/<name>"``) that ``np.savez`` stores
without pickling; ``load_state_dict`` restores it so that a resumed run continues bit-identically.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._validate import check_float

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm"]


def _check_params(params) -> dict:
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict name -> numpy.ndarray (the model's flat parameter "
                        f"dict), got {type(params).__name__}")
    if not params:
        raise ValueError("params is empty: nothing to optimize")
    for name, p in params.items():
        if not isinstance(name, str):
            raise TypeError(f"params keys must be str, got {type(name).__name__} ({name!r})")
        if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
            what = p.dtype if isinstance(p, np.ndarray) else type(p).__name__
            raise TypeError(f"params[{name!r}] must be a floating numpy.ndarray, got {what}")
        if not p.flags.writeable:
            raise ValueError(f"params[{name!r}] is read-only; the optimizer updates it in place")
    return params


def _check_betas(betas) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    b1, b2 = (check_float(b, f"betas[{i}]", lo=0.0) for i, b in enumerate(betas))
    for i, b in enumerate((b1, b2)):
        if b >= 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1), got {b}")
    return b1, b2


class Optimizer:
    """Base class: parameter bookkeeping, gradient validation and the state-dict round trip.

    Subclasses set ``_buffers`` (names of the per-parameter state, e.g. ``("m", "v")``) and
    ``_hyper`` (names of the float hyper-parameter attributes stored in the state dict), and
    implement ``_update(name, p, g, lr)``.
    """

    _buffers: tuple[str, ...] = ()
    _hyper: tuple[str, ...] = ()

    def __init__(self, params: dict, lr: float, weight_decay: float, no_decay):
        self.params = _check_params(params)
        self.lr = check_float(lr, "lr", lo=0.0, lo_open=True)
        self.weight_decay = check_float(weight_decay, "weight_decay", lo=0.0)
        if isinstance(no_decay, str):
            raise TypeError("no_decay must be a collection of parameter names, not a single str")
        self.no_decay = frozenset(no_decay)
        unknown = sorted(self.no_decay - set(params))
        if unknown:
            raise ValueError(f"no_decay names not in params: {unknown[:5]}"
                             f"{' ...' if len(unknown) > 5 else ''}")
        self.step_count = 0
        # One zero buffer per parameter and state kind, in the parameter's dtype.
        self.state = {b: {n: np.zeros_like(p) for n, p in params.items()} for b in self._buffers}

    def decay_of(self, name: str) -> float:
        """Weight decay applied to parameter ``name`` (0 for names in ``no_decay``)."""
        return 0.0 if name in self.no_decay else self.weight_decay

    def _check_grads(self, grads) -> None:
        if not isinstance(grads, Mapping):
            raise TypeError(f"grads must be a dict name -> numpy.ndarray, got {type(grads).__name__}")
        if grads.keys() != self.params.keys():
            missing = sorted(set(self.params) - set(grads))
            extra = sorted(set(grads) - set(self.params))
            raise ValueError(f"grads must have exactly the keys of params; missing {missing[:5]}, "
                             f"extra {extra[:5]}")
        for name, p in self.params.items():
            g = grads[name]
            if not isinstance(g, np.ndarray) or not np.issubdtype(g.dtype, np.floating):
                what = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
                raise TypeError(f"grads[{name!r}] must be a floating numpy.ndarray, got {what}")
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}] has shape {g.shape}, params[{name!r}] has {p.shape}")
            # one sum is non-finite whenever g holds a NaN or an inf (or a huge finite sum overflowed):
            # only then is every entry looked at
            if not np.isfinite(np.sum(g)) and not np.isfinite(g).all():
                raise ValueError(f"grads[{name!r}] contains NaN or inf")
        for b in self._buffers:  # the params dict must not have changed shape behind our back
            for name, p in self.params.items():
                if self.state[b][name].shape != p.shape:
                    raise ValueError(f"params[{name!r}] changed shape since the optimizer was built")

    def step(self, grads: Mapping, lr: float | None = None) -> None:
        """Apply one update to every parameter, in place.

        Args:
            grads: dict with exactly the keys of ``params``; each array has its parameter's shape.
                Never modified.
            lr: learning rate for this step (e.g. from a schedule), >= 0; it also becomes
                ``self.lr`` (as a scheduler writes PyTorch's ``param_group["lr"]``). ``None`` keeps
                the current one.
        """
        self._check_grads(grads)
        if lr is not None:
            self.lr = check_float(lr, "lr", lo=0.0)
        self.step_count += 1
        if self._step_flat(grads):
            return
        for name, p in self.params.items():
            self._update(name, p, grads[name], self.lr)

    def _step_flat(self, grads) -> bool:
        """Optional fast path of ``step``: the same update on flat buffers; returns whether it ran."""
        return False

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Flat, npz-storable state: ``type``, ``step``, ``lr``, hyper-parameters and buffers.

        Buffers are copies (later steps do not change a saved state)."""
        d = {"type": type(self).__name__, "step": self.step_count, "lr": self.lr}
        d.update({h: getattr(self, h) for h in self._hyper})
        for b in self._buffers:
            for name, arr in self.state[b].items():
                d[f"{b}/{name}"] = arr.copy()
        return d

    def load_state_dict(self, d: Mapping) -> None:
        """Restore a ``state_dict()`` (also after an ``np.savez`` / ``np.load`` round trip).

        Restores the step count, lr, hyper-parameters and buffers (copied into the existing buffers).
        Raises ``ValueError`` on a different optimizer type, missing or extra keys, or a buffer whose
        shape or dtype differs from its parameter's.
        """
        if not isinstance(d, Mapping) and not hasattr(d, "files"):
            raise TypeError(f"state must be a dict (or an np.load result), got {type(d).__name__}")
        keys = set(d.files if hasattr(d, "files") else d.keys())
        saved_type = str(np.asarray(d["type"])) if "type" in keys else None
        if saved_type != type(self).__name__:
            raise ValueError(f"state is for optimizer {saved_type!r}, this is {type(self).__name__!r}")
        expected = {"type", "step", "lr", *self._hyper}
        expected |= {f"{b}/{n}" for b in self._buffers for n in self.params}
        if keys != expected:
            raise ValueError(f"state keys do not match this optimizer: missing "
                             f"{sorted(expected - keys)[:5]}, extra {sorted(keys - expected)[:5]}")
        new = {}
        for b in self._buffers:
            for name, buf in self.state[b].items():
                arr = np.asarray(d[f"{b}/{name}"])
                if arr.shape != buf.shape or arr.dtype != buf.dtype:
                    raise ValueError(f"state {b}/{name} has shape {arr.shape} dtype {arr.dtype}, "
                                     f"expected {buf.shape} {buf.dtype}")
                new[b, name] = arr
        step = int(np.asarray(d["step"]))
        if step < 0:
            raise ValueError(f"state step must be >= 0, got {step}")
        hyper = {h: float(np.asarray(d[h])) for h in self._hyper}
        self._set_hyper(hyper)  # validates like the constructor
        self.lr = check_float(float(np.asarray(d["lr"])), "lr", lo=0.0)
        self.step_count = step
        for (b, name), arr in new.items():
            np.copyto(self.state[b][name], arr)

    def _set_hyper(self, hyper: dict) -> None:
        for h, v in hyper.items():
            setattr(self, h, check_float(v, h, lo=0.0))


class SGD(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum and L2 weight decay (``torch.optim.SGD``
    with ``dampening=0``).

    Update, per parameter: ``g = grad + wd * p``; ``buf = momentum * buf + g`` (the buffer starts at
    0, so step 1 gives ``buf = g`` exactly as PyTorch's clone); ``g = g + momentum * buf`` if
    ``nesterov`` else ``g = buf``; ``p -= lr * g``. ``momentum = 0`` is plain SGD (no buffer kept).

    Args:
        params: the model's flat dict name -> float ndarray, updated in place.
        lr: learning rate > 0 (a schedule can override it per ``step``).
        momentum: in [0, 1).
        weight_decay: L2 coefficient >= 0, added to the gradient.
        nesterov: Nesterov momentum (needs ``momentum > 0``).
        no_decay: names excluded from weight decay.
    """

    _hyper = ("momentum", "weight_decay")

    def __init__(self, params: dict, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, no_decay=()):
        self.momentum = check_float(momentum, "momentum", lo=0.0)
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov
        self._buffers = ("momentum",) if self.momentum > 0 else ()
        super().__init__(params, lr, weight_decay, no_decay)

    def _set_hyper(self, hyper: dict) -> None:
        momentum = check_float(hyper["momentum"], "momentum", lo=0.0)
        if (momentum > 0) != (self.momentum > 0) or momentum >= 1.0:
            raise ValueError(f"state momentum {momentum} is incompatible with this optimizer's "
                             f"{self.momentum} (a momentum buffer exists iff momentum > 0)")
        self.momentum = momentum
        self.weight_decay = check_float(hyper["weight_decay"], "weight_decay", lo=0.0)

    def _update(self, name, p, g, lr):
        wd = self.decay_of(name)
        d_p = g + wd * p if wd else g  # new array: grads are never written
        if self.momentum:
            buf = self.state["momentum"][name]
            buf *= self.momentum
            buf += d_p
            d_p = d_p + self.momentum * buf if self.nesterov else buf
        p -= lr * d_p


class Adam(Optimizer):
    """Adam with bias correction and the L2 penalty added to the gradient (``torch.optim.Adam``).

    Update at step t, per parameter: ``g = grad + wd * p``; ``m = b1 m + (1 - b1) g``;
    ``v = b2 v + (1 - b2) g^2``; ``p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    Args:
        params: the model's flat dict name -> float ndarray, updated in place.
        lr: learning rate > 0 (a schedule can override it per ``step``).
        betas: (b1, b2), each in [0, 1).
        eps: > 0, added to the bias-corrected ``sqrt(v)``.
        weight_decay: L2 coefficient >= 0 (coupled: it passes through the moments).
        no_decay: names excluded from weight decay.
    """

    _buffers = ("m", "v")
    _hyper = ("beta1", "beta2", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, params: dict, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, no_decay=()):
        self.beta1, self.beta2 = _check_betas(betas)
        self.eps = check_float(eps, "eps", lo=0.0, lo_open=True)
        super().__init__(params, lr, weight_decay, no_decay)

    def _set_hyper(self, hyper: dict) -> None:
        self.beta1, self.beta2 = _check_betas((hyper["beta1"], hyper["beta2"]))
        self.eps = check_float(hyper["eps"], "eps", lo=0.0, lo_open=True)
        self.weight_decay = check_float(hyper["weight_decay"], "weight_decay", lo=0.0)

    def _flat_groups(self) -> list:
        """Parameters grouped by (dtype, weight decay), each with flat buffers; built once.

        The moment buffers ``state["m"][name]`` / ``state["v"][name]`` become views into the group's
        flat buffers (values kept), so that one update per group touches every parameter: the same
        elementwise operations as ``_update``, in the same order, without 12 NumPy calls per tensor
        (for the 8x8 digits model, 75 tensors, most of them small, that overhead was 1 ms a step).
        """
        groups = getattr(self, "_groups", None)
        if groups is not None:
            return groups
        by_key: dict = {}
        for name, p in self.params.items():
            by_key.setdefault((p.dtype, self.decay_of(name)), []).append(name)
        groups = []
        for (dtype, wd), names in by_key.items():
            sizes = [self.params[n].size for n in names]
            total = sum(sizes)
            bufs = {b: np.empty(total, dtype) for b in ("m", "v", "p", "g", "t", "d")}
            off = 0
            for n, size in zip(names, sizes):
                shape = self.params[n].shape
                for b in ("m", "v"):
                    view = bufs[b][off:off + size].reshape(shape)
                    view[...] = self.state[b][n]
                    self.state[b][n] = view
                off += size
            groups.append((names, wd, bufs))
        self._groups = groups
        return groups

    def _step_flat(self, grads) -> bool:
        if any(grads[n].dtype != p.dtype for n, p in self.params.items()):
            return False  # mixed precision: the per-tensor path keeps NumPy's promotion rules
        t, lr = self.step_count, self.lr
        b1, b2 = self.beta1, self.beta2
        step_size = lr / (1.0 - b1 ** t)
        bc2_sqrt = float(np.sqrt(1.0 - b2 ** t))
        for names, wd, bufs in self._flat_groups():
            params = [self.params[n] for n in names]
            p, g, m, v = bufs["p"], bufs["g"], bufs["m"], bufs["v"]
            np.concatenate([a.reshape(-1) for a in params], out=p)
            np.concatenate([grads[n].reshape(-1) for n in names], out=g)
            # from here on exactly _update's operations, on every tensor of the group at once, with
            # the temporaries in two preallocated buffers (products commute: fl(c * x) = fl(x * c))
            t, d = bufs["t"], bufs["d"]
            if wd and self._decoupled:
                p *= 1.0 - lr * wd
            elif wd:
                np.multiply(p, wd, out=t)
                g += t  # g + wd * p
            m *= b1
            np.multiply(g, 1.0 - b1, out=t)
            m += t  # m += (1 - b1) * g
            v *= b2
            np.multiply(g, g, out=t)
            t *= 1.0 - b2
            v += t  # v += (1 - b2) * (g * g)
            np.sqrt(v, out=d)  # denom
            d /= bc2_sqrt
            d += self.eps
            np.divide(m, d, out=d)
            d *= step_size
            p -= d  # p -= step_size * (m / denom)
            off = 0
            for a in params:
                np.copyto(a, p[off:off + a.size].reshape(a.shape))
                off += a.size
        return True

    def _update(self, name, p, g, lr):
        wd = self.decay_of(name)
        if wd and self._decoupled:
            p *= 1.0 - lr * wd  # AdamW: decay the weights directly, outside the moments
        elif wd:
            g = g + wd * p  # Adam: L2 penalty in the gradient (new array: grads stay untouched)
        t = self.step_count
        b1, b2 = self.beta1, self.beta2
        m, v = self.state["m"][name], self.state["v"][name]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        # Python floats are "weak" scalars in NumPy 2: float32 buffers stay float32.
        step_size = lr / (1.0 - b1 ** t)
        bc2_sqrt = float(np.sqrt(1.0 - b2 ** t))
        denom = np.sqrt(v)
        denom /= bc2_sqrt
        denom += self.eps
        p -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``), the paper's optimiser.

    Update at step t: ``p *= 1 - lr * wd`` (skipped for ``no_decay`` names), then Adam's moment
    update and step on the raw gradient. Defaults follow docs/conventions.md#training: betas (0.9, 0.999),
    eps 1e-8, weight decay 0.05. Arguments as :class:`Adam`.
    """

    _decoupled = True

    def __init__(self, params: dict, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.05, no_decay=()):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         no_decay=no_decay)


def clip_grad_norm(grads: Mapping, max_norm: float, *, error_if_nonfinite: bool = True) -> float:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    ``total = sqrt(sum over arrays of sum(g^2))`` (accumulated in float64);
    ``coef = max_norm / (total + 1e-6)``; if ``coef < 1`` every array is multiplied by ``coef`` in
    place (``torch.nn.utils.clip_grad_norm_``), otherwise nothing changes.

    Args:
        grads: dict name -> float ndarray, scaled in place.
        max_norm: > 0.
        error_if_nonfinite: raise ``ValueError`` when the norm is NaN or inf (default); with False the
            gradients are left as they are and the non-finite norm is returned.
    Returns:
        the total norm before clipping (Python float).
    """
    max_norm = check_float(max_norm, "max_norm", lo=0.0, lo_open=True)
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a dict name -> numpy.ndarray, got {type(grads).__name__}")
    sq = 0.0
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or not np.issubdtype(g.dtype, np.floating):
            what = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
            raise TypeError(f"grads[{name!r}] must be a floating numpy.ndarray, got {what}")
        flat = g.reshape(-1)
        # einsum accumulates in float64 without a float64 copy (and, measured here, ~8x faster than
        # OpenBLAS's threaded ddot on a few 100k entries).
        sq += float(np.einsum("i,i->", flat, flat, dtype=np.float64))
    total = float(np.sqrt(sq))
    if not np.isfinite(total):
        if error_if_nonfinite:
            raise ValueError(f"the total gradient norm is {total}; a gradient contains NaN or inf "
                             f"(pass error_if_nonfinite=False to return it without clipping)")
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads.values():
            g *= coef
    return total
