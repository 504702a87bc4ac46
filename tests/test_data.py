"""DataLoader: batching, shuffling from the library generator, device modes, prefetch, validation."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.backend import transfer_hooks
from anyxp_nn.data import DataLoader, as_loader


def _data(n=10, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    y = np.arange(n, dtype=np.int64) % 4
    return x, y


@pytest.mark.parametrize("on_device", [True, False])
def test_batches_cover_the_data(backend, on_device):
    x, y = _data()
    ld = DataLoader(x, y, batch_size=4, backend=backend, rng=0, on_device=on_device)
    assert len(ld) == 3
    got_x, got_y = [], []
    for xb, yb in ld:
        assert backend.owns(xb) and backend.owns(yb)
        assert xb.dtype == backend.xp.float32 and yb.dtype == backend.xp.int64
        got_x.append(nn.to_numpy(xb))
        got_y.append(nn.to_numpy(yb))
    gx, gy = np.concatenate(got_x), np.concatenate(got_y)
    assert [len(a) for a in got_x] == [4, 4, 2]
    order = np.argsort(gx[:, 0])
    np.testing.assert_array_equal(gx[order], x)
    np.testing.assert_array_equal(gy[order], y)
    # the shuffle is the library generator's permutation, the same on every backend
    np.testing.assert_array_equal(gx[:, 0] // 3, nn.random.Generator(0).permutation(10))


def test_drop_last_and_no_shuffle():
    x, y = _data()
    ld = DataLoader(x, y, batch_size=4, shuffle=False, drop_last=True)
    batches = list(ld)
    assert len(ld) == len(batches) == 2
    np.testing.assert_array_equal(nn.to_numpy(batches[1][1]), y[4:8])


def test_epochs_reshuffle_and_replay_with_seed():
    x, y = _data(50)
    first = DataLoader(x, x[:, 0].astype(np.int64), batch_size=64, rng=3)
    a = [nn.to_numpy(yb) for _ in range(2) for _, yb in first]
    ld = DataLoader(x, x[:, 0].astype(np.int64), batch_size=64, rng=3)
    e1, e2 = [nn.to_numpy(b[1]) for b in ld], [nn.to_numpy(b[1]) for b in ld]
    assert not np.array_equal(e1[0], e2[0])
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(e1 + e2))


def test_prefetch_gives_the_same_batches():
    x, y = _data(33)
    a = [nn.to_numpy(xb) for xb, _ in DataLoader(x, y, batch_size=5, rng=1, on_device=False)]
    b = [nn.to_numpy(xb) for xb, _ in DataLoader(x, y, batch_size=5, rng=1, on_device=False, prefetch=True)]
    assert len(a) == len(b) == 7
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    it = iter(DataLoader(x, y, batch_size=5, on_device=False, prefetch=True))
    next(it)
    it.close()  # stopping early leaves no thread blocked


def test_transfers_happen_in_the_loader_only_once_per_tensor():
    x, y = _data(40)
    strict = nn.get_backend("array_api_strict")
    events = []
    transfer_hooks.append(lambda kind, b, n: events.append(kind))
    try:
        ld = DataLoader(x, y, batch_size=8, backend=strict, on_device=True)
        assert events == ["to_device", "to_device"]  # the whole dataset, once
        events.clear()
        list(ld)
        assert events == ["to_device"]  # one permutation per epoch
        events.clear()
        list(DataLoader(x, y, batch_size=8, backend=strict, on_device=False))
        assert events == ["to_device"] * 10  # x and y per batch
    finally:
        transfer_hooks.pop()


def test_augment_hook_gets_the_device_batch_and_the_generator(backend):
    x, y = _data()
    seen = []

    def aug(xb, rng):
        seen.append(rng)
        assert backend.owns(xb)
        return xb * 0.0

    g = nn.random.Generator(5)
    ld = DataLoader(x, y, batch_size=5, backend=backend, rng=g, augment=aug)
    assert all(float(np.abs(nn.to_numpy(xb)).sum()) == 0.0 for xb, _ in ld)
    assert seen == [g, g]


def test_state_dict_round_trip():
    x, y = _data(20)
    ld = DataLoader(x, y, batch_size=4, rng=7)
    list(ld)
    st = ld.state_dict()
    nxt = [nn.to_numpy(b) for _, b in ld]
    ld2 = DataLoader(x, y, batch_size=4, rng=0)
    ld2.load_state_dict(st)
    assert ld2.epoch == 1
    for u, v in zip(nxt, [nn.to_numpy(b) for _, b in ld2]):
        np.testing.assert_array_equal(u, v)


def test_float_targets_with_labels_false():
    x, _ = _data()
    ld = DataLoader(x, x[:, :1], labels=False, batch_size=4)
    assert nn.to_numpy(next(iter(ld))[1]).dtype == np.float32


def test_as_loader():
    x, y = _data()
    ld = as_loader((x, y))
    assert not ld.shuffle and as_loader(ld) is ld
    with pytest.raises(TypeError, match="`val_data` must be an \\(x, y\\) pair"):
        as_loader(x)


# -- bad input: clear messages ---------------------------------------------------------
def test_length_mismatch():
    x, y = _data()
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        DataLoader(x, y[:9])


def test_non_finite_x():
    x, y = _data()
    x[3, 1] = np.nan
    x[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"non-finite values .* in 2 sample\(s\), first at index 3"):
        DataLoader(x, y)


def test_labels_must_be_integers():
    x, y = _data()
    with pytest.raises(TypeError, match="labels y must be integers .* got dtype float64"):
        DataLoader(x, y.astype(np.float64))


def test_labels_out_of_range():
    x, y = _data()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values in \[0, 3\]"):
        DataLoader(x, y, num_classes=3)
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes\), got values in \[-1, 3\]"):
        DataLoader(x, np.where(y == 0, -1, y))


def test_other_argument_errors():
    x, y = _data()
    with pytest.raises(ValueError, match="`batch_size` must be a positive int, got 0"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(TypeError, match="`x` must be a host numpy.ndarray"):
        DataLoader(nn.get_backend("array_api_strict").asarray(x), y)
    with pytest.raises(ValueError, match="the dataset is empty"):
        DataLoader(x[:0], y[:0])
    with pytest.raises(ValueError, match="`on_device` must be 'auto', True or False"):
        DataLoader(x, y, on_device="yes")
    with pytest.raises(TypeError, match="`augment` must be callable"):
        DataLoader(x, y, augment=3)
    with pytest.raises(ValueError, match="non-finite"):
        DataLoader(x, np.full((10, 1), np.nan), labels=False)


def _rows(batches):
    """The sample indices of the batches of _data (x[i, 0] = 3 i)."""
    return np.concatenate([nn.to_numpy(xb)[:, 0] // 3 for xb, _ in batches]).astype(int)


@pytest.mark.parametrize("on_device", [True, False])
def test_replacement_draws_uniform_indices_as_torch_random_sampler(backend, on_device):
    x, y = _data(10)
    ld = DataLoader(x, y, batch_size=4, rng=3, replacement=True, samples_per_epoch=13, backend=backend,
                    on_device=on_device)
    assert len(ld) == 4                                     # ceil(13 / 4)
    got = _rows(ld)
    expected = nn.Generator(3).host.integers(0, 10, size=13, dtype=np.int64)
    np.testing.assert_array_equal(got, expected)            # 13 uniform draws from the loader's generator
    labels = np.concatenate([nn.to_numpy(yb) for _, yb in ld])
    second = _rows(ld)
    assert not np.array_equal(second, got)                  # each epoch draws afresh
    assert len(labels) == 13
    assert "samples_per_epoch=13, replacement=True" in repr(ld)
    default = DataLoader(x, y, batch_size=4, rng=3, replacement=True)
    assert len(_rows(default)) == 10                        # N draws by default, as torch's num_samples=None


def test_samples_per_epoch_without_replacement_chains_permutations():
    x, y = _data(10)
    got = _rows(DataLoader(x, y, batch_size=5, rng=2, samples_per_epoch=25))
    assert sorted(got[:10]) == sorted(got[10:20]) == list(range(10))   # two whole permutations
    assert len(got) == 25 and len(set(got[20:])) == 5                  # then the start of a third
    assert len(DataLoader(x, y, batch_size=4, samples_per_epoch=25, drop_last=True)) == 6


def test_replacement_state_round_trip_and_shard():
    x, y = _data(10)
    a = DataLoader(x, y, batch_size=4, rng=5, replacement=True)
    _rows(a)
    b = DataLoader(x, y, batch_size=4, rng=0, replacement=True)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(_rows(a), _rows(b))       # the draws resume with the generator
    ranks = [DataLoader(x, y, batch_size=2, rng=1, replacement=True, samples_per_epoch=7, shard=(r, 2))
             for r in range(2)]
    assert [len(ld) for ld in ranks] == [2, 2]              # ceil(7 / 2) = 4 samples per rank
    both = np.stack([_rows(ld) for ld in ranks], axis=1).ravel()
    draws = nn.Generator(1).host.integers(0, 10, size=7, dtype=np.int64)
    np.testing.assert_array_equal(both, np.resize(draws, 8))  # padded by repeating the start, then interleaved


def test_replacement_errors():
    x, y = _data()
    with pytest.raises(ValueError, match="DataLoader: `replacement=True` draws a random order, so it needs "
                                         "shuffle=True"):
        DataLoader(x, y, shuffle=False, replacement=True)
    with pytest.raises(ValueError, match="DataLoader: `samples_per_epoch=5` draws a random order"):
        DataLoader(x, y, shuffle=False, samples_per_epoch=5)
    with pytest.raises(ValueError, match="DataLoader: `samples_per_epoch` must be a positive int, got 0"):
        DataLoader(x, y, samples_per_epoch=0)
    with pytest.raises(TypeError, match="DataLoader: `replacement` must be True or False, got 1"):
        DataLoader(x, y, replacement=1)
