"""Backend.cpu_threads: compute thread pools sized to the free cores inside the scope, restored after."""
import itertools

import pytest

import anyxp_nn as nn
from anyxp_nn import backend as B


def _blas_threads():
    """Sizes of the BLAS pools the numpy backend controls (NumPy's own; e.g. SciPy's OpenBLAS,
    loaded later by other tests, is not NumPy's and is left alone)."""
    return [get() for get, _ in B._thread_pools("numpy")]


@pytest.fixture
def two_free(monkeypatch):
    monkeypatch.setattr(B._core_meter, "free_cores", lambda: 2.0)


@pytest.fixture
def one_free(monkeypatch):
    monkeypatch.setattr(B._core_meter, "free_cores", lambda: 1.2)


def test_numpy_blas_lowered_inside_and_restored(one_free):
    from threadpoolctl import threadpool_limits
    be = nn.get_backend("numpy")
    with threadpool_limits(2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        with be.cpu_threads() as n:
            assert n == 1 and set(_blas_threads()) == {1}
            with be.cpu_threads() as inner:  # nested: nothing more to change
                assert inner == 1
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}  # the user's setting is back


def test_never_raises_the_users_setting(two_free):
    from threadpoolctl import threadpool_limits
    be = nn.get_backend("numpy")
    with threadpool_limits(1, user_api="blas"):
        with be.cpu_threads() as n:
            assert n == 1 and set(_blas_threads()) == {1}


def test_torch_intra_op_threads(one_free):
    torch = pytest.importorskip("torch")
    be = nn.get_backend("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in be.cpu_threads_each(range(3)):
            assert torch.get_num_threads() == 1
            break  # a break closes the generator: the pool is restored
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_restored_after_an_exception(one_free):
    torch = pytest.importorskip("torch")
    be = nn.get_backend("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with be.cpu_threads():
                raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_adapt_threads_off_leaves_pools_alone(one_free, monkeypatch):
    from threadpoolctl import threadpool_limits
    be = nn.get_backend("numpy")
    monkeypatch.setattr(be, "adapt_threads", False)
    with threadpool_limits(2, user_api="blas"):
        with be.cpu_threads() as n:
            assert n == 0 and set(_blas_threads()) == {2}
    assert be.elementwise_threads == 1


def test_elementwise_threads_off_unless_assigned(monkeypatch):
    """The optimizers' row-block threads are off by default (slower inside training steps) and
    an assigned count is used as given."""
    for name in nn.available_backends():
        if name != "cupy":
            assert nn.get_backend(name).elementwise_threads == 1
    be = nn.get_backend("numpy")
    monkeypatch.setattr(be, "elementwise_threads", 1)
    be.elementwise_threads = 3
    assert be.elementwise_threads == 3


def test_core_meter_subtracts_own_cpu_time(monkeypatch):
    """Busy cores (all processes, from /proc/stat) minus this process's CPU time = others' load."""
    # jiffies: 100 per core per second on 2 cores; second sample: 150 of 200 busy = 1.5 cores busy
    stats = iter([(0, 1000, 2), (150, 1200, 2), (310, 1400, 2)])
    clock = itertools.count(0.0, 1.0)  # one second between samples
    cpu = iter([10.0, 10.5, 11.5])  # this process used 0.5 core in the first second, 1.0 in the next
    monkeypatch.setattr(B._CoreMeter, "_stat", staticmethod(lambda: next(stats)))
    monkeypatch.setattr(B.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(B.os, "times", lambda: type("T", (), {"user": next(cpu), "system": 0.0})())
    meter = B._CoreMeter()  # the first sample, at construction
    meter.usable = 2
    assert meter.free_cores() == pytest.approx(1.0)  # others took 1.5 - 0.5 = 1 core
    monkeypatch.setattr(B.time, "monotonic", lambda: 1.1)  # 0.1 s later: below `interval`, no new sample
    assert meter.free_cores() == pytest.approx(1.0)
    clock = itertools.count(2.0, 1.0)
    monkeypatch.setattr(B.time, "monotonic", lambda: next(clock))
    assert meter.free_cores() == pytest.approx(2.0 - 0.6)  # 1.6 cores busy, 1.0 of them this process


def test_core_meter_without_proc_stat(monkeypatch):
    meter = B._CoreMeter()
    monkeypatch.setattr(B._CoreMeter, "_stat", staticmethod(lambda: None))
    assert meter.free_cores() == float(meter.usable)


def test_host_threads_follow_blas_pool_and_free_cores(monkeypatch):
    from threadpoolctl import threadpool_limits
    be = nn.get_backend("numpy")
    assert be.host_threads() == 1  # parallel_chunks is off by default
    monkeypatch.setattr(be, "parallel_chunks", True)
    with threadpool_limits(2, user_api="blas"):
        monkeypatch.setattr(B._core_meter, "free_cores", lambda: 2.0)
        assert be.host_threads() == 2
        monkeypatch.setattr(B._core_meter, "free_cores", lambda: 1.2)
        assert be.host_threads() == 1  # a busy core: chunks in turn
    with threadpool_limits(1, user_api="blas"):
        monkeypatch.setattr(B._core_meter, "free_cores", lambda: 2.0)
        assert be.host_threads() == 1  # the user asked for one thread
    monkeypatch.setattr(be, "parallel_chunks", False)
    assert be.host_threads() == 1
    if "torch" in nn.available_backends():
        assert nn.get_backend("torch").host_threads() == 1  # torch parallelises its own ops


def test_first_scope_keeps_freed_activations_in_the_heap():
    """In a fresh process: a step-like burst of 6 MiB arrays faults its pages in every time until
    the first cpu_threads() scope settles glibc's thresholds; after it, (almost) never."""
    import platform
    import subprocess
    import sys
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's adaptive mmap threshold only")
    code = """
import resource, numpy as np, anyxp_nn as nn
def faults():
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        a = [np.ones(3 << 19, dtype=np.float32) for _ in range(3)]  # three 6 MiB arrays, freed together
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
faults()
before = faults()
with nn.get_backend("numpy").cpu_threads():
    pass
faults()
print(before, faults())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert before > 1000 and after < before / 10, (before, after)
