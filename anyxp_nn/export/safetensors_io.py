"""Weights as ``.safetensors`` files with PyTorch's key names, both ways.

``save_safetensors(model, path)`` writes ``model.state_dict()`` (parameters and buffers, keys such
as ``"0.weight"``, ``"1.running_mean"``, the 0-d int64 ``"1.num_batches_tracked"``), so
``torch_model.load_state_dict(safetensors.torch.load_file(path))`` works on the same architecture
in PyTorch; ``load_safetensors(model, path)`` reads such a file, or one that
``safetensors.torch.save_file(torch_model.state_dict(), path)`` wrote, on any backend.

The header's metadata (string -> string) records ``format = "pt"`` (the Hugging Face convention),
``anyxp_nn.version`` and ``anyxp_nn.model`` (the model's repr).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._version import __version__
from ._files import write_atomic
from ._optional import require

__all__ = ["save_safetensors", "load_safetensors", "read_safetensors_metadata", "SafetensorsFileError"]


class SafetensorsFileError(ValueError):
    """A ``.safetensors`` file that cannot be read or does not fit the model."""


def save_safetensors(model: Any, path: "str | os.PathLike", *, metadata: "Mapping[str, str] | None" = None) -> Path:
    """Write the model's parameters and buffers to ``path`` (atomically); returns the path.

    Args:
        model: any Layer.
        path: the file to write, conventionally ``*.safetensors``.
        metadata: extra string -> string entries for the header.
    """
    numpy_st = require("safetensors.numpy", "anyxp_nn.export.save_safetensors")
    meta = {"format": "pt", "anyxp_nn.version": __version__, "anyxp_nn.model": repr(model)}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"save_safetensors: `metadata` must map str to str, got {k!r}: {type(v).__name__}")
        meta[k] = v
    # state_dict() holds host copies; C order keeps 0-d buffers 0-d (np.ascontiguousarray would not)
    tensors = {k: np.require(v, requirements="C") for k, v in model.state_dict().items()}
    return write_atomic(Path(path), numpy_st.save(tensors, metadata=meta))


def read_safetensors_metadata(path: "str | os.PathLike") -> dict[str, str]:
    """The header metadata of a ``.safetensors`` file ({} when it has none)."""
    safe_open = require("safetensors", "anyxp_nn.export.read_safetensors_metadata").safe_open
    path = _existing(Path(path), "read_safetensors_metadata")
    try:
        with safe_open(str(path), framework="numpy") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError) for bad files
        raise SafetensorsFileError(f"read_safetensors_metadata: {str(path)!r} is not a readable safetensors "
                                   f"file ({type(e).__name__}: {e})") from None


def load_safetensors(model: Any, path: "str | os.PathLike", strict: bool = True, *, key_map: Any = None) -> Any:
    """Load a ``.safetensors`` file into ``model``, all or nothing.

    Args:
        model: any Layer; the arrays land on its backend and in its dtypes.
        path: a file from :func:`save_safetensors` or ``safetensors.torch.save_file``.
        strict: every model key must be in the file and every file key in the model.
        key_map: optional renaming rules for a file whose keys differ from the model's
            (see :func:`anyxp_nn.keymap.map_state_dict_keys`).

    bfloat16 tensors (mixed-precision checkpoints) are widened to float32, exactly,
    then cast to the model's dtypes as every other tensor.  Every key, shape, dtype and value
    (finite) is checked before anything is written: on any error the model is unchanged.
    Returns what ``model.load_state_dict`` returns.

    Raises:
        FileNotFoundError; SafetensorsFileError (a ValueError) for a damaged or non-safetensors file;
        the key errors of ``load_state_dict`` (StateDictError / KeyMapError, KeyErrors), and
        ValueError for a wrong shape.
    """
    numpy_st = require("safetensors.numpy", "anyxp_nn.export.load_safetensors")
    require("ml_dtypes", "anyxp_nn.export.load_safetensors")  # gives NumPy bfloat16 (onnx needs it too)
    path = _existing(Path(path), "load_safetensors")
    try:
        state = numpy_st.load_file(str(path))
    except Exception as e:  # SafetensorError for a damaged file; float8, which safetensors.numpy cannot read
        raise SafetensorsFileError(f"load_safetensors: cannot read {str(path)!r} ({type(e).__name__}: {e}); "
                                   "expected a .safetensors file of float, bfloat16, int or bool tensors "
                                   "(convert float8 ones with tensor.float() in PyTorch)") from None
    state = {k: _widen(v) for k, v in state.items()}
    return model.load_state_dict(state, strict=strict, key_map=key_map)


def _widen(a: np.ndarray) -> np.ndarray:
    """bfloat16 (ml_dtypes) -> float32, exactly: every bfloat16 value is a float32 value."""
    return a.astype(np.float32) if a.dtype.kind == "V" and a.dtype.name == "bfloat16" else a


def _existing(path: Path, owner: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: no file at {str(path)!r}")
    return path
