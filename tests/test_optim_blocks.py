"""Large updates run in row blocks on a thread pool (NumPy): results are bit-identical."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.optim import blocks as blocks_module

OPTIMIZERS = [
    lambda ps: nn.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: nn.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    lambda ps: nn.optim.AdamW(ps, lr=1e-2),
    lambda ps: nn.optim.RMSprop(ps, lr=1e-2, momentum=0.5, centered=True),
    lambda ps: nn.optim.Adagrad(ps, lr=1e-1, lr_decay=0.01, initial_accumulator_value=0.1),
]


def _run(backend, make_opt, min_block, monkeypatch):
    monkeypatch.setattr(blocks_module, "MIN_BLOCK", min_block)
    monkeypatch.setattr(backend, "elementwise_threads", 2)  # row blocks are off unless assigned
    pools = []
    real_pool = blocks_module._pool
    monkeypatch.setattr(blocks_module, "_pool", lambda n: pools.append(n) or real_pool(n))
    nn.manual_seed(0)
    layer = nn.Linear(16, 33, backend=backend)  # 33 rows: uneven blocks
    opt = make_opt(layer.parameters())
    rng = np.random.default_rng(0)
    for _ in range(5):
        for p in layer.parameters():
            p.grad = backend.asarray(rng.standard_normal(p.shape), dtype="float32")
        opt.step()
    assert bool(pools) == (min_block == 1)  # the blocked run really ran in blocks, the whole one did not
    return layer.state_dict(), opt.state_dict()


@pytest.mark.parametrize("make_opt", OPTIMIZERS, ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_blocked_update_is_bit_identical(backend, make_opt, monkeypatch):
    whole, whole_opt = _run(backend, make_opt, 1 << 30, monkeypatch)
    blocks, blocks_opt = _run(backend, make_opt, 1, monkeypatch)
    for k in whole:
        assert whole[k].tobytes() == blocks[k].tobytes(), k
    assert whole_opt["state"].keys() == blocks_opt["state"].keys()
    for i, st in whole_opt["state"].items():
        for k, v in st.items():
            other = blocks_opt["state"][i][k]
            assert (v == other) if isinstance(v, int) else v.tobytes() == other.tobytes(), (i, k)


def test_threads_per_backend():
    assert nn.get_backend("numpy").elementwise_threads == 1  # off unless assigned
    if "torch" in nn.available_backends():
        assert nn.get_backend("torch").elementwise_threads == 1


def test_pool_only_when_a_parameter_is_split(monkeypatch):
    """Whole parameters are updated in turn: the thread pool is for row blocks only."""
    be = nn.get_backend("numpy")
    monkeypatch.setattr(be, "elementwise_threads", 2)
    used = []
    real_pool = blocks_module._pool
    monkeypatch.setattr(blocks_module, "_pool", lambda n: used.append(n) or real_pool(n))
    layer = nn.Linear(16, 33, backend=be)
    opt = nn.optim.Adam(layer.parameters(), lr=1e-2)
    for p in layer.parameters():
        p.grad = p.data * 0.5
    monkeypatch.setattr(blocks_module, "MIN_BLOCK", 1 << 30)  # nothing split
    opt.step()
    assert used == []
    monkeypatch.setattr(blocks_module, "MIN_BLOCK", 1)  # the weight splits into 2 row blocks
    opt.step()
    assert used == [2]
