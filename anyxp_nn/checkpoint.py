"""Checkpoints: the whole training state in one ``.npz`` file, without pickle.

Layout of the file (``numpy.savez``, read back with ``allow_pickle=False``):

* ``a0, a1, ...``: every array -- model parameters and buffers, optimizer slots;
* ``__meta__``: UTF-8 JSON as a uint8 array -- format version, which array is
  which (key, shape, dtype), the optimizer state with array placeholders,
  generator states (the default generator and the loader's), epoch, step,
  history and user extras;
* ``__checksum__``: SHA-256 over the metadata and every array's name, dtype,
  shape and bytes, as a uint8 array of the hex digest.

Writes are atomic: the file is written to a temporary file in the same
directory, flushed and fsync'ed, then ``os.replace``'d over the target, so an
interrupted save (Ctrl-C, a crash, a full disk) leaves the previous checkpoint
intact.  Loading verifies the checksum (a truncated or tampered file is
refused), checks every key, shape and dtype against the model and names each
mismatch, and writes nothing into the model or optimizer unless everything
validates.  Arrays are host NumPy, so a run saved on one backend resumes on any other.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from . import random as _random

__all__ = ["save", "load", "CheckpointError"]

FORMAT = "anyxp_nn.checkpoint"
VERSION = 1
_RESERVED = ("epoch", "step", "history", "loader")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the model/optimizer."""


# -- saving ------------------------------------------------------------------------
def _flatten(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """JSON-able copy of ``obj`` with every array replaced by ``{"__array__": name}``."""
    if isinstance(obj, np.ndarray) or (hasattr(obj, "shape") and hasattr(obj, "dtype")
                                       and not isinstance(obj, np.generic)):
        from .backend import to_numpy
        name = f"a{len(arrays)}"
        host = to_numpy(obj)
        arrays[name] = np.ascontiguousarray(host).reshape(host.shape)  # keeps 0-d arrays 0-d
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


def _unflatten(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        return {k: _unflatten(v, arrays) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, arrays) for v in obj]
    return obj


def _digest(meta: bytes, arrays: dict[str, np.ndarray]) -> bytes:
    h = hashlib.sha256(meta)
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest().encode()


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True, separators=(",", ":")).encode("utf-8")


def save(path: "str | os.PathLike", model: Any, optimizer: Any = None, **extra: Any) -> Path:
    """Write the training state of ``model`` (and ``optimizer``) to ``path`` atomically.

    Args:
        path: target file (written as given; ``.npz`` is a good suffix).
        model: a Layer; its ``state_dict()`` (parameters and buffers) is stored.
        optimizer: optional; its ``state_dict()`` (slots, step count = schedule position).
        extra: JSON values stored as metadata; these names are understood:
            ``epoch``, ``step`` (ints), ``history`` (a :class:`History`), ``loader``
            (a DataLoader: its generator state and epoch counter).
            The default generator's state is always stored.

    Returns the path.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    model_entries = []
    for key, value in model.state_dict().items():
        name = f"a{len(arrays)}"
        arrays[name] = np.ascontiguousarray(value).reshape(value.shape)  # numpy makes 0-d arrays 1-d here
        model_entries.append([key, name, list(value.shape), value.dtype.str])
    opt_meta = None
    if optimizer is not None:
        if not hasattr(optimizer, "state_dict"):
            raise TypeError(f"save: the optimizer {type(optimizer).__name__} has no state_dict()")
        opt_meta = {"class": type(optimizer).__name__,
                    "state": _flatten(optimizer.state_dict(), arrays, "optimizer.state_dict()")}
    history = extra.pop("history", None)
    loader = extra.pop("loader", None)
    epoch, step = extra.pop("epoch", None), extra.pop("step", None)
    user = _flatten(extra, {}, "extra")  # JSON values only: arrays are refused below
    if _has_array(user):
        raise TypeError("save: extra values must be JSON values (numbers, strings, lists, dicts), not arrays")
    meta = {
        "format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "backend": getattr(getattr(model, "backend", None), "label", None),
        "model": {"class": type(model).__name__, "entries": model_entries},
        "optimizer": opt_meta,
        "rng": {"default": _random.default_generator.get_state(),
                "loader": loader.rng.get_state() if loader is not None else None},
        "loader": {"epoch": loader.epoch} if loader is not None else None,
        "epoch": epoch, "step": step,
        "history": history.to_dict() if history is not None else None,
        "extra": user,
    }
    meta_bytes = _json_bytes(meta)
    digest = _digest(meta_bytes, arrays)
    payload = dict(arrays)
    payload["__meta__"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    payload["__checksum__"] = np.frombuffer(digest, dtype=np.uint8)
    _atomic_savez(path, payload)
    return path


def _has_array(obj: Any) -> bool:
    if isinstance(obj, dict):
        return "__array__" in obj or any(_has_array(v) for _, v in obj.get("__dict__", []))
    if isinstance(obj, list):
        return any(_has_array(v) for v in obj)
    return False


def _atomic_savez(path: Path, payload: dict[str, np.ndarray]) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort; not possible on every OS)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# -- loading -----------------------------------------------------------------------
def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.exists():
        raise FileNotFoundError(f"load: no checkpoint at {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {name: f[name] for name in f.files}
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, ValueError) as e:
        raise CheckpointError(f"load: {str(path)!r} is truncated or corrupted and cannot be read "
                              f"({type(e).__name__}: {e})") from None
    if "__meta__" not in data or "__checksum__" not in data:
        raise CheckpointError(f"load: {str(path)!r} is not an anyxp_nn checkpoint (no __meta__/__checksum__ entry)")
    meta_bytes = data.pop("__meta__").tobytes()
    stored = data.pop("__checksum__").tobytes()
    if _digest(meta_bytes, data) != stored:
        raise CheckpointError(f"load: checksum mismatch in {str(path)!r}: the file was modified or damaged "
                              "after it was written; refusing to load it")
    meta = json.loads(meta_bytes.decode("utf-8"))
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"load: {str(path)!r} is not an anyxp_nn checkpoint (format {meta.get('format')!r})")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"load: {str(path)!r} has format version {meta['version']}, this anyxp_nn reads "
                              f"up to {VERSION}; upgrade anyxp_nn")
    return meta, data


def _match_model(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                 model: Any) -> dict[str, np.ndarray]:
    """The model's state from the file, after checking every key, shape, dtype and value."""
    current = model.state_dict()
    saved = {key: (name, tuple(shape), np.dtype(dt)) for key, name, shape, dt in meta["model"]["entries"]}
    problems = []
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    for key, (name, shape, dt) in saved.items():
        if key not in current:
            continue
        cur = current[key]
        if shape != tuple(cur.shape):
            problems.append(f"{key!r} has shape {shape} in the file, {tuple(cur.shape)} in the model")
        if dt != cur.dtype:
            problems.append(f"{key!r} has dtype {dt} in the file, {cur.dtype} in the model")
        a = arrays[name]
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            problems.append(f"{key!r} holds non-finite values")
    if problems:
        raise CheckpointError(f"load: {str(path)!r} does not match the model (saved from a "
                              f"{meta['model']['class']}, loading into a {type(model).__name__}): "
                              + "; ".join(problems))
    return {key: arrays[name] for key, (name, _, _) in saved.items()}


