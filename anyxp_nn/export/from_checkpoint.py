"""A model rebuilt from a checkpoint that records its builder (for ``anyxp-nn export``).

A checkpoint (:func:`anyxp_nn.save`) holds weights, not code.  To rebuild the model it also
records, as the JSON extra ``builder``, which function of :mod:`anyxp_nn.models` made it and with
which arguments::

    nn.save("mlp.npz", model, builder=builder_record("mlp", input_shape=(1, 64), in_features=64))

``anyxp-nn train --checkpoint`` records it for you.  Only the library's own builders are called:
a checkpoint never names code to import.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .. import models
from ..checkpoint import CheckpointError, load, read_info

__all__ = ["builder_record", "model_from_checkpoint", "BUILDER_KEY"]

BUILDER_KEY = "builder"


def builder_record(name: str, input_shape: "Sequence[int] | None" = None, **kwargs: Any) -> dict[str, Any]:
    """The JSON record of ``anyxp_nn.models.<name>(**kwargs)``, with the example ``input_shape``
    (batch size first) that ONNX export uses."""
    if name not in models.__all__:
        raise ValueError(f"builder_record: `name` must be one of anyxp_nn.models' builders {models.__all__}, "
                         f"got {name!r}")
    return {"name": name, "kwargs": dict(kwargs),
            "input_shape": None if input_shape is None else [int(s) for s in input_shape]}


def model_from_checkpoint(path: "str | os.PathLike", backend: Any = None) -> tuple[Any, dict[str, Any]]:
    """``(model, record)``: the recorded builder called again, the checkpoint's weights loaded.

    Raises CheckpointError (a ValueError) when the checkpoint records no builder or a malformed one,
    and the errors of :func:`anyxp_nn.load` for a file that is not a valid checkpoint.
    """
    path = Path(path)
    extra = dict((read_info(path).get("extra") or {}).get("__dict__", []))
    record = extra.get(BUILDER_KEY)
    if record is None:
        raise CheckpointError(f"model_from_checkpoint: {str(path)!r} records no model builder, so the model cannot be rebuilt; save it "
                              f"with nn.save(path, model, builder=anyxp_nn.export.builder_record('mlp', "
                              f"input_shape=..., **builder_kwargs)) or train it with `anyxp-nn train --checkpoint`")
    record = _plain(record)
    name, kwargs = record.get("name") if isinstance(record, dict) else None, None
    if isinstance(record, dict):
        kwargs = record.get("kwargs", {})
    if name not in models.__all__ or not isinstance(kwargs, dict):
        raise CheckpointError(f"model_from_checkpoint: {str(path)!r}: the recorded builder {record!r} is not one of anyxp_nn.models' "
                              f"builders {models.__all__} with a dict of keyword arguments")
    try:
        model = getattr(models, name)(**kwargs, backend=backend)
    except TypeError as e:
        raise CheckpointError(f"model_from_checkpoint: {str(path)!r}: anyxp_nn.models.{name} does not take the recorded arguments "
                              f"{kwargs}: {e}") from None
    load(path, model, restore_rng=False)
    return model, record


def _plain(obj: Any) -> Any:
    """The checkpoint's JSON encoding of dicts ({"__dict__": [[k, v], ...]}) back to plain dicts."""
    if isinstance(obj, dict):
        if "__dict__" in obj:
            return {k: _plain(v) for k, v in obj["__dict__"]}
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj
