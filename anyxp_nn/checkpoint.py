"""Checkpoints: the whole training state in one ``.npz`` file, without pickle.

Layout of the file (a zip of ``.npy`` members, as ``numpy.savez`` writes it):

* ``a0, a1, ...``: every array -- model parameters and buffers, optimizer slots;
* ``__meta__``: UTF-8 JSON as a uint8 array -- format version, a table of every
  array (shape, dtype), which model key is which array, the optimizer state with
  array placeholders, generator states (the default generator and the loader's),
  epoch, step, history and user extras;
* ``__checksum__``: SHA-256 over the metadata and every array's name, dtype,
  shape and bytes, as a uint8 array of the hex digest.

Guarantees (tested in ``tests/test_reliability*.py``, summarised in docs/training.md):

* **Atomic writes.**  The file is written to ``.<name>.<pid>.<random>.tmp`` in the
  same folder, flushed, fsync'ed and ``os.replace``'d over the target, so a save
  killed at any point (Ctrl-C, ``kill -9``, a full disk) leaves the previous
  checkpoint intact.  Such leftovers of writers that no longer run are removed by
  the next save to the same target.  A model holding NaN or inf is refused at save time.
* **No pickle, bounded reads.**  Members are parsed by :mod:`anyxp_nn.checkpoint_format`
  (zip headers, ``.npy`` headers, JSON): object arrays, pickles and compression methods other than
  stored/deflate are refused.  Before anything is decompressed, every member's
  declared size is checked against the array table in the metadata, the model's
  shapes and ``max_bytes``; a member cannot decompress past its declared size.
* **All or nothing.**  ``load`` checks the checksum, every key, shape, dtype and
  value of the model, the optimizer state, the loader and generator states and the
  history before it changes anything; then the new state is installed with Ctrl-C
  held back.  A failed load changes nothing.
* **Readable errors.**  Everything wrong with a file raises :class:`CheckpointError`
  (a ValueError) naming the file and the problem.

Arrays are host NumPy, so a run saved on one backend resumes on any other.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import random as _random
from ._atomic import atomic_write, deferred_interrupts
from .backend import to_numpy
from .checkpoint_format import (FORMAT, VERSION, CheckpointError, CheckpointNotFoundError, check_path, digest,
                                few, json_bytes, read_checkpoint, read_info)

__all__ = ["save", "load", "read_info", "CheckpointError", "CheckpointNotFoundError"]

# -- saving ------------------------------------------------------------------------
def _host_array(obj: Any) -> np.ndarray:
    return np.asarray(to_numpy(obj), order="C")  # keeps 0-d arrays 0-d (ascontiguousarray would not)


def _is_array(obj: Any) -> bool:
    return isinstance(obj, np.ndarray) or (hasattr(obj, "shape") and hasattr(obj, "dtype")
                                           and not isinstance(obj, np.generic))


def _flatten(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """JSON-able copy of ``obj`` with every array replaced by ``{"__array__": name}``."""
    if _is_array(obj):
        name = f"a{len(arrays)}"
        arrays[name] = _host_array(obj)
        return {"__array__": name}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k, where), _flatten(v, arrays, f"{where}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"save: {where} is a {type(obj).__name__}, which a checkpoint cannot store "
                    "(JSON values and arrays only; no pickle)")


def _key(k: Any, where: str) -> Any:
    if isinstance(k, (str, int)) and not isinstance(k, bool):
        return k
    raise TypeError(f"save: {where} has a key of type {type(k).__name__}; only str and int keys are stored")


def save(path: "str | os.PathLike", model: Any, optimizer: Any = None, **extra: Any) -> Path:
    """Write the training state of ``model`` (and ``optimizer``) to ``path`` atomically.

    Args:
        path: target file (written as given; ``.npz`` is a good suffix).
        model: a Layer; its ``state_dict()`` (parameters and buffers) is stored.
            A model holding NaN or inf is refused (:class:`CheckpointError`).
        optimizer: optional; its ``state_dict()`` (slots, step count = schedule position).
        extra: JSON values stored as metadata; these names are understood:
            ``epoch``, ``step`` (ints), ``history`` (a :class:`History`), ``loader``
            (a DataLoader: its generator state and epoch counter).
            The calling thread's default generator state is always stored.

    Returns the path.
    """
    path = check_path(path, "save")
    arrays: dict[str, np.ndarray] = {}
    model_entries, bad = [], []
    for key, value in model.state_dict().items():
        name = f"a{len(arrays)}"
        arrays[name] = a = _host_array(value)
        model_entries.append([key, name, list(a.shape), a.dtype.str])
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            bad.append(key)
    if bad:
        raise CheckpointError(f"save: the model holds NaN or inf in {few(bad)}; refusing to write a "
                              f"checkpoint that load() would refuse (the previous file at {str(path)!r} is kept)")
    opt_meta = None
    if optimizer is not None:
        if not hasattr(optimizer, "state_dict"):
            raise TypeError(f"save: the optimizer {type(optimizer).__name__} has no state_dict()")
        opt_meta = {"class": type(optimizer).__name__,
                    "state": _flatten(optimizer.state_dict(), arrays, "optimizer.state_dict()")}
    history = extra.pop("history", None)
    loader = extra.pop("loader", None)
    loader_state = loader.state_dict() if loader is not None else None  # {"epoch", "rng"}
    epoch, step = extra.pop("epoch", None), extra.pop("step", None)
    for name, v in (("epoch", epoch), ("step", step)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise TypeError(f"save: `{name}` must be an int >= 0 or None, got {v!r}")
    user = _flatten(extra, {}, "extra")  # JSON values only: arrays are refused below
    if _has_array(user):
        raise TypeError("save: extra values must be JSON values (numbers, strings, lists, dicts), not arrays")
    meta = {
        "format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "backend": getattr(getattr(model, "backend", None), "label", None),
        "arrays": {name: [list(a.shape), a.dtype.str] for name, a in arrays.items()},
        "model": {"class": type(model).__name__, "entries": model_entries},
        "optimizer": opt_meta,
        "rng": {"default": _random.default_generator.get_state(),
                "loader": loader_state["rng"] if loader is not None else None},
        "loader": {"epoch": int(loader_state["epoch"])} if loader is not None else None,
        "epoch": None if epoch is None else int(epoch), "step": None if step is None else int(step),
        "history": history.to_dict() if history is not None else None,
        "extra": user,
    }
    meta_bytes = json_bytes(meta)
    payload = dict(arrays)
    payload["__meta__"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    payload["__checksum__"] = np.frombuffer(digest(meta_bytes, arrays), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))
    return path


def _has_array(obj: Any) -> bool:
    if isinstance(obj, dict):
        return "__array__" in obj or any(_has_array(v) for _, v in obj.get("__dict__", []))
    if isinstance(obj, list):
        return any(_has_array(v) for v in obj)
    return False


# -- staging: everything checked, nothing written ------------------------------------
def _unflatten(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            if obj["__array__"] not in arrays:
                raise CheckpointError(f"{where}: the metadata refers to array {obj['__array__']!r}, which the "
                                      "file does not hold")
            return arrays[obj["__array__"]]
        pairs = obj.get("__dict__")
        if not isinstance(pairs, list) or not all(isinstance(kv, list) and len(kv) == 2 for kv in pairs):
            raise CheckpointError(f"{where}: malformed metadata (a dict entry {str(obj)[:60]})")
        return {k: _unflatten(v, arrays, where) for k, v in pairs}
    if isinstance(obj, list):
        return [_unflatten(v, arrays, where) for v in obj]
    return obj


def _match_model(where: str, meta: dict[str, Any], described: dict[str, tuple], model: Any,
                 current: dict[str, np.ndarray], arrays: "dict[str, np.ndarray] | None" = None) -> dict[str, Any]:
    """Check every model key, shape and dtype (``described``: array name -> (shape, dtype)),
    and with ``arrays`` every value; returns the model's state from the file (key -> array name,
    or key -> array when ``arrays`` is given).  ``current`` is ``model.state_dict()``."""
    entries = (meta.get("model") or {}).get("entries") if isinstance(meta.get("model"), dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 4 and isinstance(e[0], str) and e[1] in described for e in entries):
        raise CheckpointError(f"{where}: malformed model entries in the metadata")
    saved = {key: name for key, name, _, _ in entries}
    problems = []
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    if missing:
        problems.append(f"missing keys {few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {few(unexpected)}")
    for key, name in saved.items():
        if key not in current:
            continue
        cur, (shape, dtype) = current[key], described[name]
        if tuple(shape) != tuple(cur.shape):
            problems.append(f"{key!r} has shape {tuple(shape)} in the file, {tuple(cur.shape)} in the model")
        if dtype != cur.dtype:
            problems.append(f"{key!r} has dtype {dtype} in the file, {cur.dtype} in the model")
        if arrays is not None and dtype.kind in "fc" and not np.isfinite(arrays[name]).all():
            problems.append(f"{key!r} holds non-finite values")
    if problems:
        saved_from = meta["model"].get("class")
        raise CheckpointError(f"{where} does not match the model (saved from a {saved_from}, loading into a "
                              f"{type(model).__name__}): " + "; ".join(problems))
    return {key: (arrays[name] if arrays is not None else name) for key, name in saved.items()}


def _checked_rng_state(state: Any, where: str, what: str) -> dict[str, Any]:
    """``state`` if a generator accepts it (tried on a scratch generator)."""
    try:
        _random.Generator(0).set_state(state)
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{where} holds an invalid {what} generator state ({type(e).__name__}: "
                              f"{str(e)[:100]})") from None
    return state


def _stage(where: str, meta: dict[str, Any], arrays: dict[str, np.ndarray], model: Any,
           current: dict[str, np.ndarray], optimizer: Any, loader: Any, restore_rng: bool) -> dict[str, Any]:
    """Every part of the new state, validated; nothing is written."""
    described = {name: (a.shape, a.dtype) for name, a in arrays.items()}
    staged: dict[str, Any] = {"model": _match_model(where, meta, described, model, current, arrays)}
    if optimizer is not None:
        opt = meta.get("optimizer")
        if opt is None:
            raise CheckpointError(f"{where} holds no optimizer state (saved with optimizer=None)")
        if not isinstance(opt, dict) or opt.get("class") != type(optimizer).__name__:
            cls = opt.get("class") if isinstance(opt, dict) else opt
            raise CheckpointError(f"{where} holds a {cls} optimizer state, expected {type(optimizer).__name__}")
        try:
            staged["optimizer"] = optimizer.stage_state_dict(_unflatten(opt.get("state"), arrays, where))
        except CheckpointError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            raise CheckpointError(f"{where}: the optimizer state does not fit: {e}") from None
    rng = meta.get("rng") or {}
    if not isinstance(rng, dict):
        raise CheckpointError(f"{where}: malformed generator states in the metadata")
    if restore_rng and rng.get("default") is not None:
        staged["rng"] = _checked_rng_state(rng["default"], where, "default")
    if loader is not None:
        if rng.get("loader") is None:
            raise CheckpointError(f"{where} holds no data loader state (saved without loader=)")
        epoch = (meta.get("loader") or {}).get("epoch") if isinstance(meta.get("loader"), dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise CheckpointError(f"{where}: the loader's epoch must be an int >= 0, got {epoch!r}")
        staged["loader"] = (_checked_rng_state(rng["loader"], where, "loader"), epoch)
    for key in ("epoch", "step"):
        v = meta.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise CheckpointError(f"{where}: `{key}` must be an int >= 0 or null, got {v!r}")
    hist = meta.get("history")
    if hist is not None:
        if not (isinstance(hist, dict) and all(isinstance(hist.get(k), dict) and all(
                isinstance(c, list) for c in hist[k].values()) for k in ("steps", "epochs"))):
            raise CheckpointError(f"{where}: malformed history in the metadata")
        staged["history"] = hist  # plain data: training.History.from_dict turns it into a History
    extra = _unflatten(meta.get("extra") or {"__dict__": []}, {}, where)
    if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
        raise CheckpointError(f"{where}: malformed extra values in the metadata")
    staged["extra"] = extra
    return staged


def load(path: "str | os.PathLike", model: Any, optimizer: Any = None, *, loader: Any = None,
         restore_rng: bool = False, max_bytes: "int | None" = None) -> dict[str, Any]:
    """Restore a :func:`save`'d state into ``model`` (and ``optimizer``, ``loader``).

    Args:
        path: the checkpoint file.
        model: receives the parameters and buffers (on its current backend and dtype).
        optimizer: receives slots, counters and the step count (schedule position).
        loader: a DataLoader; receives its generator state and epoch counter.
        restore_rng: also set the calling thread's default generator to its saved state
            (off by default, so loading weights for inference changes no later draw;
            ``fit(resume=...)`` turns it on to replay a run exactly).
        max_bytes: refuse files whose members declare more uncompressed bytes in total
            (default: 8 times the model's state plus 64 MiB, enough for any optimizer
            here and a long history; a crafted "zip bomb" is refused before decompression).

    Everything is validated first (sizes, checksum, keys, shapes, dtypes, finiteness,
    the optimizer, loader and generator states, the history); if anything does not
    match, a :class:`CheckpointError` (a ValueError) names the problem and nothing is
    changed.  Then the new state is installed with Ctrl-C held back.

    Returns the metadata: ``{"epoch", "step", "history" (plain data, as
    ``History.to_dict()`` wrote it, or None; ``History.from_dict`` rebuilds the History),
    "backend" (where it was saved), **extra}``.
    """
    path = check_path(path, "load")
    current = model.state_dict()  # host copies, taken once (a device-to-host transfer)
    if max_bytes is None:
        max_bytes = 8 * sum(a.nbytes for a in current.values()) + (1 << 26)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"load: `max_bytes` must be a positive int or None, got {max_bytes!r}")
    where = f"load: {str(path)!r}"
    meta, arrays = read_checkpoint(path, max_bytes, lambda meta, table: _match_model(where, meta, table, model, current))
    try:
        staged = _stage(where, meta, arrays, model, current, optimizer, loader, restore_rng)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError) as e:
        raise CheckpointError(f"{where} has malformed metadata ({type(e).__name__}: {str(e)[:120]})") from None
    with deferred_interrupts():
        try:  # validates again and stages before writing: a failure here leaves the model as it was
            model.load_state_dict(staged["model"])
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{where} does not fit the model: {e}") from None
        if "optimizer" in staged:
            optimizer.commit_state(staged["optimizer"])
        if "rng" in staged:
            _random.default_generator.set_state(staged["rng"])
        if "loader" in staged:
            loader.load_state_dict({"rng": staged["loader"][0], "epoch": staged["loader"][1]})
    return {"epoch": meta.get("epoch"), "step": meta.get("step"), "history": staged.get("history"),
            "backend": meta.get("backend"), **staged["extra"]}
