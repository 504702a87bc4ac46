"""Bad optimizer input: clear errors, and nothing changed."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import optim
from anyxp_nn.parameter import Parameter


def _param(backend, shape=(3, 2), value=1.0):
    return Parameter(backend.xp.full(shape, value, dtype=backend.xp.float32, device=backend.device))


def _stepped(backend, cls=optim.Adam, **kw):
    ps = [_param(backend), _param(backend, (2,))]
    opt = cls(ps, **kw)
    for p in ps:
        p.grad = backend.xp.ones_like(p.data)
    opt.step()
    return ps, opt


def _snapshot(ps, opt):
    sd = opt.state_dict()
    return [nn.to_numpy(p.data) for p in ps], sd, [dict(g) for g in opt.param_groups]


def _unchanged(ps, opt, snap):
    data, sd, groups = snap
    for p, d in zip(ps, data):
        assert np.array_equal(nn.to_numpy(p.data), d)
    now = opt.state_dict()
    assert now["step_count"] == sd["step_count"]
    assert now["param_groups"] == sd["param_groups"]
    for k, st in sd["state"].items():
        for name, v in st.items():
            assert np.array_equal(now["state"][k][name], v)
    assert [dict(g) for g in opt.param_groups] == groups


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad])
def test_negative_lr(backend, cls):
    with pytest.raises(ValueError, match=r"lr must be a non-negative float or a schedule, got -0.1"):
        cls([_param(backend)], lr=-0.1)
    with pytest.raises(ValueError, match=r"lr must be a non-negative float or a schedule, got nan"):
        cls([_param(backend)], lr=float("nan"))


@pytest.mark.parametrize("betas,msg", [((1.0, 0.999), r"betas\[0\] must be in \[0, 1\), got 1.0"),
                                       ((0.9, -0.1), r"betas\[1\] must be in \[0, 1\), got -0.1"),
                                       ((0.9,), r"betas must be a pair")])
@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_bad_betas(backend, cls, betas, msg):
    with pytest.raises(ValueError, match=msg):
        cls([_param(backend)], betas=betas)


def test_bad_hyperparameters(backend):
    p = _param(backend)
    with pytest.raises(ValueError, match=r"SGD: momentum must be a real number in \[0.0, 1.0\), got -0.5"):
        optim.SGD([p], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match=r"SGD: nesterov=True needs momentum > 0"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"Adam: weight_decay must be a real number in >= 0.0, got -1"):
        optim.Adam([p], weight_decay=-1)
    with pytest.raises(ValueError, match=r"Adam: eps must be a real number in >= 0.0"):
        optim.Adam([p], eps=-1e-8)
    with pytest.raises(ValueError, match=r"RMSprop: alpha must be a real number in \[0.0, 1.0\], got 1.5"):
        optim.RMSprop([p], alpha=1.5)
    with pytest.raises(TypeError, match=r"RMSprop: centered must be a bool"):
        optim.RMSprop([p], centered="yes")
    with pytest.raises(ValueError, match=r"Adagrad: lr_decay must be a real number in >= 0.0"):
        optim.Adagrad([p], lr_decay=-0.1)
    with pytest.raises(ValueError, match=r"param group 0 has unknown options \['momentum'\]"):
        optim.Adam([{"params": [p], "momentum": 0.9}])
    with pytest.raises(ValueError, match=r"param group 1 has no 'params' key"):
        optim.Adam([{"params": [p]}, {"lr": 0.1}])


def test_empty_parameter_list(backend):
    with pytest.raises(ValueError, match="Adam: the optimizer got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="param group 1 has an empty parameter list"):
        optim.Adam([{"params": [_param(backend)]}, {"params": []}])
    with pytest.raises(ValueError, match="SGD: the optimizer got an empty parameter list"):
        optim.SGD(nn.Sequential(nn.ReLU(backend=backend)), lr=0.1)


def test_parameter_listed_twice(backend):
    p, q = _param(backend), _param(backend)
    with pytest.raises(ValueError, match="is listed twice"):
        optim.SGD([p, q, p], lr=0.1)
    with pytest.raises(ValueError, match="is listed twice"):
        optim.Adam([{"params": [p]}, {"params": [q, p]}])


def test_not_parameters(backend):
    with pytest.raises(TypeError, match="expected Parameters, got"):
        optim.SGD([backend.xp.ones((2,), device=backend.device)], lr=0.1)
    with pytest.raises(TypeError, match="SGD: `params` must be all Parameters or all param-group dicts"):
        optim.SGD([_param(backend), {"params": [_param(backend)]}], lr=0.1)


def test_schedule_returning_negative_lr_changes_nothing(backend):
    ps = [_param(backend), _param(backend)]
    opt = optim.SGD([{"params": [ps[0]]}, {"params": [ps[1]], "lr": lambda k: 0.1 - 0.1 * k}], lr=0.1)
    for p in ps:
        p.grad = backend.xp.ones_like(p.data)
    opt.step()
    opt.step()  # lr 0.0: allowed
    snap = _snapshot(ps, opt)
    with pytest.raises(ValueError, match=r"schedule of param group 1 returned lr=-0.1\d* at step 2"):
        opt.step()
    _unchanged(ps, opt, snap)


def test_load_state_dict_from_another_optimizer(backend):
    ps, opt = _stepped(backend)
    _, other = _stepped(backend, optim.SGD, lr=0.1, momentum=0.9)
    snap = _snapshot(ps, opt)
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: the state dict is from a 'SGD' optimizer, "
                                         r"expected 'Adam'"):
        opt.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match=r"expected a dict with keys 'type', 'step_count'"):
        opt.load_state_dict({"state": {}})
    _unchanged(ps, opt, snap)


def test_load_state_dict_mismatches(backend):
    ps, opt = _stepped(backend)
    snap = _snapshot(ps, opt)
    good = opt.state_dict()

    bad = opt.state_dict()
    bad["state"][1]["exp_avg"] = np.zeros((3,), np.float32)
    with pytest.raises(ValueError, match=r"state\[1\]\['exp_avg'\] has shape \(3,\), expected \(2,\)"):
        opt.load_state_dict(bad)

    bad = opt.state_dict()
    bad["param_groups"][0]["params"] = [0]
    with pytest.raises(ValueError, match=r"param group 0 has 1 parameters in the state dict, 2 here"):
        opt.load_state_dict(bad)

    bad = opt.state_dict()
    bad["param_groups"].append(dict(bad["param_groups"][0]))
    with pytest.raises(ValueError, match=r"the state dict has 2 param groups, this optimizer has 1"):
        opt.load_state_dict(bad)

    bad = opt.state_dict()
    del bad["state"][0]["exp_avg_sq"]
    with pytest.raises(ValueError, match=r"state of parameter 0 has keys \['exp_avg', 'step'\], "
                                         r"expected \['exp_avg', 'exp_avg_sq', 'step'\]"):
        opt.load_state_dict(bad)

    bad = opt.state_dict()
    bad["state"][5] = bad["state"][0]
    with pytest.raises(ValueError, match=r"state for parameter 5, but there are 2 parameters"):
        opt.load_state_dict(bad)

    bad = opt.state_dict()
    bad["param_groups"][0]["betas"] = [1.5, 0.9]
    with pytest.raises(ValueError, match=r"betas\[0\] must be in \[0, 1\), got 1.5"):
        opt.load_state_dict(bad)

    bad = opt.state_dict()
    bad["param_groups"][0]["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"param group 0 has options .*'momentum'.*, expected"):
        opt.load_state_dict(bad)

    bad = opt.state_dict()
    bad["state"][0]["step"] = -1
    with pytest.raises(ValueError, match=r"state\[0\]\['step'\] must be an int >= 0, got -1"):
        opt.load_state_dict(bad)

    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = "schedule"
    with pytest.raises(ValueError, match=r"was saved with a schedule for 'lr'; pass the schedule"):
        opt.load_state_dict(bad)
    _unchanged(ps, opt, snap)
    opt.load_state_dict(good)  # and the good one still loads
    _unchanged(ps, opt, snap)


def test_momentum_state_mismatch(backend):
    """SGD without momentum keeps no buffer: a state dict with one is rejected."""
    ps, opt = _stepped(backend, optim.SGD, lr=0.1, momentum=0.9)
    plain = optim.SGD([_param(backend), _param(backend, (2,))], lr=0.1)
    with pytest.raises(ValueError, match=r"state of parameter 0 has keys \['momentum_buffer'\], expected \[\]"):
        sd = opt.state_dict()
        sd["param_groups"][0]["momentum"] = 0.0
        plain.load_state_dict(sd)
    assert plain.state == {}
