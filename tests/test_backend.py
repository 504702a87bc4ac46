"""Backends: selection, transfers, errors."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import backend as B


def test_available_backends_order():
    names = nn.available_backends()
    assert names[0] == "numpy"
    order = [n for n in B.BACKEND_NAMES if n in names]
    assert names == order


def test_default_and_env(monkeypatch):
    monkeypatch.delenv("ANYXP_BACKEND", raising=False)
    assert nn.get_backend().name == "numpy"
    monkeypatch.setenv("ANYXP_BACKEND", "array_api_strict")
    assert nn.get_backend().name == "array_api_strict"
    nn.set_backend("numpy")
    assert nn.get_backend().name == "numpy"
    layer = nn.Linear(2, 2)
    assert layer.backend.name == "numpy"


def test_unknown_backend_names_usable():
    with pytest.raises(ValueError, match=r"unknown backend 'tensorflow'; usable backends: numpy"):
        nn.get_backend("tensorflow")


def test_cupy_unusable_reason():
    if "cupy" in nn.available_backends():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match=r"backend 'cupy' is not usable \(cupy"):
        nn.get_backend("cupy")
    row = [r for r in B.backend_report() if r["name"] == "cupy"][0]
    assert row["usable"] == "no" and row["reason"]


def test_roundtrip_and_dtype(backend):
    host = np.arange(6, dtype=np.float64).reshape(2, 3)
    a = backend.asarray(host, dtype="float32")
    assert backend.owns(a) and a.dtype == backend.xp.float32
    back = backend.to_numpy(a)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host.astype(np.float32))
    back[0, 0] = 99  # a copy: the device array is untouched
    assert backend.to_numpy(a)[0, 0] == 0
    backend.synchronize()
    assert nn.backend.backend_of(a) == backend


def test_asarray_from_other_backend(backend):
    other = nn.get_backend("numpy" if backend.name != "numpy" else "array_api_strict")
    a = other.asarray(np.ones(3), dtype="float32")
    b = backend.asarray(a)
    assert backend.owns(b)
    np.testing.assert_array_equal(backend.to_numpy(b), np.ones(3, np.float32))


def test_scratch_reuses_per_key_shape_and_thread(backend, monkeypatch):
    import threading
    monkeypatch.setattr(backend, "scratch_bytes", 1000)
    monkeypatch.setattr(backend, "_scratch", threading.local())  # an empty pool for this test
    xp, f32 = backend.xp, backend.xp.float32
    a = backend.scratch("k", (4, 5), f32)
    a[...] = 7
    assert backend.owns(a) and a.dtype == f32 and tuple(a.shape) == (4, 5)
    assert backend.scratch("k", (4, 5), f32) is a  # same key, shape, dtype: the same buffer, contents kept
    assert backend.scratch("k", (5, 4), f32) is not a and backend.scratch("j", (4, 5), f32) is not a
    z = backend.scratch("z", (3,), f32, zero=True)
    assert backend.to_numpy(z).tolist() == [0, 0, 0]
    other = []
    t = threading.Thread(target=lambda: other.append(backend.scratch("k", (4, 5), f32)))
    t.start()
    t.join()
    assert other[0] is not a  # each thread has its own buffers
    # 1000 bytes at most: (4, 5) f32 is 80 bytes; ten 80-byte buffers later "k" was dropped
    for i in range(12):
        backend.scratch(("fill", i), (20,), f32)
    assert backend._scratch.total <= 1000 and backend.scratch("k", (4, 5), f32) is not a
    big = backend.scratch("big", (300,), f32)  # 1200 bytes > scratch_bytes: never kept
    assert backend.scratch("big", (300,), f32) is not big
    monkeypatch.setattr(backend, "scratch_bytes", 0)
    assert backend.scratch("k2", (2,), xp.int64) is not backend.scratch("k2", (2,), xp.int64)


def test_transfer_hooks_count(backend):
    seen = []
    hook = lambda kind, b, n: seen.append((kind, n))  # noqa: E731
    B.transfer_hooks.append(hook)
    try:
        a = backend.asarray(np.zeros(4, np.float32))
        backend.to_numpy(a)
        backend.item(backend.xp.sum(a))
    finally:
        B.transfer_hooks.remove(hook)
    # host data already is a NumPy-backend array: no transfer there
    expected = ["to_host", "item"] if backend.owns(np.zeros(1)) else ["to_device", "to_host", "item"]
    assert [k for k, _ in seen] == expected
    assert seen[0][1] == 16


def test_strict_device1_is_not_default():
    b = nn.get_backend("array_api_strict:device1")
    a = b.asarray(np.ones(2))
    import array_api_compat
    assert array_api_compat.device(a) == b.device
    assert not nn.get_backend("array_api_strict").owns(a)


def test_cli_backends_table():
    rows = B.backend_report()
    assert {r["name"] for r in rows} == set(B.BACKEND_NAMES)
    for r in rows:
        assert r["usable"] in ("yes", "no")
        if r["usable"] == "yes":
            assert r["version"] and r["device"]
