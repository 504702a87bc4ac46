"""anyxp_nn.distributed in one process: shards, size-1 communicators, buckets, host staging, SyncBatchNorm.

The multi-process checks (2 ranks == 1 process with twice the batch, ...) are in
tests/test_distributed_mpi.py, which launches ``mpiexec -n 2``.
"""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.data import DataLoader
from anyxp_nn.distributed import (Communicator, DataParallel, HostReducer, Request, SyncBatchNorm, fit_hooks,
                                  init, plan_buckets)


class _TwinComm(Communicator):
    """Two ranks holding the same data, simulated in one process: a sum over the ranks doubles.

    DataParallel skips averaging on one rank; this runs its whole path (buckets, host views or
    staging, sum, division by the size) with a known answer: the local gradient.
    """

    def __init__(self):
        super().__init__(None)
        self.size = 2

    def iallreduce(self, buf):
        buf *= 2
        return Request()

    def allreduce(self, buf):
        buf *= 2
        return buf

    def allgather(self, buf):
        return np.stack([buf, buf])


def _mlp(backend, seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8, backend=backend), nn.Tanh(backend=backend),
                         nn.Linear(8, 5, backend=backend), nn.Tanh(backend=backend),
                         nn.Linear(5, 3, backend=backend))


def _cnn_bn(backend, sync=False):
    nn.manual_seed(0)
    bn = SyncBatchNorm(3, backend=backend) if sync else nn.BatchNorm2D(3, backend=backend)
    return nn.Sequential(nn.Conv2D(2, 3, 3, backend=backend), bn, nn.ReLU(backend=backend),
                         nn.Flatten(backend=backend), nn.Linear(3 * 4 * 4, 2, backend=backend))


def _batch(backend, shape, classes=3, n=6):
    rng = np.random.default_rng(1)
    x = backend.asarray(rng.normal(size=(n,) + shape), dtype="float32")
    y = backend.asarray(rng.integers(0, classes, size=n))
    return x, y


def _grads(model, x, y):
    model.zero_grad()
    logits, backprop = model.forward(x, train=True)
    _, d = nn.losses.softmax_cross_entropy(logits, y)
    with nn.sync_guard() as syncs:
        backprop(d, need_dx=False)
    return [nn.to_numpy(p.grad) for p in model.parameters()], syncs


# -- DataLoader shards --------------------------------------------------------------------------
@pytest.mark.parametrize("on_device", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_together_are_the_big_batch(backend, on_device, shuffle):
    n, b, size = 24, 3, 2
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    y = np.arange(n) % 5
    big = DataLoader(x, y, batch_size=size * b, shuffle=shuffle, backend=backend, rng=4, on_device=on_device)
    shards = [DataLoader(x, y, batch_size=b, shuffle=shuffle, backend=backend, rng=4, on_device=on_device,
                         shard=(r, size)) for r in range(size)]
    assert all(len(s) == len(big) == 4 for s in shards)
    for epoch in range(2):  # the same seed on every rank: the same order every epoch
        for (bx, _), *parts in zip(big, *shards):
            got = np.concatenate([nn.to_numpy(px)[:, 0] for px, _ in parts])
            assert all(backend.owns(px) and backend.owns(py) for px, py in parts)
            np.testing.assert_array_equal(np.sort(got), np.sort(nn.to_numpy(bx)[:, 0]))


def test_shard_pads_by_repeating_the_start_as_distributed_sampler():
    x, y = np.arange(10, dtype=np.float32)[:, None], np.zeros(10, dtype=np.int64)
    seen = []
    for r in range(4):
        ld = DataLoader(x, y, batch_size=100, shuffle=False, shard=(r, 4))
        assert len(ld) == 1
        (xb, _), = list(ld)
        seen.append(nn.to_numpy(xb)[:, 0].astype(int).tolist())
    # torch.utils.data.DistributedSampler(range(10), num_replicas=4, shuffle=False)
    assert seen == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]
    ld = DataLoader(x, y, batch_size=2, shard=(1, 4), drop_last=True)
    assert len(ld) == 1 and [len(xb) for xb, _ in ld] == [2]


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), (0,), "0,2", (0.0, 2), (True, 2)])
def test_bad_shard_is_refused(shard):
    x, y = np.zeros((4, 1), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match=r"DataLoader: `shard` must be \(rank, size\)"):
        DataLoader(x, y, shard=shard)


# -- communicators ----------------------------------------------------------------------------------
def test_init_without_mpiexec_is_one_process():
    comm = init()
    assert (comm.rank, comm.size, comm.is_main) == (0, 1, True)
    assert init() is comm
    assert "size=1" in repr(comm)


