"""The checkpoint file format, and reading it back without trusting it.

A checkpoint is a zip of ``.npy`` members, as ``numpy.savez`` writes it: ``a0, a1, ...``
(every array), ``__meta__`` (UTF-8 JSON as uint8: format, version, a table of every
array's shape and dtype, and what :mod:`anyxp_nn.checkpoint` stores) and
``__checksum__`` (the SHA-256 hex digest of :func:`digest`).

:func:`read_checkpoint` parses the zip and ``.npy`` headers and the JSON itself (object
arrays, pickles and compression methods other than stored/deflate are refused), and
checks every member's declared size against the array table, a caller's check and a
byte limit *before* it decompresses anything; a member never inflates past its declared
size.  Every problem is a :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["CheckpointError", "CheckpointNotFoundError", "FORMAT", "VERSION", "check_path", "digest",
           "json_bytes", "read_checkpoint", "read_info", "few"]

FORMAT = "anyxp_nn.checkpoint"
VERSION = 2               # 2 added the array table; version 1 files still load
_META_MAX_BYTES = 1 << 28     # 256 MiB of JSON metadata (a long per-step history is a few MiB)
_NPY_HEADER_MAX = 1 << 16     # a .npy header (magic + length + dict) is at most this long
_DTYPES = {np.dtype(t).str for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                                     "uint64", "float16", "float32", "float64", "complex64", "complex128")}
_MEMBER = re.compile(r"(a\d+|__meta__|__checksum__)\.npy")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the model/optimizer."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint at the given path (both a CheckpointError and a FileNotFoundError)."""


# -- paths -------------------------------------------------------------------------
def check_path(path: Any, fn: str) -> Path:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: `path` must be a str or os.PathLike, got {type(path).__name__}")
    if str(path).strip() == "":
        raise CheckpointError(f"{fn}: `path` is empty; pass a file name such as 'model.npz'")
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{fn}: `path` {str(p)!r} is a directory; pass a file name inside it")
    return p


# -- writing helpers -------------------------------------------------------------------
def digest(meta: bytes, arrays: dict[str, np.ndarray]) -> bytes:
    h = hashlib.sha256(meta)
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest().encode()


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True, separators=(",", ":")).encode("utf-8")


