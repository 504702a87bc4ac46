"""Work split over host threads inside one training step: the BLAS pool held at one thread for the
rest of a cpu_threads() scope once Conv2D's chunks ran on threads, and Backend.blockwise (ReLU and
BatchNorm in channel or batch blocks) giving the same numbers as one pass, on every backend."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import backend as B


def _threaded(backend, monkeypatch):
    """Two host threads and every elementwise pass large enough for them."""
    monkeypatch.setattr(backend, "parallel_chunks", True)
    monkeypatch.setattr(backend, "host_threads", lambda: 2)
    monkeypatch.setattr(backend, "blockwise_min_size", 1)


def test_blockwise_runs_blocks_on_threads_only_while_blas_is_held(backend, monkeypatch):
    _threaded(backend, monkeypatch)
    x = backend.asarray(np.arange(24.0).reshape(2, 6, 2))
    calls = []

    def double(a, b):
        calls.append((a, b))
        return (x[:, a:b, ...] * 2.0,)

    assert backend.work_blocks(6, 24) == [(0, 6)]  # no scope: one pass
    with backend.cpu_threads():
        assert backend.work_blocks(6, 24) == [(0, 6)]  # BLAS not held yet: one pass
        backend.parallel_map(lambda i: i, [0, 1])  # as Conv2D's chunks do: holds BLAS for the scope
        blocks = backend.work_blocks(6, 24)
        assert blocks == [(i, i + 1) for i in range(6)]  # 4 blocks per thread, at most n
        monkeypatch.setattr(backend, "blockwise_min_size", 25)
        assert backend.work_blocks(6, 24) == [(0, 6)]  # too little work for threads
        (y,) = backend.blockwise(double, [x], blocks)
        assert sorted(calls) == blocks
    np.testing.assert_array_equal(backend.to_numpy(y), backend.to_numpy(x) * 2.0)
    calls.clear()
    assert backend.to_numpy(backend.blockwise(double, [x], [(0, 6)])[0]).shape == (2, 6, 2) and calls == [(0, 6)]
    monkeypatch.setattr(backend, "host_threads", lambda: 1)  # cores got busy: the same blocks, in turn
    np.testing.assert_array_equal(backend.to_numpy(backend.blockwise(double, [x], blocks)[0]), backend.to_numpy(y))


def test_parallel_map_holds_blas_at_one_thread_until_the_scope_ends(monkeypatch):
    from threadpoolctl import threadpool_limits
    be = nn.get_backend("numpy")
    monkeypatch.setattr(be, "parallel_chunks", True)
    monkeypatch.setattr(B._core_meter, "free_cores", lambda: 2.0)
    sizes = lambda: {get() for get, _ in B._thread_pools("numpy")}  # noqa: E731  NumPy's BLAS pools
    with threadpool_limits(2, user_api="blas"):
        with be.cpu_threads():
            assert sizes() == {2} and be.host_threads() == 2
            assert be.parallel_map(lambda i: i + 1, [1, 2]) == [2, 3]
            assert sizes() == {1}  # held for the rest of the step
            assert be.host_threads() == 2  # still the user's thread budget
        assert sizes() == {2}  # restored when the scope ends
        assert be.parallel_map(lambda i: i, [1, 2]) == [1, 2] and sizes() == {2}  # outside a scope: per call


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_relu_maxpool_in_blocks_match_one_pass(backend, monkeypatch, train):
    from anyxp_nn.testing import gradcheck
    rng = np.random.default_rng(0)
    x = backend.asarray(np.round(rng.standard_normal((3, 5, 4, 6)), 1))  # rounded: max-pool ties
    dy = backend.asarray(rng.standard_normal((3, 5, 2, 3)))
    out = {}
    for mode in ("one pass", "blocks"):
        if mode == "blocks":
            _threaded(backend, monkeypatch)
        model = nn.Sequential(nn.BatchNorm2D(5, backend=backend, dtype="float64"), nn.ReLU(backend=backend),
                              nn.MaxPool2D(2, backend=backend))
        with backend.cpu_threads():
            if mode == "blocks":
                backend.parallel_map(lambda i: i, [0, 1])  # hold BLAS, as a Conv2D's chunks would
            y, backprop = model.forward(x, train)
            dx = backprop(dy)
            bn = model[0]
            out[mode] = [backend.to_numpy(a) for a in (y, dx, bn.weight.grad, bn.bias.grad, bn.running_mean,
                                                       bn.running_var)]
            if mode == "blocks" and train:
                gradcheck(nn.Sequential(nn.BatchNorm2D(5, backend=backend, dtype="float64"),
                                        nn.ReLU(backend=backend), nn.MaxPool2D(2, backend=backend)),
                          backend.asarray(rng.standard_normal((3, 5, 4, 6))))
    for got, want in zip(out["blocks"], out["one pass"]):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
