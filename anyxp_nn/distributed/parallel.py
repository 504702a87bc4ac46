"""DataParallel: the same model on every rank, gradients averaged over ranks each step.

Like ``torch.nn.parallel.DistributedDataParallel`` (and Horovod, ChainerMN):

* at wrap time rank 0's parameters and buffers are broadcast, so every rank starts equal;
* during backprop, gradients are flattened into buckets of at most ``bucket_bytes``
  in reverse layer order, and each bucket's all-reduce starts as soon as its layers
  are done (:mod:`.buckets`), overlapping communication with the remaining backward
  compute; the model's ``backprop`` returns once every bucket is averaged, so the
  optimizer step that follows sees ``grad = mean over ranks of the local grad``;
* with ``broadcast_buffers=True`` (default, as DDP) rank 0's buffers (BatchNorm
  running statistics) are broadcast at every training forward.

With a per-rank batch b and a mean-reduced loss, P ranks take exactly the steps one
process takes with batch P*b (up to float rounding), because the mean over ranks of
per-rank batch means is the mean over the P*b samples.

Hooks: each leaf layer that owns parameters gets a thin ``forward`` wrapper (an instance
attribute) that reports its backprop to the step in progress; outside a DataParallel
forward it passes through unchanged.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .._checks import positive_int
from ..layers.base import Backprop, Layer
from ._host import from_host, to_host
from .buckets import BackwardStep, Bucket, plan_buckets
from .comm import Communicator, init
from .reducer import make_reducer

__all__ = ["DataParallel"]

_HOOK = "_anyxp_dp_hook"


class DataParallel(Layer):
    """Data-parallel training of ``model`` over the ranks of ``comm``.

    Args:
        model: the Layer to train; every rank builds the same architecture.
        comm: a :class:`~anyxp_nn.distributed.Communicator` (default: ``init()``, the world),
            or an ``NCCLCommunicator`` for CuPy models.
        bucket_bytes: bound on a gradient bucket (default 25 MiB, DDP's ``bucket_cap_mb``).
        overlap: start each bucket's all-reduce during backprop as soon as it fills
            (False: all after the backward pass; for measurements).
        broadcast_buffers: broadcast rank 0's buffers at every training forward.

    ``state_dict()`` holds the wrapped model's keys, without a prefix, so checkpoints
    move freely between a P-rank and a 1-rank run.  ``module`` is the wrapped model.
    """

    def __init__(self, model: Layer, comm: "Communicator | None" = None, *, bucket_bytes: int = 25 * 2**20,
                 overlap: bool = True, broadcast_buffers: bool = True):
        if not isinstance(model, Layer):
            raise TypeError(f"DataParallel: `model` must be an anyxp_nn Layer, got {type(model).__name__}")
        if isinstance(model, DataParallel):
            raise TypeError("DataParallel: `model` is already a DataParallel; wrap the inner model once")
        positive_int(bucket_bytes, "bucket_bytes", "DataParallel")
        comm = init() if comm is None else comm
        if not hasattr(comm, "rank") or not hasattr(comm, "size"):
            raise TypeError(f"DataParallel: `comm` must be a Communicator (nn.distributed.init()), "
                            f"got {type(comm).__name__}")
        super().__init__(backend=model.backend, dtype=model.dtype)
        self.module = model
        object.__setattr__(self, "comm", comm)
        self.bucket_bytes, self.overlap, self.broadcast_buffers = bucket_bytes, overlap, broadcast_buffers
        object.__setattr__(self, "_current", None)      # the BackwardStep of the forward in progress
        object.__setattr__(self, "_plan", (None, []))    # (trainable parameter ids, buckets)
        object.__setattr__(self, "_reducer", None)
        object.__setattr__(self, "_sync", True)
        object.__setattr__(self, "last_step", None)     # the last BackwardStep (bucket count, wait time)
        _broadcast_state(model, comm)
        _install_hooks(model, self)

    # -- the wrapped model's structure, without a prefix ---------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        return self.module.named_parameters(prefix)

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        return self.module.named_buffers(prefix)

    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Layer, str, bool]]:
        return self.module._state_items(prefix)

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        return self.module.named_children()

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        yield prefix, self
        yield from self.module.named_layers(prefix)

    def extra_repr(self) -> str:
        return f"rank={self.comm.rank}, size={self.comm.size}, bucket_bytes={self.bucket_bytes}"

    def __repr__(self) -> str:
        body = repr(self.module).replace("\n", "\n  ")
        return f"DataParallel({self.extra_repr()},\n  {body}\n)"

    # -- buckets ----------------------------------------------------------------------
    def buckets(self) -> list[Bucket]:
        """The current bucket plan (re-made when parameters are frozen or unfrozen)."""
        params = [p for p in reversed(self.module.parameters()) if p.requires_grad]
        key = tuple(id(p) for p in params)
        if self._plan[0] != key:
            object.__setattr__(self, "_plan", (key, plan_buckets(params, self.bucket_bytes, self._itemsize)))
        return self._plan[1]

    def _itemsize(self, dtype: Any) -> int:
        return self.backend.xp.finfo(dtype).bits // 8

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backprops inside accumulate local gradients only; the next one outside averages the sums."""
        object.__setattr__(self, "_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "_sync", True)

    # -- the protocol -----------------------------------------------------------------
    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        """``(y, backprop)`` of the wrapped model; ``backprop`` also averages the gradients over ranks.

        The gradients are averaged whatever the mode (a model in ``eval()`` may still be
        fine-tuned); rank 0's buffers are broadcast first when this forward trains.
        """
        if not self._sync or self.comm.size == 1:  # one rank: nothing to average
            return self.module.forward(x, train)
        if self.broadcast_buffers and self._mode(train):
            _broadcast_buffers(self.module, self.comm)
        buckets = self.buckets()
        if self._reducer is None and buckets:
            object.__setattr__(self, "_reducer", make_reducer(self.comm, self.backend, buckets[0].params[0].data))
        step = BackwardStep(buckets, self._reducer, self.backend.xp, self.backend.device, self.overlap)
        object.__setattr__(self, "_current", step)
        try:
            y, inner = self.module.forward(x, train)
        finally:
            object.__setattr__(self, "_current", None)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            dX = inner(dY, need_dx=need_dx)
            step.finish()
            object.__setattr__(self, "last_step", step)
            return dX

        return y, backprop

    def __call__(self, x: Any) -> Any:
        return self.module(x)

    def to(self, backend: Any = None, dtype: Any = None) -> "DataParallel":
        self.module.to(backend, dtype)
        object.__setattr__(self, "backend", self.module.backend)
        object.__setattr__(self, "dtype", self.module.dtype)
        object.__setattr__(self, "_reducer", None)
        return self


# -- helpers ---------------------------------------------------------------------------
def _install_hooks(model: Layer, dp: DataParallel) -> None:
    """Wrap ``forward`` of every leaf layer owning parameters so its backprop reports to ``dp``'s step.

    Containers are left alone (they may be copied, e.g. by ``interpret.grad_cam``); parameters
    a container owns itself are reduced after the backward pass, with the buckets not yet started.
    """
    for _, layer in model.named_layers():
        if not layer._params or layer._children:
            continue
        original = getattr(layer, _HOOK, None) or layer.forward
        params = list(layer._params.values())

        def forward(x: Any, *args: Any, _orig: Any = original, _params: list = params, **kwargs: Any) -> Any:
            step = dp._current
            y, bp = _orig(x, *args, **kwargs)
            if step is None:
                return y, bp
            step.forward_called(_params)

            def backprop(dY: Any, need_dx: bool = True) -> Any:
                dX = bp(dY, need_dx=need_dx)
                step.backprop_done(_params)
                return dX

            return y, backprop

        object.__setattr__(layer, _HOOK, original)
        object.__setattr__(layer, "forward", forward)


def _broadcast_state(model: Layer, comm: Any) -> None:
    """Every rank gets rank 0's parameters and buffers (after checking the models match)."""
    if comm.size == 1:
        return
    state = model.state_dict()
    layout = [(k, tuple(v.shape), str(v.dtype)) for k, v in state.items()]
    reference = comm.bcast_object(layout)
    if comm.any(layout != reference):
        theirs = dict((k, (s, d)) for k, s, d in reference)
        diff = [k for k, s, d in layout if theirs.get(k) != (s, d)] + [k for k in theirs if k not in state]
        raise ValueError(f"DataParallel: the model on rank {comm.rank} differs from rank 0's "
                         f"(keys, shapes or dtypes: {diff[:5] or 'on another rank'}); build the same model "
                         "on every rank")
    for v in state.values():
        comm.bcast(v)
    model.load_state_dict(state)


def _broadcast_buffers(model: Layer, comm: Any) -> None:
    for _, owner, attr, is_param in model._state_items():
        if is_param:
            continue
        buf = getattr(owner, attr)
        host, staged = to_host(buf, owner.backend)
        comm.bcast(host)
        if staged:
            object.__setattr__(owner, attr, from_host(host, buf, staged, owner.backend))
