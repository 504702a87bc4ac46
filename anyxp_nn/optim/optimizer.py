"""Optimizer base: parameter groups, learning-rate schedules, per-parameter state.

An optimizer holds ``param_groups`` (a list of dicts with ``"params"`` and the
hyper-parameters, PyTorch-style) and ``state`` (one dict per parameter: arrays on
the parameter's device and dtype, plus Python ints such as ``"step"``).  ``lr``
may be a float or a schedule ``step -> float``; the k-th ``step()`` (k from 0)
uses ``schedule(k)``.

Subclasses write the update once against the Array API, so every backend runs
the same code; they use in-place operators (``m *= beta``) only on arrays they
have just made, so no more temporaries are made than the update needs.  They define:

* ``defaults`` (passed to ``__init__``) and ``_validate(group)``;
* ``_slots(group)``: names of the state arrays (created as zeros on the first step);
* ``_counters``: names of the per-parameter Python-int counters (e.g. ``"step"``);
* ``_update(p, state, group, lr) -> (new_data, new_state)``: reads ``p.data``,
  ``p.grad`` and ``state`` and returns fresh arrays; it writes into nothing it
  was given (in-place operators only on the temporaries it made).

A step is all-or-nothing: every gradient is checked (shape, dtype, backend)
and every new parameter and slot computed first; only then are they swapped
in, with Ctrl-C held back for those few assignments
(:func:`anyxp_nn._atomic.deferred_interrupts`).  A failed or interrupted step
leaves parameters, slots, counters and ``step_count`` as they were.  The price
is memory: the old and new arrays coexist until the commit (about twice the
parameters and slots at the peak of a step).  Large parameters may be updated
in row blocks on host threads (:mod:`anyxp_nn.optim.blocks`, off by default).

``state_dict()`` holds host NumPy arrays and plain Python values only (a
schedule is stored as the string ``"schedule"``; its position is ``step_count``),
so a checkpoint writer can put it into ``.npz``/``.json`` without pickle.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from array_api_compat import array_namespace, device as _device

from .._atomic import deferred_interrupts
from ..backend import backend_of, to_numpy
from ..parameter import Parameter
from .blocks import run_updates
from .schedules import Schedule

__all__ = ["Optimizer", "param_groups_no_decay"]


class Optimizer:
    """Base class; see the module docstring for what a subclass provides."""

    _counters: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self._validate({**self.defaults, "params": []})
        groups = self._as_groups(params, self._name())
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        self.step_count = 0
        checked = []
        seen: set[int] = set()
        for i, group in enumerate(groups):
            checked.append(self._check_group(group, i, seen))
        self.param_groups = checked

    # -- groups ------------------------------------------------------------------
    def _name(self) -> str:
        return type(self).__name__

    @staticmethod
    def _as_groups(params: Iterable[Any], owner: str) -> list[dict[str, Any]]:
        if hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        if isinstance(params, (Parameter, dict)):
            params = [params]
        items = list(params)
        if not items:
            raise ValueError(f"{owner}: the optimizer got an empty parameter list")
        if all(isinstance(g, dict) for g in items):
            return [dict(g) for g in items]
        if any(isinstance(g, dict) for g in items):
            raise TypeError(f"{owner}: `params` must be all Parameters or all param-group dicts, not a mix")
        return [{"params": items}]

    def _check_group(self, group: dict[str, Any], i: int, seen: set[int]) -> dict[str, Any]:
        """Validate one group (without touching ``self``); adds its parameter ids to ``seen``."""
        if "params" not in group:
            raise ValueError(f"{self._name()}: param group {i} has no 'params' key")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{self._name()}: param group {i} has unknown options {sorted(unknown)}; "
                             f"known: {sorted(self.defaults)}")
        full = {**self.defaults, **group}
        ps = full["params"]
        if hasattr(ps, "parameters") and callable(ps.parameters):
            ps = ps.parameters()
        ps = [ps] if isinstance(ps, Parameter) else list(ps)
        if not ps:
            raise ValueError(f"{self._name()}: param group {i} has an empty parameter list")
        mine: set[int] = set()
        for p in ps:
            if not isinstance(p, Parameter):
                raise TypeError(f"{self._name()}: expected Parameters, got {type(p).__name__}")
            if id(p) in seen or id(p) in mine:
                raise ValueError(f"{self._name()}: a parameter {p!r} is listed twice "
                                 "(each parameter may appear in one group, once)")
            mine.add(id(p))
        full["params"] = ps
        self._validate(full)
        seen |= mine
        return full

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group (a dict with ``"params"`` and optional overrides), as PyTorch."""
        seen = {id(p) for p in self.parameters()}
        self.param_groups.append(self._check_group(dict(group), len(self.param_groups), seen))

    # -- validation helpers ----------------------------------------------------------
    def _validate(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        if not callable(lr) and (isinstance(lr, bool) or not isinstance(lr, (int, float))
                                 or not math.isfinite(lr) or lr < 0):
            raise ValueError(f"{self._name()}: lr must be a non-negative float or a schedule, got {lr!r}")
        if "weight_decay" in group:
            self._check_number(group, "weight_decay", 0.0)

    def _check_number(self, group: dict[str, Any], key: str, low: float, high: float | None = None,
                      high_open: bool = True) -> None:
        """``group[key]`` must be a finite real in [low, high) (or [low, high] if not high_open)."""
        v = group[key]
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
        if not ok:
            rng = f"[{low}, {high})" if high is not None and high_open else (
                f"[{low}, {high}]" if high is not None else f">= {low}")
            raise ValueError(f"{self._name()}: {key} must be a real number in {rng}, got {v!r}")

    def _check_betas(self, group: dict[str, Any]) -> None:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{self._name()}: betas must be a pair (beta1, beta2), got {betas!r}")
        for k, b in enumerate(betas):
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 <= b < 1.0:
                raise ValueError(f"{self._name()}: betas[{k}] must be in [0, 1), got {b!r}")
        group["betas"] = (float(betas[0]), float(betas[1]))

    # -- stepping -------------------------------------------------------------------
    def lr_at(self, group: dict[str, Any], step: int | None = None) -> float:
        """The group's learning rate for step ``step`` (default: the next step)."""
        lr = group["lr"]
        return float(lr(self.step_count if step is None else step)) if callable(lr) else float(lr)

    def zero_grad(self) -> None:
        """Reset every gradient to None (the next backward writes fresh arrays)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that requires grad and has a gradient (frozen ones are skipped).

        All-or-nothing: a bad gradient or an error while computing leaves everything as it was.
        """
        lrs = [self.lr_at(g) for g in self.param_groups]
        for i, lr in enumerate(lrs):  # check every schedule value before touching any parameter
            if not math.isfinite(lr) or lr < 0:
                raise ValueError(f"{self._name()}: the schedule of param group {i} returned lr={lr!r} "
                                 f"at step {self.step_count}; expected a finite value >= 0")
        jobs = []
        for gi, (group, lr) in enumerate(zip(self.param_groups, lrs)):
            for pi, p in enumerate(group["params"]):
                if not p.requires_grad or p.grad is None:
                    continue
                self._check_grad(p, gi, pi)
                jobs.append((p, self._state_for(p, group), group, lr))
        results = run_updates(self._update, jobs)  # new arrays only; nothing written yet
        with deferred_interrupts():  # commit: plain assignments, never torn by Ctrl-C
            for (p, _, _, _), (data, state) in zip(jobs, results):
                p.data = data
                self.state[id(p)] = state
            self.step_count += 1

    def _check_grad(self, p: Parameter, gi: int, pi: int) -> None:
        """The gradient must be an array of exactly the parameter's shape, dtype and place."""
        g = p.grad

        def where() -> str:  # formatted only for an error message, not for every parameter every step
            return f"parameter {pi} of param group {gi} ({p!r})"

        if not (hasattr(g, "shape") and hasattr(g, "dtype")):
            raise TypeError(f"{self._name()}.step: the gradient of {where()} is a {type(g).__name__}, "
                            "expected an array")
        if tuple(g.shape) != p.shape:
            raise ValueError(f"{self._name()}.step: the gradient of {where()} has shape {tuple(g.shape)}, "
                             f"expected {p.shape} (the parameter's; gradients are never broadcast)")
        if g.dtype != p.data.dtype:
            raise TypeError(f"{self._name()}.step: the gradient of {where()} has dtype {g.dtype}, "
                            f"expected {p.data.dtype} (the parameter's)")
        try:
            same = array_namespace(g) is array_namespace(p.data) and _device(g) == _device(p.data)
        except TypeError:
            same = False
        if not same:
            raise ValueError(f"{self._name()}.step: the gradient of {where()} is a {type(g).__name__} on "
                             f"another backend or device than the parameter ({type(p.data).__name__})")

    def _state_for(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        """The parameter's state (zeros before its first step), on its device and dtype; not stored."""
        st = self.state.get(id(p))
        if st is None:
            xp = array_namespace(p.data)
            st = {name: xp.zeros_like(p.data) for name in self._slots(group)}
            st.update({name: 0 for name in self._counters})
            return st
        moved = {}
        for name, a in st.items():
            if not isinstance(a, int) and (type(a) is not type(p.data) or a.dtype != p.data.dtype
                                           or _device(a) != _device(p.data)):
                # the model was moved with .to(): follow it (a one-off transfer)
                a = backend_of(p.data).asarray(to_numpy(a), dtype=p.data.dtype)
            moved[name] = a
        return moved

    def _slots(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ()

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any],
                lr: float) -> tuple[Any, dict[str, Any]]:
        """``(new p.data, new state)`` from ``p.data``, ``p.grad`` and ``state``, which it must not write."""
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Host copy of the whole optimizer state: NumPy arrays and plain Python values.

        ``{"type": "Adam", "step_count": k, "param_groups": [{..., "params": [0, 1]}],
        "state": {0: {"step": k, "exp_avg": ndarray, ...}}}``.  Parameters are numbered
        in group order, as PyTorch does.  A schedule ``lr`` is stored as ``"schedule"``.
        """
        groups, state, index = [], {}, 0
        for group in self.param_groups:
            g = {}
            for k, v in group.items():
                if k == "params":
                    continue
                g[k] = "schedule" if callable(v) else (list(v) if isinstance(v, tuple) else v)
            g["params"] = list(range(index, index + len(group["params"])))
            for p in group["params"]:
                st = self.state.get(id(p))
                if st is not None:
                    state[index] = {k: (v if isinstance(v, int) else to_numpy(v)) for k, v in st.items()}
                index += 1
            groups.append(g)
        return {"type": self._name(), "step_count": self.step_count, "param_groups": groups, "state": state}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (onto the parameters' current backend and dtype).

        Everything is checked before anything is written: a state dict from another
        optimizer type, with a different number of groups or parameters, other
        hyper-parameter names, or arrays of other shapes raises and leaves this
        optimizer unchanged.  Schedules stay those of this optimizer; the step count
        is restored, so a schedule continues where it stopped.
        """
        self.commit_state(self.stage_state_dict(sd))

    def commit_state(self, staged: tuple[list, dict, int]) -> None:
        """Install what :meth:`stage_state_dict` returned (assignments only; cannot fail)."""
        with deferred_interrupts():
            self.param_groups, self.state, self.step_count = staged

    def stage_state_dict(self, sd: dict[str, Any]) -> tuple[list, dict, int]:
        """Check ``sd`` completely and build the new state without installing it.

        Returns ``(param_groups, state, step_count)`` for :meth:`commit_state`; raises
        ValueError/TypeError naming the first problem.  ``nn.load`` stages every part of
        a checkpoint this way before it changes anything.
        """
        name = self._name()
        if not isinstance(sd, dict) or not {"type", "step_count", "param_groups", "state"} <= set(sd):
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'type', 'step_count', "
                             f"'param_groups', 'state', got {_describe(sd)}")
        if sd["type"] != name:
            raise ValueError(f"{name}.load_state_dict: the state dict is from a {sd['type']!r} optimizer, "
                             f"expected {name!r}")
        step_count = sd["step_count"]
        if isinstance(step_count, bool) or not isinstance(step_count, int) or step_count < 0:
            raise ValueError(f"{name}.load_state_dict: step_count must be an int >= 0, got {step_count!r}")
        saved, saved_state = sd["param_groups"], sd["state"]
        if not isinstance(saved, list) or not all(isinstance(g, dict) for g in saved):
            raise TypeError(f"{name}.load_state_dict: param_groups must be a list of dicts, got {saved!r:.80}")
        if not isinstance(saved_state, dict) or not all(isinstance(e, dict) for e in saved_state.values()):
            raise TypeError(f"{name}.load_state_dict: state must be a dict of dicts, got {saved_state!r:.80}")
        if len(saved) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        new_groups, params = [], []
        for i, (sg, group) in enumerate(zip(saved, self.param_groups)):
            if len(sg.get("params", ())) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: param group {i} has {len(sg.get('params', ()))} "
                                 f"parameters in the state dict, {len(group['params'])} here")
            keys = set(sg) - {"params"}
            if keys != set(self.defaults):
                raise ValueError(f"{name}.load_state_dict: param group {i} has options {sorted(keys)}, "
                                 f"expected {sorted(self.defaults)}")
            full = dict(group)
            for k in self.defaults:
                v = sg[k]
                if v == "schedule":
                    if not callable(group[k]):
                        raise ValueError(f"{name}.load_state_dict: param group {i} was saved with a "
                                         f"schedule for {k!r}; pass the schedule to this optimizer")
                    continue
                full[k] = tuple(v) if isinstance(v, list) else v
            self._validate(full)
            new_groups.append(full)
            params.extend((p, full) for p in group["params"])
        new_state: dict[int, dict[str, Any]] = {}
        for key, entry in saved_state.items():
            if isinstance(key, bool) or not isinstance(key, (int, str)) or not str(key).isdigit():
                raise ValueError(f"{name}.load_state_dict: state keys must be parameter numbers, got {key!r}")
            idx = int(key)
            if not 0 <= idx < len(params):
                raise ValueError(f"{name}.load_state_dict: state for parameter {idx}, but there are "
                                 f"{len(params)} parameters")
            p, group = params[idx]
            want = set(self._slots(group)) | set(self._counters)
            if set(entry) != want:
                raise ValueError(f"{name}.load_state_dict: state of parameter {idx} has keys {sorted(entry)}, "
                                 f"expected {sorted(want)}")
            st = {}
            for k, v in entry.items():
                if k in self._counters:
                    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                        raise ValueError(f"{name}.load_state_dict: state[{idx}][{k!r}] must be an int >= 0, "
                                         f"got {v!r}")
                    st[k] = int(v)
                    continue
                if not (hasattr(v, "shape") and hasattr(v, "dtype")):
                    raise TypeError(f"{name}.load_state_dict: state[{idx}][{k!r}] must be an array, "
                                    f"got {type(v).__name__}")
                host = to_numpy(v)
                if host.dtype.kind != "f":
                    raise TypeError(f"{name}.load_state_dict: state[{idx}][{k!r}] has dtype {host.dtype}, "
                                    "expected a floating dtype")
                if tuple(host.shape) != p.shape:
                    raise ValueError(f"{name}.load_state_dict: state[{idx}][{k!r}] has shape "
                                     f"{tuple(host.shape)}, expected {p.shape} (the parameter's)")
                st[k] = host
            new_state[id(p)] = st
        for st, p in ((new_state[id(p)], p) for p, _ in params if id(p) in new_state):
            b = backend_of(p.data)
            for k, v in st.items():
                if not isinstance(v, int):
                    st[k] = b.asarray(v.copy(), dtype=p.data.dtype)
        return new_groups, new_state, step_count

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{self._name()}({opts}; {len(self.param_groups)} group(s), {len(self.parameters())} params)"


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(map(str, obj))}"
    return f"a {type(obj).__name__}"


def param_groups_no_decay(model: Any, weight_decay: float, **overrides: Any) -> list[dict[str, Any]]:
    """Two param groups: weights (>= 2-D) with ``weight_decay``, 1-D parameters (biases,
    norm scales and shifts) with none -- the usual recipe (e.g. for AdamW).

    Args:
        model: a Layer (or an iterable of ``(name, Parameter)`` pairs or Parameters).
        weight_decay: the decay of the >= 2-D parameters.
        overrides: further options put in both groups (e.g. ``lr=...``).

    Empty groups are left out.
    """
    if hasattr(model, "named_parameters"):
        params = [p for _, p in model.named_parameters()]
    else:
        params = [item[1] if isinstance(item, tuple) else item for item in model]
    decay = [p for p in params if len(p.shape) >= 2]
    no_decay = [p for p in params if len(p.shape) < 2]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, **overrides})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, **overrides})
    if not groups:
        raise ValueError("param_groups_no_decay: the model has no parameters")
    return groups