def test_communicator_without_mpi_is_the_identity():
    comm = Communicator(None)
    assert (comm.rank, comm.size, comm.mpi, comm.cuda_aware) == (0, 1, None, False)
    a = np.arange(3.0)
    assert comm.allreduce(a) is a and comm.bcast(a) is a
    np.testing.assert_array_equal(comm.allgather(a), a[None])
    np.testing.assert_array_equal(comm.mean(a), a)
    req = comm.iallreduce(a)
    assert req.test()
    req.wait()
    assert comm.any(True) and not comm.any(False)
    assert comm.bcast_object({"k": 1}) == {"k": 1}
    comm.barrier()


def test_fit_hooks_are_identities_for_one_process():
    hooks = fit_hooks(DataParallel(_mlp("numpy"), Communicator(None)))
    assert hooks.is_main and hooks.comm is None
    row = {"epoch": 1, "loss": 0.5}
    assert hooks.average_logs(row) is row
    hooks.barrier()


# -- DataParallel on one rank -----------------------------------------------------------------------
def test_one_rank_adds_nothing(backend):
    plain, dp = _mlp(backend), DataParallel(_mlp(backend), init(), bucket_bytes=64)
    x, y = _batch(backend, (6,))
    g_plain, _ = _grads(plain, x, y)
    g_dp, syncs = _grads(dp, x, y)
    for a, b in zip(g_plain, g_dp):
        np.testing.assert_array_equal(b, a)
    assert syncs.total == 0 and dp.last_step is None


def test_averaging_path_keeps_the_gradient_of_identical_ranks(backend):
    plain, dp = _mlp(backend), DataParallel(_mlp(backend), _TwinComm(), bucket_bytes=64)
    x, y = _batch(backend, (6,))
    g_plain, _ = _grads(plain, x, y)
    g_dp, syncs = _grads(dp, x, y)
    for a, b in zip(g_plain, g_dp):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    for p in dp.parameters():
        assert backend.owns(p.grad) and p.grad.dtype == p.data.dtype and tuple(p.grad.shape) == p.shape
    assert list(dp.state_dict()) == list(plain.state_dict())  # no "module." prefix
    staged = ":" in backend.label or backend.cache_block_bytes is None
    n = len(dp.buckets())
    assert n > 1
    # host memory is handed to MPI as is; a device array costs one transfer each way per bucket
    expected = (n, n) if staged else (0, 0)
    assert (syncs.counts["to_host"], syncs.counts["to_device"]) == expected
    assert dp(x).shape == plain(x).shape


def test_host_staging_on_a_non_default_device():
    b = nn.get_backend("array_api_strict:device1")
    dp = DataParallel(_mlp(b), _TwinComm(), bucket_bytes=10**9)
    assert len(dp.buckets()) == 1
    x, y = _batch(b, (6,))
    for _ in range(2):
        grads, syncs = _grads(dp, x, y)
        assert syncs.counts["to_host"] == 1 and syncs.counts["to_device"] == 1
        assert all(ev.backend == "array_api_strict:device1" for ev in syncs.events)
    for p in dp.parameters():
        assert p.grad.device == b.device


def test_buckets_are_bounded_in_reverse_layer_order_and_skip_frozen():
    model = _mlp("numpy")
    dp = DataParallel(model, _TwinComm(), bucket_bytes=100)
    names = {id(p): k for k, p in model.named_parameters()}
    order = [names[id(p)] for bk in dp.buckets() for p in bk.params]
    assert order == [k for k, _ in reversed(list(model.named_parameters()))]
    for bk in dp.buckets():  # at most 100 bytes unless one parameter alone is larger
        assert bk.numel * 4 <= 100 or len(bk.params) == 1
    model[0].freeze()
    assert all(p.requires_grad for bk in dp.buckets() for p in bk.params)
    assert sum(len(bk.params) for bk in dp.buckets()) == 4
    x, y = _batch(nn.get_backend("numpy"), (6,))
    _grads(dp, x, y)
    assert model[0].weight.grad is None and model[2].weight.grad is not None


def test_plan_buckets_keeps_dtypes_apart():
    ps = [nn.Parameter(np.zeros(4, np.float32)), nn.Parameter(np.zeros(4, np.float64)),
          nn.Parameter(np.zeros(4, np.float64))]
    buckets = plan_buckets(ps, 10**6, lambda dt: np.dtype(dt).itemsize)
    assert [len(b.params) for b in buckets] == [1, 2] and buckets[1].offsets == [0, 4]


class _Probe(nn.Layer):
    """A parameter-free layer that logs when its backprop runs."""

    def __init__(self, log):
        super().__init__()
        object.__setattr__(self, "log", log)

    def forward(self, x, train=True):
        def backprop(dY, need_dx=True):
            self.log.append("probe")
            return dY
        return x, backprop


class _RecordingComm(_TwinComm):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def gradient_reducer(self, backend):
        inner, log = HostReducer(self, backend), self.log

        class Recorder:
            def start(self, flat):
                log.append("start")
                return inner.start(flat)
        return Recorder()