def _few(keys: list[str], n: int = 12) -> str:
    return str(keys) if len(keys) <= n else f"{keys[:n]} (+{len(keys) - n} more)"


def load(path: "str | os.PathLike", model: Any, optimizer: Any = None, *, loader: Any = None,
         restore_rng: bool = True) -> dict[str, Any]:
    """Restore a :func:`save`'d state into ``model`` (and ``optimizer``, ``loader``).

    Everything is validated first (checksum, keys, shapes, dtypes, finiteness, the
    optimizer's state); if anything does not match, a :class:`CheckpointError`
    (a ValueError) names every mismatch and nothing is changed.  Arrays land on the
    model's current backend, whichever backend wrote the file.

    Returns the metadata: ``{"epoch", "step", "history" (a History or None),
    "backend" (where it was saved), **extra}``.
    """
    from .training.history import History
    path = Path(path)
    meta, arrays = _read(path)
    model_state = _match_model(path, meta, arrays, model)
    opt_state = None
    if optimizer is not None:
        if meta.get("optimizer") is None:
            raise CheckpointError(f"load: {str(path)!r} holds no optimizer state (saved with optimizer=None)")
        if meta["optimizer"]["class"] != type(optimizer).__name__:
            raise CheckpointError(f"load: {str(path)!r} holds a {meta['optimizer']['class']} optimizer state, "
                                  f"expected {type(optimizer).__name__}")
        opt_state = _unflatten(meta["optimizer"]["state"], arrays)
    rng_state = meta.get("rng") or {}
    if loader is not None and restore_rng and rng_state.get("loader") is None:
        raise CheckpointError(f"load: {str(path)!r} holds no data loader state (saved without loader=)")
    history = History.from_dict(meta["history"]) if meta.get("history") is not None else None

    # Everything validated; the optimizer checks its own state before writing anything.
    before = optimizer.state_dict() if optimizer is not None else None
    if optimizer is not None:
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"load: the optimizer state in {str(path)!r} does not fit: {e}") from None
    try:
        model.load_state_dict(model_state)
    except BaseException:
        if optimizer is not None:
            optimizer.load_state_dict(before)
        raise
    if restore_rng:
        if rng_state.get("default") is not None:
            _random.default_generator.set_state(rng_state["default"])
        if loader is not None:
            loader.rng.set_state(rng_state["loader"])
            loader.epoch = int((meta.get("loader") or {}).get("epoch", 0))
    extra = _unflatten(meta.get("extra") or {"__dict__": []}, {})
    return {"epoch": meta.get("epoch"), "step": meta.get("step"), "history": history,
            "backend": meta.get("backend"), **extra}
