"""map_state_dict_keys: a torchvision-style ResNet state_dict renamed onto small_resnet, and its errors."""
from __future__ import annotations

import re

import numpy as np
import pytest
from export_deps import need

import anyxp_nn as nn
from anyxp_nn import models
from anyxp_nn.keymap import KeyMapError, map_state_dict_keys

# our small_resnet module -> torchvision's name for the same module
TORCHVISION_NAMES = {
    "0": "conv1", "1": "bn1",
    "3.block.0": "layer1.0.conv1", "3.block.1": "layer1.0.bn1", "3.block.3": "layer1.0.conv2",
    "3.block.4": "layer1.0.bn2",
    "5.block.0": "layer2.0.conv1", "5.block.1": "layer2.0.bn1", "5.block.3": "layer2.0.conv2",
    "5.block.4": "layer2.0.bn2", "5.shortcut.0": "layer2.0.downsample.0", "5.shortcut.1": "layer2.0.downsample.1",
    "8": "fc",
}

# the rules a user writes: prefixes for the stem, the stages and the head, then the inner names
RULES = [
    (r"^conv1\.", "0."), (r"^bn1\.", "1."), (r"^fc\.", "8."),
    (r"^layer1\.0\.", "3."), (r"^layer2\.0\.", "5."),
    (r"^(\d+)\.conv1\.", r"\1.block.0."), (r"^(\d+)\.bn1\.", r"\1.block.1."),
    (r"^(\d+)\.conv2\.", r"\1.block.3."), (r"^(\d+)\.bn2\.", r"\1.block.4."),
    (r"^(\d+)\.downsample\.", r"\1.shortcut."),
]


def torchvision_state(model):
    out = {}
    for key, value in model.state_dict().items():
        module, _, leaf = key.rpartition(".")
        out[f"{TORCHVISION_NAMES[module]}.{leaf}"] = value
    return out


@pytest.fixture
def pair():
    source = models.small_resnet(width=4, backend="numpy", rng=nn.random.Generator(0))
    return source, torchvision_state(source)


def test_torchvision_names_map_onto_the_model(pair, backend):
    source, tv = pair
    assert "layer2.0.downsample.1.running_var" in tv and "bn1.num_batches_tracked" in tv
    model = models.small_resnet(width=4, backend=backend, rng=nn.random.Generator(1))
    state = map_state_dict_keys(tv, RULES, expected=model)
    assert list(state) == list(source.state_dict())
    model.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    expected = nn.to_numpy(source(source.backend.asarray(x)))
    np.testing.assert_allclose(nn.to_numpy(model(model.backend.asarray(x))), expected, rtol=1e-5, atol=1e-5)


def test_dict_and_callable_rules(pair):
    source, tv = pair
    as_dict = map_state_dict_keys(tv, dict(RULES), expected=source)
    names = {v: k for k, v in TORCHVISION_NAMES.items()}
    as_fn = map_state_dict_keys(tv, lambda k: names[k.rpartition(".")[0]] + "." + k.rpartition(".")[2],
                                expected=source)
    assert list(as_dict) == list(as_fn) == list(source.state_dict())


def test_unmatched_keys_listed_side_by_side(pair):
    source, tv = pair
    rules = [r for r in RULES if r[0] != r"^fc\."]  # forgot the head
    with pytest.raises(KeyMapError) as info:
        map_state_dict_keys(tv, rules, expected=source)
    msg = str(info.value)
    assert msg.startswith("map_state_dict_keys: after renaming, 2 checkpoint key(s) match no model key and "
                          "2 model key(s) get no value:")
    lines = msg.splitlines()
    assert re.fullmatch(r"  checkpoint key without a model key +\| model key without a value", lines[1])
    assert re.fullmatch(r"  fc\.bias +\| 8\.bias", lines[3]) and re.fullmatch(r"  fc\.weight +\| 8\.weight", lines[4])
    assert "strict=False" in lines[-1]


