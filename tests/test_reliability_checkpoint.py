"""Issue 13, items 1-3 and 7: checkpoints that always load back, all or nothing, bounded, with
readable errors; a saving process killed at random points always leaves a whole checkpoint."""
import errno
import io
import json
import os
import signal
import time
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import _atomic, checkpoint, models
from anyxp_nn.checkpoint import CheckpointError
from anyxp_nn.data import DataLoader
from anyxp_nn.training import JSONLogger, ModelCheckpoint, NonFiniteGuard, fit

CE = nn.losses.softmax_cross_entropy
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
BACKENDS = ["numpy", "array_api_strict", "torch", "cupy"]


def _backend(name):
    try:
        return nn.get_backend(name)
    except ValueError as e:
        pytest.skip(str(e).split("; usable")[0])


def bn_model(backend, seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6, backend=backend), nn.BatchNorm1D(6, backend=backend),
                         nn.ReLU(backend=backend), nn.Linear(6, 3, backend=backend))


def data(n=48):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), (np.arange(n) % 3).astype(np.int64)


def small(backend="numpy", seed=0):
    nn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5, backend=backend), nn.ReLU(backend=backend), nn.Linear(5, 3, backend=backend))
    opt = nn.optim.Adam(model.parameters(), lr=0.01)
    x, y = data()
    return model, opt, DataLoader(x, y, batch_size=16, backend=backend, rng=nn.random.Generator(1))


