"""Schedules: Python floats, equal to torch.optim.lr_scheduler's values step by step."""
import math

import pytest

from anyxp_nn import optim
from anyxp_nn.optim import schedules as S

N = 60


def _torch_lrs(make, n=N, lr=0.1):
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def _check(ours, ref, rel=1e-12):
    vals = [ours(k) for k in range(len(ref))]
    assert all(type(v) is float for v in vals)
    assert vals == pytest.approx(ref, rel=rel, abs=1e-15)


def test_constant():
    _check(S.constant(0.1), _torch_lrs(lambda L, o: L.ConstantLR(o, factor=1.0, total_iters=0)))


def test_step_decay():
    _check(S.step_decay(0.1, 7, 0.5), _torch_lrs(lambda L, o: L.StepLR(o, step_size=7, gamma=0.5)))


def test_exponential_decay():
    _check(S.exponential_decay(0.1, 0.95), _torch_lrs(lambda L, o: L.ExponentialLR(o, gamma=0.95)))


def test_cosine_annealing():
    ref = _torch_lrs(lambda L, o: L.CosineAnnealingLR(o, T_max=40, eta_min=0.001))
    _check(S.cosine_annealing(0.1, 40, 0.001), ref[:41], rel=1e-9)
    sched = S.cosine_annealing(0.1, 40, 0.001)
    assert sched(0) == 0.1 and sched(40) == 0.001 and sched(1000) == 0.001  # stays at min_lr


@pytest.mark.parametrize("start_factor", [0.1, 0.5])
def test_linear_warmup_constant(start_factor):
    ref = _torch_lrs(lambda L, o: L.LinearLR(o, start_factor=start_factor, end_factor=1.0, total_iters=10))
    _check(S.linear_warmup(0.1, 10, start_factor), ref)


def test_linear_warmup_from_zero():
    sched = S.linear_warmup(0.1, 4)
    assert [sched(k) for k in range(6)] == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, 0.1])


def test_warmup_then_cosine_is_sequential_lr():
    def make(L, o):
        return L.SequentialLR(o, [L.LinearLR(o, start_factor=0.2, total_iters=10),
                                  L.CosineAnnealingLR(o, T_max=50, eta_min=0.0)], milestones=[10])
    ref = _torch_lrs(make)
    _check(S.linear_warmup(S.cosine_annealing(0.1, 50), 10, start_factor=0.2), ref, rel=1e-9)
    _check(S.warmup_cosine(0.1, 10, 60, start_factor=0.2), ref, rel=1e-9)


def test_sequential_matches_torch():
    def make(L, o):
        return L.SequentialLR(o, [L.ConstantLR(o, factor=1.0, total_iters=0), L.StepLR(o, 5, 0.5),
                                  L.ExponentialLR(o, 0.9)], milestones=[8, 30])
    ref = _torch_lrs(make)
    _check(S.sequential([0.1, S.step_decay(0.1, 5, 0.5), S.exponential_decay(0.1, 0.9)], [8, 30]), ref)


def test_schedules_are_named_and_exported():
    for name in S.__all__:
        assert getattr(optim, name) is getattr(S, name)
    assert S.cosine_annealing(0.1, 10).__name__ == "cosine_annealing(0.1, 10, 0.0)"
    assert math.isclose(S.warmup_cosine(1.0, 2, 12)(7), 0.5)


def test_schedule_errors():
    with pytest.raises(ValueError, match=r"`lr` must be a finite float >= 0, got -1"):
        S.constant(-1)
    with pytest.raises(ValueError, match=r"`step_size` must be a positive int, got 0"):
        S.step_decay(0.1, 0)
    with pytest.raises(ValueError, match=r"`gamma` must be a finite float >= 0, got -0.5"):
        S.exponential_decay(0.1, -0.5)
    with pytest.raises(ValueError, match=r"`total_steps` must be a positive int, got 2.5"):
        S.cosine_annealing(0.1, 2.5)
    with pytest.raises(ValueError, match=r"linear_warmup: `warmup_steps` must be a non-negative int, got -1"):
        S.linear_warmup(0.1, -1)
    with pytest.raises(ValueError, match=r"`start_factor` must be in \[0, 1\], got 2.0"):
        S.linear_warmup(0.1, 5, start_factor=2.0)
    with pytest.raises(ValueError, match=r"3 schedules need 2 boundaries, got 1"):
        S.sequential([0.1, 0.2, 0.3], [5])
    with pytest.raises(ValueError, match=r"boundaries must be strictly increasing, got \[5, 5\]"):
        S.sequential([0.1, 0.2, 0.3], [5, 5])
    with pytest.raises(ValueError, match=r"`warmup_steps` \(=10\) must be an int in \[0, total_steps=10\)"):
        S.warmup_cosine(0.1, 10, 10)
    with pytest.raises(ValueError, match=r"a schedule's step must be >= 0, got -1"):
        S.constant(0.1)(-1)