def test_renamed_keys_show_their_origin(pair):
    source, tv = pair
    rules = [r for r in RULES if r[0] != r"^(\d+)\.downsample\."]
    with pytest.raises(KeyError, match=r"5\.downsample\.0\.weight \(from layer2\.0\.downsample\.0\.weight\) +\| "
                                       r"5\.shortcut\.0\.weight"):
        map_state_dict_keys(tv, rules, expected=source)


def test_strict_false_and_dropping_keys(pair):
    source, tv = pair
    partial = map_state_dict_keys(tv, [(r"^fc\.", None)] + RULES, expected=source, strict=False)
    assert "8.weight" not in partial and len(partial) == len(tv) - 2
    with pytest.raises(KeyMapError, match=r"0 checkpoint key\(s\) match no model key and 2 model key\(s\)"):
        map_state_dict_keys(tv, [(r"^fc\.", None)] + RULES, expected=source)


def test_without_expected_only_renames():
    assert map_state_dict_keys({"a.w": 1, "b.w": 2}, [(r"^a\.", "x.")]) == {"x.w": 1, "b.w": 2}


@pytest.mark.parametrize("state, rules, exc, match", [
    ({"a.w": 1, "b.w": 2}, [(r"^[ab]\.", "")], KeyMapError, r"'a\.w' and 'b\.w' are both renamed to 'w'"),
    ({"a": 1}, "a", TypeError, r"`rules` must be a callable, a \{pattern: replacement\} mapping or a sequence"),
    ({"a": 1}, [("a",)], TypeError, r"rule 0 must be a \(pattern, replacement or None\) pair of strings, got \('a',\)"),
    ({"a": 1}, [("(", "b")], ValueError, r"rule 0 has an invalid regular expression '\('"),
    ({"a": 1}, lambda k: 3, TypeError, r"the rules turned 'a' into 3, expected a str or None"),
    ([1, 2], [], TypeError, r"`state` must be a mapping of key -> array, got list"),
])
def test_bad_rules(state, rules, exc, match):
    with pytest.raises(exc, match=match):
        map_state_dict_keys(state, rules)


def test_bad_expected():
    with pytest.raises(TypeError, match=r"`expected` must be a model or an iterable of key names, got int"):
        map_state_dict_keys({"a": 1}, [], expected=3)
    assert map_state_dict_keys({"a": 1}, [], expected=["a"]) == {"a": 1}


def test_many_unmatched_keys_are_capped():
    state = {f"k{i}": i for i in range(60)}
    with pytest.raises(KeyMapError, match=r"\.\.\. \(20 more rows\)"):
        map_state_dict_keys(state, [], expected=[f"m{i}" for i in range(60)])


def test_load_state_dict_key_map(pair, backend):
    source, tv = pair
    model = models.small_resnet(width=4, backend=backend, rng=nn.random.Generator(1))
    assert model.load_state_dict(tv, key_map=RULES) == ([], [])
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)


def test_load_state_dict_key_map_mismatch_changes_nothing(pair, backend):
    _, tv = pair
    model = models.small_resnet(width=4, backend=backend, rng=nn.random.Generator(1))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(KeyError, match=r"fc\.weight +\| 8\.weight"):
        model.load_state_dict(tv, key_map=RULES[:2] + RULES[3:])
    for key, value in before.items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)
    # strict=False loads what the rules match and reports the rest, as torch's load_state_dict
    missing, unexpected = model.load_state_dict(tv, strict=False, key_map=RULES[:2] + RULES[3:])
    assert missing == ["8.weight", "8.bias"] and unexpected == ["fc.weight", "fc.bias"]


def test_load_safetensors_key_map(pair, tmp_path):
    st_numpy = need("safetensors.numpy")
    need("ml_dtypes")
    source, tv = pair
    st_numpy.save_file({k: np.require(v, requirements="C") for k, v in tv.items()}, str(tmp_path / "tv.safetensors"))
    model = models.small_resnet(width=4, backend="numpy", rng=nn.random.Generator(1))
    nn.export.load_safetensors(model, tmp_path / "tv.safetensors", key_map=RULES)
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)