@pytest.mark.parametrize("overlap", [True, False])
def test_buckets_start_during_backprop(overlap):
    log = []
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), _Probe(log), nn.Tanh(), nn.Linear(8, 3))
    dp = DataParallel(model, _RecordingComm(log), bucket_bytes=4 * (8 * 3 + 3), overlap=overlap)
    assert [len(b.params) for b in dp.buckets()] == [2, 1, 1]  # last layer; first layer's bias; its weight
    _grads(dp, *_batch(nn.get_backend("numpy"), (6,)))
    # the last layer's bucket is in flight while the first layer still computes its gradients
    assert log == (["start", "probe", "start", "start"] if overlap else ["probe", "start", "start", "start"])


def test_no_sync_accumulates_then_averages_the_sum():
    b = nn.get_backend("numpy")
    plain, dp = _mlp(b), DataParallel(_mlp(b), _TwinComm())
    x, y = _batch(b, (6,))
    for m in (plain, dp):
        m.zero_grad()
        with dp.no_sync() if m is dp else _nothing():
            out, bp = m.forward(x)
            bp(nn.losses.softmax_cross_entropy(out, y)[1])
        out, bp = m.forward(x)
        bp(nn.losses.softmax_cross_entropy(out, y)[1])
    for p, q in zip(plain.parameters(), dp.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-6)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_state_dict_moves_between_wrapped_and_plain():
    plain, dp = _mlp("numpy", seed=1), DataParallel(_mlp("numpy", seed=2), init())
    dp.load_state_dict(plain.state_dict())
    for p, q in zip(plain.parameters(), dp.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert [k for k, _ in dp.named_parameters()] == [k for k, _ in plain.named_parameters()]


def test_fit_on_a_one_rank_data_parallel_model_matches_plain_fit():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype(np.float32), rng.integers(0, 3, 32)
    results = []
    for wrap in (False, True):
        model = _mlp("numpy")
        model = DataParallel(model, _TwinComm()) if wrap else model
        opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loader = DataLoader(x, y, batch_size=8, rng=3)
        with pytest.warns(RuntimeWarning, match="loader is not sharded") if wrap else _nothing():
            h = nn.fit(model, opt, nn.losses.softmax_cross_entropy, loader, epochs=2, progress=False)
        results.append((h.steps["loss"], [nn.to_numpy(p.data) for p in model.parameters()]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_data_parallel_errors():
    with pytest.raises(TypeError, match="DataParallel: `model` must be an anyxp_nn Layer, got list"):
        DataParallel([1, 2])
    with pytest.raises(ValueError, match="DataParallel: `bucket_bytes` must be a positive int, got 0"):
        DataParallel(_mlp("numpy"), bucket_bytes=0)
    dp = DataParallel(_mlp("numpy"))
    with pytest.raises(TypeError, match="DataParallel: `model` is already a DataParallel"):
        DataParallel(dp)
    with pytest.raises(TypeError, match="DataParallel: `comm` must be a Communicator"):
        DataParallel(_mlp("numpy"), comm="world")


# -- SyncBatchNorm ----------------------------------------------------------------------------------
def test_sync_batchnorm_on_one_rank_is_batchnorm(backend):
    plain, synced = _cnn_bn(backend), _cnn_bn(backend, sync=True)
    x, y = _batch(backend, (2, 6, 6), classes=2)
    g_plain, _ = _grads(plain, x, y)
    g_sync, _ = _grads(synced, x, y)
    for a, b in zip(g_plain, g_sync):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)
    for (k, a), (_, b) in zip(plain.state_dict().items(), synced.state_dict().items()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(nn.to_numpy(synced(x)), nn.to_numpy(plain(x)), rtol=1e-5, atol=1e-6)


def test_sync_batchnorm_input_gradient_is_exact():
    b = nn.get_backend("numpy")
    bn = SyncBatchNorm(3, backend=b, dtype="float64")
    x = np.random.default_rng(0).normal(size=(4, 3, 2, 2))
    w = np.random.default_rng(1).normal(size=x.shape)
    y, bp = bn.forward(x)
    dx = bp(w)
    eps, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp_, xm = x.copy(), x.copy()
        xp_[i] += eps
        xm[i] -= eps
        num[i] = (np.sum(w * bn.forward(xp_)[0]) - np.sum(w * bn.forward(xm)[0])) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_convert_sync_batchnorm_shares_parameters_and_buffers():
    model = _cnn_bn("numpy")
    bn = model[1]
    out = SyncBatchNorm.convert_sync_batchnorm(model, Communicator(None))
    assert out is model and isinstance(model[1], SyncBatchNorm)
    assert model[1].weight is bn.weight and model[1].running_var is bn.running_var
    assert list(model.state_dict()) == list(_cnn_bn("numpy").state_dict())
    single = SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1D(4))
    assert isinstance(single, SyncBatchNorm) and single.num_features == 4


def test_sync_batchnorm_errors():
    with pytest.raises(ValueError, match="SyncBatchNorm.*Expected more than 1 value per channel"):
        SyncBatchNorm(3).forward(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"SyncBatchNorm.*expected 3 channels"):
        SyncBatchNorm(3).forward(np.zeros((2, 4), np.float32))


def test_sync_batchnorm_on_two_ranks_is_batchnorm_on_both_batches(backend):
    """Twin ranks with batch x == one BatchNorm on concat(x, x): statistics, running buffers, dX."""
    xp = backend.xp
    x = backend.asarray(np.random.default_rng(0).normal(1.0, 2.0, size=(3, 2, 2, 2)), dtype="float32")
    dy = backend.asarray(np.random.default_rng(1).normal(size=(3, 2, 2, 2)), dtype="float32")
    bn, sync = nn.BatchNorm2D(2, backend=backend), SyncBatchNorm(2, comm=_TwinComm(), backend=backend)
    y_bn, bp_bn = bn.forward(xp.concat([x, x]))
    y_sync, bp_sync = sync.forward(x)
    np.testing.assert_allclose(nn.to_numpy(y_sync), nn.to_numpy(y_bn[:3, ...]), rtol=1e-5, atol=1e-5)
    dx_bn, dx_sync = bp_bn(xp.concat([dy, dy])), bp_sync(dy)
    np.testing.assert_allclose(nn.to_numpy(dx_sync), nn.to_numpy(dx_bn[:3, ...]), rtol=1e-4, atol=1e-5)
    # each rank keeps its local parameter gradient; DataParallel averages them
    np.testing.assert_allclose(2 * nn.to_numpy(sync.weight.grad), nn.to_numpy(bn.weight.grad), rtol=1e-5, atol=1e-5)
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(nn.to_numpy(getattr(sync, key)), nn.to_numpy(getattr(bn, key)), rtol=1e-5)


def test_fit_refuses_a_shard_of_another_size():
    model = DataParallel(_mlp("numpy"), _TwinComm())
    x, y = np.zeros((8, 6), np.float32), np.zeros(8, np.int64)
    loader = DataLoader(x, y, batch_size=2, shard=(0, 3))
    with pytest.raises(ValueError, match=r"fit: the loader is sharded over 3 ranks .* runs on 2"):
        nn.fit(model, nn.optim.SGD(model.parameters(), lr=0.1), nn.losses.softmax_cross_entropy, loader,
               progress=False)


class _Scaled(nn.Layer):
    """A container with a parameter of its own: y = alpha * inner(x)."""

    def __init__(self, inner):
        super().__init__(backend=inner.backend)
        self.inner = inner
        self.alpha = nn.Parameter(self.backend.xp.ones((1,), dtype=self.dtype, device=self.backend.device))

    def forward(self, x, train=None):
        h, bp = self.inner.forward(x, train)
        a = self.alpha

        def backprop(dY, need_dx=True):
            a.accumulate(self.backend.xp.reshape(self.backend.xp.sum(dY * h), (1,)))
            return bp(dY * a.data, need_dx=need_dx)

        return h * a.data, backprop


def test_a_container_parameter_is_averaged_after_the_backward_pass():
    plain, dp = _Scaled(_mlp("numpy")), DataParallel(_Scaled(_mlp("numpy")), _TwinComm(), bucket_bytes=64)
    assert "forward" not in vars(dp.module)  # containers keep their class's forward
    x, y = _batch(nn.get_backend("numpy"), (6,))
    for a, b in zip(_grads(plain, x, y)[0], _grads(dp, x, y)[0]):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


class _OtherRankComm(Communicator):
    """Rank 0 of 2, the other rank holding ``other`` in every all-reduced buffer."""

    def __init__(self, other):
        super().__init__(None)
        self.size, self.other = 2, np.asarray(other, dtype=np.float64)

    def allreduce(self, buf):
        buf += self.other
        return buf


def test_fit_hooks_average_the_epoch_row_over_ranks():
    hooks = fit_hooks(DataParallel(_mlp("numpy"), _TwinComm()))
    hooks.comm = _OtherRankComm([3.0, 5.0])
    row = {"epoch": 2, "loss": 1.0, "val_loss": 3.0, "lr": None}
    assert hooks.average_logs(row) == {"epoch": 2, "loss": 2.0, "val_loss": 4.0, "lr": None}
    hooks.comm = _OtherRankComm([[1.0, 2.0]])
    np.testing.assert_array_equal(hooks.mean_rows(np.array([[3.0, 4.0]])), [[2.0, 3.0]])
    assert hooks.is_main