# -- reading -----------------------------------------------------------------------
def _parse_npy(raw: bytes, where: str) -> np.ndarray:
    """A ``.npy`` member's array, parsed without pickle and without trusting its header."""
    if raw[:6] != b"\x93NUMPY" or len(raw) < 10:
        raise CheckpointError(f"{where} is not a .npy array")
    major = raw[6]
    if major == 1:
        hlen, start = int.from_bytes(raw[8:10], "little"), 10
    elif major in (2, 3):
        hlen, start = int.from_bytes(raw[8:12], "little"), 12
    else:
        raise CheckpointError(f"{where} has an unknown .npy version {major}")
    if start + hlen > min(len(raw), _NPY_HEADER_MAX):
        raise CheckpointError(f"{where} has a damaged .npy header")
    try:
        header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
        dtype = np.dtype(descr) if isinstance(descr, str) else None
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError) as e:
        raise CheckpointError(f"{where} has a damaged .npy header ({type(e).__name__})") from None
    if dtype is None or dtype.str not in _DTYPES or fortran is not False:
        raise CheckpointError(f"{where} has dtype {descr!r} (fortran_order={fortran!r}); checkpoints hold "
                              "only C-ordered bool, integer, floating and complex arrays")
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise CheckpointError(f"{where} has an invalid shape {shape!r}")
    nbytes = math.prod(shape) * dtype.itemsize
    body = raw[start + hlen:]
    if len(body) != nbytes:
        raise CheckpointError(f"{where} holds {len(body)} bytes, its header says {nbytes}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).copy()


def read_checkpoint(path: Path, max_bytes: int, precheck: "Callable[[dict, dict], None] | None" = None
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metadata and arrays of a checkpoint, every size checked before anything is decompressed.

    ``precheck(meta, table)`` runs after the metadata is read and before any array is.
    """
    if not path.exists():
        raise CheckpointNotFoundError(f"load: no checkpoint at {str(path)!r}")
    where = f"load: {str(path)!r}"
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names) or not all(_MEMBER.fullmatch(n) for n in names):
                raise CheckpointError(f"{where} is not an anyxp_nn checkpoint (members {few(names)})")
            if "__meta__.npy" not in names or "__checksum__.npy" not in names:
                raise CheckpointError(f"{where} is not an anyxp_nn checkpoint (no __meta__/__checksum__ entry)")
            for i in infos:
                if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise CheckpointError(f"{where} member {i.filename!r} uses zip compression method "
                                          f"{i.compress_type}; checkpoints are stored or deflated (damaged file?)")
            declared = {i.filename: i.file_size for i in infos}
            total = sum(declared.values())
            if total > max_bytes:
                raise CheckpointError(f"{where} declares {total} bytes of arrays, more than max_bytes="
                                      f"{max_bytes}; pass a larger max_bytes to load() if the file is trusted")
            if declared["__meta__.npy"] > _META_MAX_BYTES or declared["__checksum__.npy"] > 1024:
                raise CheckpointError(f"{where} has an oversized __meta__ or __checksum__ member")
            meta_bytes = _parse_npy(zf.read("__meta__.npy"), f"{where} member '__meta__'").tobytes()
            meta = _parse_meta(meta_bytes, where)
            table = _array_table(meta, where, [n[:-4] for n in names if n.startswith("a")])
            for name, (shape, dtype) in table.items():
                size = declared[name + ".npy"]
                nbytes = math.prod(shape) * dtype.itemsize
                if not nbytes <= size <= nbytes + _NPY_HEADER_MAX:
                    raise CheckpointError(f"{where} member {name!r} declares {size} bytes, but the metadata "
                                          f"says {shape} {dtype} ({nbytes} bytes); refusing to decompress it")
            if precheck is not None and table:
                precheck(meta, table)
            stored = _parse_npy(zf.read("__checksum__.npy"), f"{where} member '__checksum__'").tobytes()
            arrays = {}
            for name in sorted(n[:-4] for n in names if n.startswith("a")):
                a = _parse_npy(zf.read(name + ".npy"), f"{where} member {name!r}")
                if table and (a.shape, a.dtype) != table[name]:
                    raise CheckpointError(f"{where} member {name!r} is {a.shape} {a.dtype}, the metadata "
                                          f"says {table[name][0]} {table[name][1]}")
                arrays[name] = a
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, NotImplementedError,
            ValueError, KeyError, RuntimeError, MemoryError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where} is truncated or corrupted and cannot be read "
                              f"({type(e).__name__}: {e})") from None
    if digest(meta_bytes, arrays) != stored:
        raise CheckpointError(f"{where}: checksum mismatch in the file: it was modified or damaged "
                              "after it was written; refusing to load it")
    return meta, arrays


def _parse_meta(meta_bytes: bytes, where: str) -> dict[str, Any]:
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where} has unreadable metadata ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{where} is not an anyxp_nn checkpoint (format {fmt!r})")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where} has an invalid format version {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{where} has format version {version}, this anyxp_nn reads up to "
                              f"{VERSION}; upgrade anyxp_nn")
    return meta


def _array_table(meta: dict[str, Any], where: str, members: list[str]) -> dict[str, tuple]:
    """``{name: (shape, dtype)}`` from the metadata (version >= 2; empty for version 1 files)."""
    if meta["version"] < 2:
        return {}
    table = meta.get("arrays")
    if not isinstance(table, dict) or sorted(table) != sorted(members):
        raise CheckpointError(f"{where}: the metadata's array table does not list exactly the file's arrays")
    out = {}
    for name, entry in table.items():
        ok = (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)
              and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in entry[0])
              and entry[1] in _DTYPES)
        if not ok:
            raise CheckpointError(f"{where}: the metadata describes array {name!r} as {str(entry)[:80]}")
        out[name] = (tuple(entry[0]), np.dtype(entry[1]))
    return out


def few(keys: list[str], n: int = 12) -> str:
    return str(keys) if len(keys) <= n else f"{keys[:n]} (+{len(keys) - n} more)"


def read_info(path: "str | os.PathLike") -> dict[str, Any]:
    """What a checkpoint holds, from its metadata alone (no arrays are read, nothing is verified
    beyond the metadata's own form; :func:`load` verifies everything):
    ``{"epoch", "step", "backend", "created", "model", "optimizer", "version", "extra"}``
    (``extra``: what ``save(..., **extra)`` recorded, in the metadata's JSON form)."""
    path = check_path(path, "read_info")
    if not path.exists():
        raise CheckpointNotFoundError(f"read_info: no checkpoint at {str(path)!r}")
    where = f"read_info: {str(path)!r}"
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("__meta__.npy")
            if info.file_size > _META_MAX_BYTES or info.compress_type not in (zipfile.ZIP_STORED,
                                                                             zipfile.ZIP_DEFLATED):
                raise CheckpointError(f"{where} has an oversized or damaged __meta__ member")
            meta = _parse_meta(_parse_npy(zf.read(info), f"{where} member '__meta__'").tobytes(), where)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError, ValueError, KeyError) as e:
        raise CheckpointError(f"{where} is truncated or corrupted and cannot be read "
                              f"({type(e).__name__}: {e})") from None
    model, opt = meta.get("model"), meta.get("optimizer")
    return {"epoch": meta.get("epoch"), "step": meta.get("step"), "backend": meta.get("backend"),
            "created": meta.get("created"), "version": meta.get("version"),
            "model": model.get("class") if isinstance(model, dict) else None,
            "optimizer": opt.get("class") if isinstance(opt, dict) else None, "extra": meta.get("extra")}
