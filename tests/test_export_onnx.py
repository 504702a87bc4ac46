"""ONNX export: every layer of the layer table and every model builder, from every backend, checked
by ``onnx.checker`` and run in ONNX Runtime against ``model(x)``, also with another batch size."""
from __future__ import annotations

import importlib
import re
from typing import Any

import numpy as np
import pytest
from export_deps import need
from layer_cases import all_cases

import anyxp_nn as nn
from anyxp_nn import models
from anyxp_nn.testing import assert_close

onnx = need("onnx")
ort = need("onnxruntime")

# float32 rounding: ORT's kernels sum in other orders than ours (and its Erf is not our erf)
RTOL, ATOL = 1e-5, 2e-5

CASES = all_cases()

# builder -> (keyword arguments, input shape at export); a new builder in these modules needs a row
BUILDER_MODULES = ("anyxp_nn.models", "anyxp_nn.vision.models")
MODEL_INPUTS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "anyxp_nn.models.mnist_cnn": ({}, (2, 1, 28, 28)),
    "anyxp_nn.models.small_resnet": ({"width": 4}, (2, 1, 28, 28)),
    "anyxp_nn.models.mlp": ({"in_features": 12, "hidden": (16, 8)}, (2, 12)),
    "anyxp_nn.vision.models.unet": ({"num_classes": 3, "width": 4}, (2, 1, 16, 16)),
    "anyxp_nn.vision.models.grid_detector": ({"num_classes": 3, "width": 4}, (2, 1, 16, 16)),
}


def _builders() -> dict[str, Any]:
    """Every builder of the modules in BUILDER_MODULES that this version has."""
    found = {}
    for name in BUILDER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # not in this version (a missing dependency of it still fails)
            if not (e.name and (name == e.name or name.startswith(e.name + "."))):
                raise
            continue
        found.update({f"{name}.{b}": getattr(module, b) for b in module.__all__})
    return found


BUILDERS = _builders()


