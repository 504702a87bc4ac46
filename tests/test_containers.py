"""LayerList / LayerDict, load_state_dict's return value, named_layers and the PyTorch aliases."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.models import small_resnet


class Tower(nn.Layer):
    """A model keeping its blocks in a LayerList and its heads in a LayerDict."""

    def __init__(self, backend):
        super().__init__(backend=backend)
        self.blocks = nn.LayerList([nn.Linear(4, 4, backend=backend), nn.ReLU(), nn.Linear(4, 4, backend=backend)])
        self.heads = nn.LayerDict({"cls": nn.Linear(4, 3, backend=backend), "reg": nn.Linear(4, 1, backend=backend)})

    def forward(self, x, train=None):
        backprops = []
        for block in self.blocks:
            x, bp = block.forward(x, train)
            backprops.append(bp)
        y, bp_cls = self.heads["cls"].forward(x, train)

        def backprop(dy, need_dx=True):
            d = bp_cls(dy)
            for bp in reversed(backprops):
                d = bp(d)
            return d

        return y, backprop


def test_layerlist_and_layerdict_register_their_entries(backend):
    model = Tower(backend)
    keys = list(model.state_dict())
    assert keys == ["blocks.0.weight", "blocks.0.bias", "blocks.2.weight", "blocks.2.bias",
                    "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias"]
    assert len(model.parameters()) == 8
    assert model.blocks.backend == backend and model.heads.backend == backend
    x = backend.asarray(np.ones((2, 4)), dtype="float32")
    y, backprop = model.forward(x)
    backprop(backend.asarray(np.ones((2, 3)), dtype="float32"))
    assert model.blocks[0].weight.grad is not None and model.heads["reg"].weight.grad is None
    model.eval()
    assert not model.blocks[1].training and not model.heads["cls"].training


def test_layerlist_operations(backend):
    ll = nn.LayerList()
    assert len(ll) == 0
    a, b, c = (nn.Linear(2, 2, backend=backend) for _ in range(3))
    ll.append(a).extend([b])
    ll.insert(0, c)
    assert list(ll) == [c, a, b] and ll[-1] is b
    assert [n for n, _ in ll.named_children()] == ["0", "1", "2"]
    assert list(ll[1:]) == [a, b] and isinstance(ll[1:], nn.LayerList)
    ll[1] = nn.ReLU()
    del ll[0]
    assert [type(layer).__name__ for layer in ll] == ["ReLU", "Linear"]
    assert list(ll.state_dict()) == ["1.weight", "1.bias"]
    with pytest.raises(TypeError, match="LayerList.append: the argument is a int, expected a Layer"):
        ll.append(3)
    with pytest.raises(IndexError, match="LayerList index 5 is out of range for 2 layers"):
        ll[5]
    with pytest.raises(NotImplementedError, match="LayerList has no forward"):
        ll.forward(backend.asarray(np.ones((1, 2)), dtype="float32"))


def test_layerdict_operations(backend):
    ld = nn.LayerDict([("a", nn.ReLU()), ("b", nn.Linear(2, 2, backend=backend))])
    assert ld.keys() == ["a", "b"] and "b" in ld and len(ld) == 2
    assert ld.backend == backend  # the child with parameters decides
    assert isinstance(ld.pop("a"), nn.ReLU) and list(ld) == ["b"]
    with pytest.raises(KeyError, match=r"LayerDict has no key 'zz' \(keys: \['b'\]\)"):
        ld["zz"]
    with pytest.raises(ValueError, match=r"LayerDict: key 'a.b' must be a non-empty string without '\.'"):
        ld["a.b"] = nn.ReLU()
    with pytest.raises(TypeError, match="LayerDict keys must be strings, got int 1"):
        ld[1] = nn.ReLU()
    with pytest.raises(TypeError, match="LayerDict: the value for 'c' is a list, expected a Layer"):
        ld["c"] = []


@pytest.mark.parametrize("value,kind", [([1], None), ("list", "LayerList"), ("tuple", "LayerList"),
                                        ("dict", "LayerDict")])
def test_plain_list_or_dict_of_layers_is_refused(value, kind, backend):
    layer = nn.Linear(2, 2, backend=backend)
    if kind is None:
        holder = nn.Sequential()
        holder.sizes = value  # plain data is fine
        assert holder.sizes == [1]
        return
    plain = {"list": [layer], "tuple": (layer,), "dict": {"a": layer}}[value]
    holder = nn.Sequential()
    with pytest.raises(TypeError, match=rf"Sequential: attribute 'blocks' is a plain {value} of Layers, which "
                                        rf"would not be registered .* use nn\.{kind}\(\.\.\.\) instead"):
        holder.blocks = plain


def test_load_state_dict_returns_missing_and_unexpected_keys_as_torch(backend):
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(3, 4, backend=backend), nn.BatchNorm1D(4, backend=backend))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    state = ours.state_dict()
    del state["1.running_var"]
    state["extra.weight"] = np.zeros(2, dtype=np.float32)
    got = ours.load_state_dict(state, strict=False)
    want = theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    assert got.missing_keys == list(want.missing_keys) == ["1.running_var"]
    assert got.unexpected_keys == list(want.unexpected_keys) == ["extra.weight"]
    missing, unexpected = ours.load_state_dict(ours.state_dict())
    assert missing == [] and unexpected == [] and got._fields == ("missing_keys", "unexpected_keys")


def test_named_layers_match_torch_named_modules(backend):
    torch = pytest.importorskip("torch")
    from anyxp_nn.testing.torch_models import torch_small_resnet
    ours = [n for n, _ in small_resnet(backend=backend, width=4).named_layers()]
    theirs = [n for n, _ in torch_small_resnet(width=4).named_modules()]
    assert ours == theirs
    assert "3.block" in ours and not any(n.endswith(".") for n in ours)


def test_pytorch_spellings_are_the_same_classes():
    assert nn.Conv2d is nn.Conv2D and nn.MaxPool2d is nn.MaxPool2D and nn.AvgPool2d is nn.AvgPool2D
    assert nn.BatchNorm1d is nn.BatchNorm1D and nn.BatchNorm2d is nn.BatchNorm2D
    assert nn.ConvTranspose2d is nn.ConvTranspose2D
    for name in ("Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
                 "LayerList", "LayerDict"):
        assert name in nn.__all__ and name in nn.layers.__all__


def test_aliases_build_working_layers(backend):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, backend=backend), nn.BatchNorm2d(2, backend=backend),
                          nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Flatten(), nn.BatchNorm1d(2, backend=backend))
    y = model(backend.asarray(np.ones((2, 1, 4, 4)), dtype="float32"))
    assert tuple(y.shape) == (2, 2) and backend.owns(y)