def host_state(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- item 1: BatchNorm (0-d num_batches_tracked) on every backend pair -----------------
@pytest.mark.parametrize("src", BACKENDS)
@pytest.mark.parametrize("dst", BACKENDS)
def test_batchnorm_checkpoint_round_trips_on_every_backend_pair(src, dst, tmp_path):
    bs, bd = _backend(src), _backend(dst)
    m = bn_model(bs)
    x, y = data()
    fit(m, nn.optim.SGD(m.parameters(), lr=0.1), CE, DataLoader(x, y, batch_size=16, backend=bs),
        epochs=1, progress=False)
    saved = host_state(m)
    assert saved["1.num_batches_tracked"].shape == () and int(saved["1.num_batches_tracked"]) == 3
    nn.save(tmp_path / "bn.npz", m)
    m2 = bn_model(bd, seed=1)
    nn.load(tmp_path / "bn.npz", m2)
    assert_same(host_state(m2), saved)


def test_small_resnet_checkpoint_loads_back(tmp_path):
    """The issue's reproducer: the library's own small_resnet."""
    m = models.small_resnet(num_classes=3)
    nn.save(tmp_path / "bn.npz", m)
    m2 = models.small_resnet(num_classes=3, rng=nn.random.Generator(7))
    nn.load(tmp_path / "bn.npz", m2)
    assert_same(host_state(m2), host_state(m))


def test_nonfinite_guard_restores_a_batchnorm_model(tmp_path):
    """ModelCheckpoint + NonFiniteGuard on a diverging BatchNorm model restores instead of raising."""
    m = bn_model("numpy")
    x, y = data()
    opt = nn.optim.SGD(m.parameters(), lr=0.05)
    loader = DataLoader(x, y, batch_size=16)

    class Diverge(nn.training.Callback):
        def on_epoch_end(self, state):
            if state.epoch == 0:
                state.optimizer.param_groups[0]["lr"] = 1e30  # the next steps blow up

    ck = tmp_path / "ck.npz"
    with pytest.warns(RuntimeWarning, match="NonFiniteGuard"), np.errstate(all="ignore"):
        h = fit(m, opt, CE, loader, epochs=3, progress=False, log_every=1,
                callbacks=[ModelCheckpoint(ck), Diverge(), NonFiniteGuard()])
    assert h.stop_reason == "non_finite_loss" and "restored into the model" in h.message
    assert all(np.isfinite(v).all() for v in m.state_dict().values())
    m2 = bn_model("numpy", seed=3)
    nn.load(ck, m2)
    assert_same(host_state(m2), host_state(m))


# -- helpers to craft files -----------------------------------------------------------
def read_members(path):
    with zipfile.ZipFile(path) as zf:
        return {n[:-4]: np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in zf.namelist()}


def rewrite(path, edit_meta=None, arrays=None, checksum=True, out=None):
    """Rewrite a checkpoint with edited metadata/arrays and (by default) a recomputed checksum."""
    members = read_members(path)
    meta = json.loads(members.pop("__meta__").tobytes())
    members.pop("__checksum__")
    if arrays:
        members.update(arrays)
    if edit_meta:
        edit_meta(meta)
    meta_bytes = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    digest = checkpoint.digest(meta_bytes, members) if checksum else b"0" * 64
    payload = dict(members, __meta__=np.frombuffer(meta_bytes, np.uint8), __checksum__=np.frombuffer(digest, np.uint8))
    out = out or path
    np.savez(out, **payload)
    return out


def snapshot(model, opt, loader):
    return (host_state(model), opt.state_dict(), opt.step_count, loader.rng.get_state(), loader.epoch,
            nn.random.default_generator.get_state())


def assert_unchanged(before, model, opt, loader):
    state, osd, steps, lrng, lep, grng = before
    assert_same(host_state(model), state)
    assert opt.step_count == steps
    now = opt.state_dict()
    for i, st in osd["state"].items():
        for k, v in st.items():
            assert np.array_equal(now["state"][i][k], v)
    assert loader.rng.get_state() == lrng and loader.epoch == lep
    assert nn.random.default_generator.get_state() == grng


# -- item 2: a failed load changes nothing ----------------------------------------------
BAD_META = {
    "generator state of the wrong type": lambda m: m["rng"].__setitem__("default", [1, 2, 3]),
    "loader generator state of the wrong type": lambda m: m["rng"].__setitem__("loader", "pcg"),
    "loader epoch of the wrong type": lambda m: m["loader"].__setitem__("epoch", "two"),
    "negative loader epoch": lambda m: m["loader"].__setitem__("epoch", -1),
    "history of the wrong type": lambda m: m.__setitem__("history", [1]),
    "history columns of the wrong type": lambda m: m.__setitem__("history", {"steps": 1, "epochs": {}}),
    "step of the wrong type": lambda m: m.__setitem__("step", "3"),
    "optimizer step counter wrong": lambda m: m["optimizer"]["state"]["__dict__"].__setitem__(
        1, ["step_count", -4]),
    "extra of the wrong type": lambda m: m.__setitem__("extra", {"__dict__": [[1, 2, 3]]}),
}


@pytest.mark.parametrize("case", list(BAD_META))
def test_failed_load_changes_nothing(case, tmp_path):
    model, opt, loader = small()
    fit(model, opt, CE, loader, epochs=1, progress=False)
    p = nn.save(tmp_path / "ck.npz", model, opt, epoch=1, step=3, loader=loader)
    rewrite(p, BAD_META[case])
    model2, opt2, loader2 = small(seed=5)
    fit(model2, opt2, CE, loader2, epochs=2, progress=False)
    before = snapshot(model2, opt2, loader2)
    with pytest.raises(CheckpointError, match=r"load: '.*ck\.npz'"):
        nn.load(p, model2, opt2, loader=loader2, restore_rng=True)
    assert_unchanged(before, model2, opt2, loader2)


def test_load_restores_rng_only_when_asked(tmp_path):
    model, opt, loader = small()
    p = nn.save(tmp_path / "ck.npz", model, opt)
    saved = nn.random.default_generator.get_state()
    nn.manual_seed(99)
    after_seed = nn.random.default_generator.get_state()
    nn.load(p, model, opt)
    assert nn.random.default_generator.get_state() == after_seed  # inference loads change no later draw
    nn.load(p, model, opt, restore_rng=True)
    assert nn.random.default_generator.get_state() == saved


# -- item 3: sizes checked before decompressing; the crafted bomb -----------------------
def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _bomb(path, meta_bytes, digest, others, size=1 << 30):
    """A ~1 MiB zip whose member a0.npy inflates to ``size`` bytes of a float32 array.

    Written by hand: the deflate stream is one compressed 4 MiB block of zeros, ended by a full
    flush (so it is byte-identical every time) and repeated; the CRC is left 0, as a loader that
    checks sizes first never gets to it.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": ((size - 128) // 4,)})
    head = header.getvalue()
    pad = size - len(head) - (size - 128) // 4 * 4
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(head + bytes(pad)) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(bytes(1 << 22)) + comp.flush(zlib.Z_FULL_FLUSH)
    n_blocks, rest = divmod((size - 128) // 4 * 4, 1 << 22)
    tail = comp.compress(bytes(rest)) + comp.flush(zlib.Z_FINISH)
    members = [("__meta__.npy", 0, _npy(np.frombuffer(meta_bytes, np.uint8)), None),
               ("__checksum__.npy", 0, _npy(np.frombuffer(digest, np.uint8)), None),
               ("a0.npy", 8, None, (first, block, n_blocks, tail))]
    members += [(f"{name}.npy", 0, _npy(a), None) for name, a in others.items()]
    central, offset = [], 0
    with open(path, "wb") as f:
        for name, method, raw, parts in members:
            if raw is not None:
                data_len, usize, crc = len(raw), len(raw), zlib.crc32(raw)
            else:
                data_len, usize, crc = len(parts[0]) + len(parts[1]) * parts[2] + len(parts[3]), size, 0
            local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, data_len, usize,
                                len(name), 0) + name.encode()
            f.write(local)
            if raw is not None:
                f.write(raw)
            else:
                f.write(parts[0])
                for _ in range(parts[2]):
                    f.write(parts[1])
                f.write(parts[3])
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc,
                                       data_len, usize, len(name), 0, 0, 0, 0, 0, offset) + name.encode())
            offset += len(local) + data_len
        cd = b"".join(central)
        f.write(cd)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(cd), offset, 0))


@pytest.fixture(scope="module")
def bomb_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bomb")


def test_crafted_zip_bomb_is_refused_before_decompressing(bomb_dir):
    model, _, _ = small()
    good = nn.save(bomb_dir / "good.npz", model)
    members = read_members(good)
    meta = members["__meta__"].tobytes()
    bomb = bomb_dir / "bomb.npz"
    _bomb(bomb, meta, b"0" * 64, {k: v for k, v in members.items() if k.startswith("a") and k != "a0"})
    assert bomb.stat().st_size < 2 << 20  # a ~1 MiB file ...
    with zipfile.ZipFile(bomb) as zf:
        assert zf.getinfo("a0.npy").file_size >= 1 << 30  # ... holding a 1 GiB member
    before = host_state(model)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"declares 107374\d+ bytes of arrays, more than max_bytes"):
            nn.load(bomb, model)  # the default limit: 8 x the model's state + 64 MiB
        with pytest.raises(CheckpointError, match="member 'a0' declares 1073741824 bytes, but the metadata says"):
            nn.load(bomb, model, max_bytes=1 << 40)  # a raised limit: the array table still refuses it
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak  # nothing near 1 GiB was allocated
    assert_same(host_state(model), before)


def test_declared_sizes_are_checked_against_the_model_and_the_limit(tmp_path):
    model, _, _ = small()
    p = nn.save(tmp_path / "ck.npz", model)
    with pytest.raises(CheckpointError, match="more than max_bytes=100"):
        nn.load(p, model, max_bytes=100)

    def huge(meta):  # a consistent file that claims a 1 GiB weight: refused by the model's shapes
        meta["arrays"]["a0"][0] = [1 << 28]
        meta["model"]["entries"][0][2] = [1 << 28]
    with pytest.raises(CheckpointError, match=r"declares .* bytes, but the metadata says \(268435456,\)"):
        nn.load(rewrite(p, huge), model)


# -- item 7: every bad file is a readable CheckpointError -------------------------------
def test_byte_flips_never_load_a_changed_state_and_always_raise_checkpoint_errors(tmp_path):
    model, opt, loader = small()
    p = nn.save(tmp_path / "ck.npz", model, opt, loader=loader)
    raw = bytearray(p.read_bytes())
    before = snapshot(model, opt, loader)
    rng = np.random.default_rng(0)
    positions = list(rng.choice(len(raw), 250, replace=False))
    # and every compression-method field (local headers and central directory)
    positions += [m.start() + 8 for m in __import__("re").finditer(rb"PK\x03\x04", raw)]
    positions += [m.start() + 10 for m in __import__("re").finditer(rb"PK\x01\x02", raw)]
    kinds = set()
    for i, pos in enumerate(positions):
        bad = bytearray(raw)
        bad[pos] ^= 1 << int(rng.integers(8))
        q = tmp_path / "flip.npz"
        q.write_bytes(bytes(bad))
        try:
            nn.load(q, model, opt, loader=loader)
        except CheckpointError as e:
            kinds.add(str(e).split(":")[2][:30] if str(e).count(":") > 1 else str(e)[:30])
        assert_unchanged(before, model, opt, loader)  # a flip that loads must load the same state
    assert kinds


def test_renamed_npy_and_other_non_checkpoints(tmp_path):
    model, _, _ = small()
    np.save(tmp_path / "x.npy", np.zeros(3))
    os.replace(tmp_path / "x.npy", tmp_path / "x.npz")
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        nn.load(tmp_path / "x.npz", model)
    np.savez(tmp_path / "y.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not an anyxp_nn checkpoint"):
        nn.load(tmp_path / "y.npz", model)
    with pytest.raises(CheckpointError, match="no checkpoint at") as e:
        nn.load(tmp_path / "missing.npz", model)
    assert isinstance(e.value, FileNotFoundError)


@pytest.mark.parametrize("case,match", [
    ("deep", "unreadable metadata .RecursionError"),
    ("utf8", "unreadable metadata .UnicodeDecodeError"),
    ("a999", "refers to array 'a999', which the file does not hold"),
    ("pickle", "member 'a0' declares .* bytes, but the metadata says|checkpoints hold only C-ordered"),
])
def test_crafted_metadata(case, match, tmp_path):
    model, opt, loader = small()
    fit(model, opt, CE, loader, epochs=1, progress=False)  # the optimizer has slots
    p = nn.save(tmp_path / "ck.npz", model, opt)
    if case == "deep":
        rewrite(p, None)
        members = read_members(p)
        meta = b'{"format": "anyxp_nn.checkpoint", "version": 2, "x": ' + b"[" * 100000 + b"]" * 100000 + b"}"
        members = {k: v for k, v in members.items() if k.startswith("a")}
        digest = checkpoint.digest(meta, members)
        np.savez(p, **members, __meta__=np.frombuffer(meta, np.uint8), __checksum__=np.frombuffer(digest, np.uint8))
    elif case == "utf8":
        members = {k: v for k, v in read_members(p).items() if k.startswith("a")}
        meta = b'{"format": "\xff\xfe"}'
        np.savez(p, **members, __meta__=np.frombuffer(meta, np.uint8),
                 __checksum__=np.frombuffer(checkpoint.digest(meta, members), np.uint8))
    elif case == "a999":
        def first_ref(obj):
            if isinstance(obj, dict):
                if "__array__" in obj:
                    return obj
                obj = list(obj.values())
            for v in obj if isinstance(obj, list) else []:
                found = first_ref(v)
                if found is not None:
                    return found
        rewrite(p, lambda m: first_ref(m["optimizer"]).__setitem__("__array__", "a999"))
    else:  # a pickled object array in place of a weight: refused, never unpickled
        buf = io.BytesIO()
        np.save(buf, np.array([{"x": 1}] * 3, dtype=object), allow_pickle=True)
        replace_member(p, "a0.npy", buf.getvalue())
    before = host_state(model)
    with pytest.raises(CheckpointError, match=match):
        nn.load(p, model, opt)
    assert_same(host_state(model), before)


def replace_member(path, name, raw):
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members[name] = raw
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)


def test_save_refuses_a_non_finite_model_and_keeps_the_old_file(tmp_path):
    model, _, _ = small()
    p = nn.save(tmp_path / "ck.npz", model)
    old = p.read_bytes()
    w = model.parameters()[0]
    w.data = w.data * float("nan")
    with pytest.raises(CheckpointError, match=r"save: the model holds NaN or inf in \['0.weight'\]"):
        nn.save(p, model)
    assert p.read_bytes() == old


@pytest.mark.parametrize("path,match", [("", "`path` is empty"), ("  ", "`path` is empty"),
                                        (".", "is a directory")])
def test_save_and_load_bad_paths(path, match):
    model, _, _ = small()
    with pytest.raises(CheckpointError, match=match):
        nn.save(path, model)
    with pytest.raises(CheckpointError, match=match):
        nn.load(path, model)
    with pytest.raises(TypeError, match="`path` must be a str or os.PathLike, got int"):
        nn.save(3, model)


@needs_fork
def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    model, _, _ = small()
    target = tmp_path / "ck.npz"
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # a writer that no longer runs
    dead = tmp_path / f".ck.npz.{pid}.abcd1234.tmp"
    mine = tmp_path / f".ck.npz.{os.getpid()}.abcd1234.tmp"  # maybe another thread's: kept
    alive_pid = os.getppid()
    alive = tmp_path / f".ck.npz.{alive_pid}.abcd1234.tmp"
    other = tmp_path / f".other.npz.{pid}.abcd1234.tmp"  # another target's: not ours to touch
    user = tmp_path / "ck.npz.tmp"  # not our pattern
    for f in (dead, mine, alive, other, user):
        f.write_bytes(b"x")
    nn.save(target, model)
    assert not dead.exists()
    assert mine.exists() and alive.exists() and other.exists() and user.exists()


def test_json_logger_leaves_no_temp_file_on_a_full_disk(tmp_path, monkeypatch):
    model, opt, loader = small()
    path = tmp_path / "log.json"
    fit(model, opt, CE, loader, epochs=1, progress=False, callbacks=[JSONLogger(path)])
    old = path.read_text()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(_atomic.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        fit(model, opt, CE, loader, epochs=1, progress=False, callbacks=[JSONLogger(path)])
    assert path.read_text() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json"]


# -- fault injection: kill -9 a saving process at random points ------------------------
def _saver(path, n):
    """Child: save states k = 1, 2, ... forever; in state k every weight equals k and step_count is k."""
    model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 64))  # ~160k parameters, ~1.3 MB per file
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    k = n
    while True:
        k += 1
        for p in model.parameters():
            p.data = p.data * 0 + float(k)
            opt.state[id(p)] = {"momentum_buffer": p.data * 0 + float(k)}
        opt.step_count = k
        nn.save(path, model, opt, step=k)


@needs_fork
def test_kill_9_during_saves_always_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 64))
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    for p in model.parameters():
        p.data = p.data * 0
        opt.state[id(p)] = {"momentum_buffer": p.data * 0}
    nn.save(path, model, opt, step=0)
    rng = np.random.default_rng(0)
    seen, leftovers, t0 = set(), 0, time.perf_counter()
    for i in range(25):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                _saver(path, 1000 * i)
            finally:
                os._exit(1)
        time.sleep(float(rng.uniform(0.02, 0.25)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        leftovers += sum(1 for f in tmp_path.iterdir() if f.name.endswith(".tmp"))
        info = nn.load(path, model, opt)  # never raises: always a whole file
        k = info["step"]
        for name, v in model.state_dict().items():  # every array of one and the same save
            assert np.all(v == k), (name, k, np.unique(v)[:3])
        assert opt.step_count == k
        assert all(np.all(st["momentum_buffer"] == k) for st in opt.state_dict()["state"].values())
        seen.add(k)
    assert time.perf_counter() - t0 < 60
    assert len(seen) > 5  # the kills landed at many different points
    assert leftovers > 0  # some kills interrupted a write and left its temporary file ...
    nn.save(path, model, opt)
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]  # ... which the next save removes
