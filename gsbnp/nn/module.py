"""The ``Module`` base: parameters, gradients, children, train/eval, state dicts.

A module owns ``_params`` and ``_grads`` (same keys, local names such as ``W``), ``_buffers``
(non-trained state saved with the model, e.g. "scales initialised" flags) and child modules.
``params`` / ``grads`` / ``state_dict()`` present the whole tree as flat dicts keyed by dotted names
(``blocks.3.attn.qkv.W``). The arrays in ``params`` *are* the module's arrays: optimizers update them in
place and ``load_state_dict`` copies into them, so references stay valid.

``backward`` overwrites ``_grads`` (never accumulates); no parameter is shared between modules.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

# the writer and the npz reader live in gsbnp._io; these names stay importable from here
from .._io import atomic_write_bytes, load_npz, save_npz  # noqa: F401


class Module:
    """Base class of every gsbnp layer. Subclasses implement ``forward`` and ``backward``."""

    #: local parameter names excluded from weight decay (biases, norms, quantizer scales, ...)
    no_decay_params: tuple[str, ...] = ()

    def __init__(self):
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self._modules: dict[str, Module] = {}
        self.training = True

    # -- tree -------------------------------------------------------------------------------
    def add_module(self, name: str, module: "Module") -> "Module":
        self._modules[name] = module
        return module

    def replace_module(self, name: str, module: "Module") -> "Module":
        """Swap the child ``name`` (and the attribute of that name, if the parent has one)."""
        if name not in self._modules:
            raise KeyError(f"no child module {name!r}")
        self._modules[name] = module
        if getattr(self, name, None) is not None:
            setattr(self, name, module)
        return module

    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)
        return value

    def remove_param(self, name: str) -> None:
        self._params.pop(name, None)
        self._grads.pop(name, None)

    def children(self) -> Iterator[tuple[str, "Module"]]:
        return iter(self._modules.items())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}{name}.")

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, m in self.named_modules():
            for k, v in m._params.items():
                yield prefix + k, v

    def parameters(self) -> list[np.ndarray]:
        return [p for _, p in self.named_parameters()]

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Flat dict dotted name -> parameter array (the live arrays, not copies)."""
        return dict(self.named_parameters())

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Flat dict with the same keys as ``params``: gradients from the last ``backward``."""
        return {prefix + k: v for prefix, m in self.named_modules() for k, v in m._grads.items()}

    # -- learnable scales -------------------------------------------------------------------
    def _scales_pending(self) -> bool:
        """True when this module (not its children) has learnable scales not yet initialised."""
        return False

    def scales_pending(self) -> bool:
        """True when some module of the tree still has to take its initial scales from a batch."""
        return any(m._scales_pending() for _, m in self.named_modules())

    def init_scales(self, x) -> "Module":
        """The explicit initialisation step (docs/conventions.md#initial-scales): one forward pass on
        ``x`` in which every module whose learnable scales are not set takes them from its input.

        The random generators of the tree (dropout masks) are restored afterwards, so the forward pass
        that follows draws the same masks as if this step had not run. Modules already initialised are
        unchanged. Returns ``self``.
        """
        rngs = list({id(r): r for _, m in self.named_modules()
                     if isinstance(r := getattr(m, "rng", None), np.random.Generator)}.values())
        states = [r.bit_generator.state for r in rngs]
        try:
            self.forward(x)
        finally:
            for r, s in zip(rngs, states):
                r.bit_generator.state = s
        return self

    def no_weight_decay(self) -> set[str]:
        """Dotted names of the parameters an optimizer must not decay."""
        return {prefix + k for prefix, m in self.named_modules() for k in m._params
                if k in m.no_decay_params}

    def num_params(self) -> int:
        return int(sum(p.size for p in self.parameters()))

    # -- modes --------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by dotted name."""
        out = {}
        for prefix, m in self.named_modules():
            for k, v in m._params.items():
                out[prefix + k] = np.array(v, copy=True)
            for k, v in m._buffers.items():
                out[prefix + k] = np.array(v, copy=True)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` into the live arrays. Keys and shapes must match exactly."""
        own = {}
        for prefix, m in self.named_modules():
            for k, v in m._params.items():
                own[prefix + k] = v
            for k, v in m._buffers.items():
                own[prefix + k] = v
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            if extra:
                parts.append(f"unexpected keys {extra[:5]}{' ...' if len(extra) > 5 else ''}")
            raise ValueError("state dict does not match the model: " + "; ".join(parts))
        for k, v in own.items():
            src = np.asarray(state[k])
            if src.shape != v.shape:
                raise ValueError(f"state dict entry {k} has shape {src.shape}, the model expects {v.shape}")
            np.copyto(v, src, casting="unsafe")

    # -- interface -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)