def run_onnx(path: Any, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # a shared machine
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def check_export(model: nn.Layer, path: Any, inputs: list[np.ndarray]) -> None:
    """Export with ``inputs[0]``'s shape; ORT must equal model(x) for every input (other batch sizes)."""
    nn.export.to_onnx(model, path, inputs[0].shape)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for x in inputs:
        expected = nn.to_numpy(model(model.backend.asarray(x, dtype=model.dtype)))
        got = run_onnx(path, x)
        assert_close(got, expected, rtol=RTOL, atol=ATOL, msg=f"{type(model).__name__}, input {x.shape}")


def _other_batch(case: Any, n: int) -> np.ndarray:
    shape = (n,) + tuple(case.input_shape[1:])
    rng = np.random.default_rng(7)
    x = case.make_input(rng, shape) if case.make_input is not None else rng.standard_normal(shape)
    return np.asarray(x, dtype=np.float32)


def _unsupported(layer: nn.Layer) -> "list[str]":
    """Class names of the layers in ``layer`` (itself and nested) that have no ONNX converter."""
    from anyxp_nn.export.onnx_graph import find_converter
    missing = [type(layer).__name__] if find_converter(layer) is None else []
    return missing + [n for _, child in layer.named_children() for n in _unsupported(child)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_layer_table_exports(case, backend, tmp_path):
    """ONNX support is per layer: a row whose layers all have a converter (an ``onnx_nodes``
    method in the layer's file, or a registered one) must run in ORT as ``model(x)``; a row
    with a layer that has none must raise OnnxExportError naming that layer."""
    layer = case.make(backend, "float32")
    x = case.input().astype(np.float32)
    try:
        layer(layer.backend.asarray(x, dtype=layer.dtype))
    except ValueError as e:  # a row whose every call raises (it tests errors only): so must the export
        with pytest.raises(ValueError, match=re.escape(str(e))):
            nn.export.to_onnx(layer, tmp_path / f"{case.name}.onnx", x.shape)
        return
    missing = _unsupported(layer)
    if missing:
        with pytest.raises(nn.export.OnnxExportError, match=rf"cannot export .* of type {missing[0]} "):
            nn.export.to_onnx(layer, tmp_path / f"{case.name}.onnx", x.shape)
        assert not (tmp_path / f"{case.name}.onnx").exists()
        return
    check_export(layer, tmp_path / f"{case.name}.onnx", [x, _other_batch(case, x.shape[0] + 3)])


# the layers that export today: support once given is kept (a new layer need not export; if it
# does not, exporting a model that contains it raises OnnxExportError naming it)
EXPORTABLE = {
    "AvgPool2D", "BatchNorm1D", "BatchNorm2D", "Concatenate", "Conv2D", "ConvTranspose2D", "DataParallel",
    "Dropout", "Flatten", "GELU", "GlobalAvgPool2D", "GlobalMaxPool2D", "Identity", "LayerList", "LayerNorm",
    "LeakyReLU", "Linear", "MaxPool2D", "ReLU", "Residual", "Sequential", "Sigmoid", "Softmax", "SyncBatchNorm",
    "Tanh", "Upsample2D",
}


def _library_layers() -> "dict[str, type]":
    found = {n: getattr(nn.layers, n) for n in nn.layers.__all__}
    found.update(SyncBatchNorm=nn.distributed.SyncBatchNorm, DataParallel=nn.distributed.DataParallel)
    return {n: c for n, c in found.items() if isinstance(c, type) and issubclass(c, nn.Layer) and c.__name__ == n}


def _has_converter(cls: type) -> bool:
    from anyxp_nn.export.onnx_graph import _CONVERTERS
    return callable(getattr(cls, "onnx_nodes", None)) or cls in _CONVERTERS


def test_library_layers_keep_their_onnx_support():
    layers = _library_layers()
    lost = sorted(n for n in EXPORTABLE if n not in layers or not _has_converter(layers[n]))
    assert not lost, f"these layers no longer export to ONNX: {lost}"


def test_every_exportable_library_layer_has_a_table_row():
    """Every library layer that claims ONNX support is exported by test_layer_table_exports."""
    rows = {type(case.make(nn.get_backend("numpy"), "float32")).__name__ for case in CASES}
    own_test = {"DataParallel", "LayerList"}  # a wrapper and a forward-less list: their own tests below
    untested = sorted(n for n, c in _library_layers().items() if _has_converter(c) and n not in rows | own_test)
    assert not untested, f"no layer-table row exports {untested}: add one in tests/layer_cases/"


def test_every_model_builder_has_an_input_shape():
    missing = sorted(set(BUILDERS) - set(MODEL_INPUTS))
    assert not missing, f"no row in MODEL_INPUTS for {missing}: add its arguments and input shape"


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_model_builders_export(name, backend, tmp_path):
    kwargs, shape = MODEL_INPUTS[name]
    model = BUILDERS[name](backend=backend, rng=nn.random.Generator(0), **kwargs)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(shape).astype(np.float32),
              rng.standard_normal((5,) + shape[1:]).astype(np.float32)]
    check_export(model, tmp_path / f"{name}.onnx", inputs)


def test_trained_batchnorm_exports_running_statistics(tmp_path):
    model = models.small_resnet(width=4, backend="numpy", rng=nn.random.Generator(0))
    x = np.random.default_rng(2).standard_normal((4, 1, 28, 28)).astype(np.float32)
    for _ in range(2):  # moves the running statistics away from (0, 1)
        model.forward(model.backend.asarray(x), train=True)
    assert not np.allclose(model.state_dict()["1.running_mean"], 0.0)
    check_export(model, tmp_path / "bn.onnx", [x])


def test_graph_names_and_dynamic_batch(tmp_path):
    model = models.mlp(6, hidden=(5,), num_classes=3, backend="numpy")
    path = nn.export.to_onnx(model, tmp_path / "m.onnx", (4, 6))
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["output"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {t.name for t in proto.graph.initializer} == set(model.state_dict())  # PyTorch's key names
    assert proto.opset_import[0].version == 17 and proto.producer_name == "anyxp_nn"


def test_float64_and_newer_opset(tmp_path):  # GELU("tanh"): ORT has no float64 Erf kernel
    kw = dict(backend="numpy", dtype="float64")
    model = nn.Sequential(nn.Linear(4, 3, **kw), nn.GELU("tanh", **kw))
    x = np.random.default_rng(3).standard_normal((2, 4))
    path = nn.export.to_onnx(model, tmp_path / "m.onnx", x.shape, opset=18)
    assert onnx.load(str(path)).opset_import[0].version == 18
    np.testing.assert_allclose(run_onnx(path, x), nn.to_numpy(model(model.backend.asarray(x))), rtol=1e-12, atol=1e-12)


def test_data_parallel_exports_its_model(tmp_path):
    model = models.small_resnet(width=4, backend="numpy", rng=nn.random.Generator(0))
    wrapped = nn.distributed.DataParallel(nn.distributed.SyncBatchNorm.convert_sync_batchnorm(model))
    x = np.random.default_rng(9).standard_normal((2, 1, 28, 28)).astype(np.float32)
    check_export(wrapped, tmp_path / "dp.onnx", [x, x[:1]])
    names = {t.name for t in onnx.load(str(tmp_path / "dp.onnx")).graph.initializer}
    assert names == {k for k in wrapped.state_dict() if not k.endswith("num_batches_tracked")}


def test_identity_model_still_has_an_output(tmp_path):
    path = nn.export.to_onnx(nn.Sequential(nn.Dropout(0.5), nn.Identity()), tmp_path / "id.onnx", (2, 3))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(run_onnx(path, x), x)


# -- layers without a converter, and the hook ------------------------------------------------------
class Scale(nn.Layer):
    """y = s * x, with an ``onnx_nodes`` hook."""

    def __init__(self, s: float, **kw: Any):
        super().__init__(**kw)
        self.s = s

    def forward(self, x, train=True):
        return x * self.s, lambda dy, need_dx=True: dy * self.s if need_dx else None

    def onnx_nodes(self, graph, x):
        return graph.node("Mul", [x, graph.constant(self.s)])


class Twice(nn.Layer):
    """y = inner(inner(x)): a container whose hook converts its child twice."""

    def __init__(self, inner: nn.Layer):
        super().__init__(backend=inner.backend, dtype=inner.dtype)
        self.inner = inner

    def forward(self, x, train=True):
        y, b1 = self.inner.forward(x, train)
        z, b2 = self.inner.forward(y, train)
        return z, lambda dy, need_dx=True: b1(b2(dy), need_dx=need_dx)

    def onnx_nodes(self, graph, x):
        return graph.convert(self.inner, graph.convert(self.inner, x, "inner"), "inner")


class Tower(nn.Layer):
    """Blocks held in a LayerList and called in order by its own forward: the hook exports the list."""

    def __init__(self, *blocks: nn.Layer):
        super().__init__()
        self.blocks = nn.LayerList(blocks)

    def forward(self, x, train=None):
        backprops = []
        for block in self.blocks:
            x, bp = block.forward(x, train)
            backprops.append(bp)

        def backprop(dy, need_dx=True):
            for bp in reversed(backprops):
                dy = bp(dy, need_dx=need_dx)
            return dy

        return x, backprop

    def onnx_nodes(self, graph, x):
        return graph.convert(self.blocks, x, "blocks")  # a LayerList converts as its entries in order


class NoExport(nn.Layer):
    def forward(self, x, train=True):
        return x + 1.0, lambda dy, need_dx=True: dy


class MyReLU(nn.ReLU):  # changes nothing but the name: exports as ReLU
    pass


class ShiftedReLU(nn.ReLU):  # its own math: must not silently export as ReLU
    def forward(self, x, train=True):
        y, bp = super().forward(x - 1.0, train)
        return y, bp


class ShiftedScale(Scale):  # inherits Scale's onnx_nodes, but not its maths
    def forward(self, x, train=True):
        return super().forward(x - 1.0, train)


class NamedScale(Scale):  # the same maths under another name: Scale's nodes are right
    pass


def test_onnx_nodes_hook_and_subclass(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4, backend="numpy"), NamedScale(2.5, backend="numpy"), MyReLU(backend="numpy"),
                          Twice(nn.Linear(4, 4, backend="numpy")))
    x = np.random.default_rng(4).standard_normal((2, 3)).astype(np.float32)
    check_export(model, tmp_path / "hook.onnx", [x, x[:1]])
    names = {t.name for t in onnx.load(str(tmp_path / "hook.onnx")).graph.initializer}
    assert {"0.weight", "3.inner.weight", "3.inner.bias"} <= names


def test_layerlist_in_sequential_order(tmp_path):
    kw = dict(backend="numpy")
    model = Tower(nn.Conv2D(1, 3, 3, padding=1, **kw), nn.ReLU(**kw),
                  nn.ConvTranspose2D(3, 2, 2, stride=2, **kw), nn.GlobalMaxPool2D(**kw))
    x = np.random.default_rng(8).standard_normal((2, 1, 5, 5)).astype(np.float32)
    check_export(model, tmp_path / "tower.onnx", [x, x[:1]])
    names = {t.name for t in onnx.load(str(tmp_path / "tower.onnx")).graph.initializer}
    assert names == set(model.state_dict())  # "blocks.0.weight", ...


@pytest.mark.parametrize("layer, match", [
    (NoExport(), r"cannot export layer '1' of type NoExport \(no ONNX converter is registered for it\); "
                 r"give NoExport a method `onnx_nodes\(self, graph, x\) -> str`"),
    (ShiftedReLU(), r"layer '1' of type ShiftedReLU \(it overrides forward\(\) of an exportable base class\)"),
    (ShiftedScale(2.0), r"layer '1' of type ShiftedScale \(it overrides forward\(\) of an exportable base class\)"),
])
def test_unexportable_layer_is_named(layer, match, tmp_path):
    model = nn.Sequential(nn.Linear(3, 3, backend="numpy"), layer)
    with pytest.raises(nn.export.OnnxExportError, match=match):
        nn.export.to_onnx(model, tmp_path / "bad.onnx", (2, 3))
    assert not list(tmp_path.iterdir())  # nothing written


def test_unexportable_nested_path(tmp_path):
    model = nn.Sequential(nn.Residual(nn.Sequential(nn.Linear(3, 3, backend="numpy"), NoExport())))
    with pytest.raises(TypeError, match=r"layer '0\.block\.1' of type NoExport"):
        nn.export.to_onnx(model, tmp_path / "bad.onnx", (2, 3))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(input_shape=(0, 3)), ValueError, r"to_onnx: `input_shape` must be a non-empty tuple of positive ints.*"
                                           r"got \(0, 3\)"),
    (dict(input_shape=3), ValueError, r"`input_shape` must be .*got 3"),
    (dict(input_shape=(2, 3), opset=13), ValueError, r"to_onnx: `opset` must be an int from 17 .*got 13"),
    (dict(input_shape=(2, 4)), ValueError, r"Linear\(3, 3.*expected input of shape \(\.\.\., 3\), got \(2, 4\)"),
])
def test_bad_arguments(kwargs, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        nn.export.to_onnx(nn.Linear(3, 3, backend="numpy"), tmp_path / "m.onnx", **kwargs)


def test_register_onnx_converter_errors():
    with pytest.raises(TypeError, match=r"register_onnx_converter: `layer_type` must be a class, got 'Linear'"):
        nn.export.register_onnx_converter("Linear", lambda *a: "x")
    with pytest.raises(TypeError, match=r"the converter for NoExport must be callable, got int"):
        nn.export.register_onnx_converter(NoExport, 3)


def test_hook_must_return_a_name(tmp_path):
    class Broken(NoExport):
        def onnx_nodes(self, graph, x):
            graph.node("Relu", [x])  # forgot the return

    with pytest.raises(nn.export.OnnxExportError, match=r"the converter of Broken at '1' returned NoneType, "
                                                        r"expected the name \(str\) of its output value"):
        nn.export.to_onnx(nn.Sequential(nn.Identity(), Broken()), tmp_path / "b.onnx", (2, 3))
