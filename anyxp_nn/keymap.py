"""Rename the keys of a checkpoint whose names differ from the model's (e.g. torchvision's).

A torchvision ResNet names its weights ``conv1.weight``, ``bn1.running_mean``,
``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``, ``fc.bias``; the same network built
from ``Sequential``/``Residual`` here has ``0.weight``, ``1.running_mean``, ``3.block.0.weight``,
``5.shortcut.0.weight``, ``8.bias``.  :func:`map_state_dict_keys` renames by rules, checks the
result against the model and, when keys are left over, lists both sides next to each other::

    rules = [(r"^conv1\\.", "0."), (r"^bn1\\.", "1."), (r"^layer1\\.0\\.", "3.block."),
             (r"\\.conv1\\.", ".0."), (r"\\.bn1\\.", ".1."), (r"^fc\\.", "8.")]
    state = map_state_dict_keys(torch_state, rules, expected=model)
    model.load_state_dict(state)      # or model.load_state_dict(torch_state, key_map=rules)

No dependency on the layers: this module sits below them, so ``Layer.load_state_dict`` uses it.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

__all__ = ["map_state_dict_keys", "KeyMapError"]

_MAX_ROWS = 40


class KeyMapError(KeyError):
    """Keys that the rules leave unmatched, or that collide (a KeyError with a readable message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def map_state_dict_keys(state: Mapping[str, Any], rules: Any, *, expected: Any = None,
                        strict: bool = True) -> dict[str, Any]:
    """Rename the keys of ``state`` by ``rules``; values are passed through untouched.

    Args:
        state: a ``state_dict`` (any mapping of key -> array), e.g. from ``torch.load``.
        rules: one of
            * a sequence of ``(pattern, replacement)`` pairs: regular expressions applied to
              every key in order, each with ``re.sub`` (so later rules see earlier results);
              a ``None`` replacement drops the keys the pattern matches (e.g. a classifier head);
            * a mapping ``{pattern: replacement}``, the same rules in the mapping's order;
            * a callable ``key -> new key`` (``None`` drops the key).
        expected: the model (a Layer) or its key names: the renamed keys are checked against them.
        strict: with ``expected``, raise when a renamed key has no model key or a model key gets no
            value; with ``strict=False`` both are allowed (as ``load_state_dict(strict=False)``).

    Returns:
        a new dict ``{renamed key: value}`` in the order of ``state``.

    Raises:
        KeyMapError (a KeyError): two keys renamed to one, or (strict, with ``expected``) keys left
        unmatched on either side, listed side by side with the original name of each renamed key.
        TypeError / ValueError: malformed ``rules``.
    """
    if not hasattr(state, "items"):
        raise TypeError(f"map_state_dict_keys: `state` must be a mapping of key -> array, got {type(state).__name__}")
    rename = _compile(rules)
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = rename(key)
        if new is None:
            continue
        if not isinstance(new, str):
            raise TypeError(f"map_state_dict_keys: the rules turned {key!r} into {new!r}, expected a str or None")
        if new in out:
            raise KeyMapError(f"map_state_dict_keys: {origin[new]!r} and {key!r} are both renamed to {new!r}; "
                              "make the rules tell them apart (or drop one with a None replacement)")
        out[new], origin[new] = value, key
    if expected is not None and strict:
        wanted = _expected_keys(expected)
        unmatched = [k for k in out if k not in wanted]
        missing = [k for k in wanted if k not in out]
        if unmatched or missing:
            raise KeyMapError(_side_by_side(unmatched, missing, origin))
    return out


def _compile(rules: Any) -> Callable[[str], "str | None"]:
    if callable(rules):
        return rules
    pairs = list(rules.items()) if isinstance(rules, Mapping) else rules
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise TypeError("map_state_dict_keys: `rules` must be a callable, a {pattern: replacement} mapping or a "
                        f"sequence of (pattern, replacement) pairs, got {type(rules).__name__}")
    compiled = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], str) \
                or not (pair[1] is None or isinstance(pair[1], str)):
            raise TypeError(f"map_state_dict_keys: rule {i} must be a (pattern, replacement or None) pair of "
                            f"strings, got {pair!r}")
        try:
            compiled.append((re.compile(pair[0]), pair[1]))
        except re.error as e:
            raise ValueError(f"map_state_dict_keys: rule {i} has an invalid regular expression "
                             f"{pair[0]!r}: {e}") from None

    def rename(key: str) -> "str | None":
        for pattern, repl in compiled:
            if repl is None:
                if pattern.search(key):
                    return None
            else:
                key = pattern.sub(repl, key)
        return key

    return rename


def _expected_keys(expected: Any) -> list[str]:
    if hasattr(expected, "named_parameters") and hasattr(expected, "named_buffers"):
        return [k for k, _ in expected.named_parameters()] + [k for k, _ in expected.named_buffers()]
    if hasattr(expected, "state_dict"):
        return list(expected.state_dict())
    if isinstance(expected, (str, bytes)) or not isinstance(expected, Iterable):
        raise TypeError("map_state_dict_keys: `expected` must be a model or an iterable of key names, "
                        f"got {type(expected).__name__}")
    return [str(k) for k in expected]


def _natural(key: str) -> list[Any]:
    """Sort key that puts "layer2" before "layer10" and "3.block" before "10.block"."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _side_by_side(unmatched: list[str], missing: list[str], origin: dict[str, str]) -> str:
    left = [k if origin[k] == k else f"{k} (from {origin[k]})" for k in sorted(unmatched, key=_natural)]
    right = sorted(missing, key=_natural)
    head_l, head_r = "checkpoint key without a model key", "model key without a value"
    rows = max(len(left), len(right))
    shown = min(rows, _MAX_ROWS)
    width = max([len(head_l)] + [len(s) for s in left[:shown]])
    lines = [f"map_state_dict_keys: after renaming, {len(unmatched)} checkpoint key(s) match no model key and "
             f"{len(missing)} model key(s) get no value:",
             f"  {head_l:<{width}} | {head_r}", f"  {'-' * width}-+-{'-' * len(head_r)}"]
    for i in range(shown):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        lines.append(f"  {a:<{width}} | {b}")
    if rows > shown:
        lines.append(f"  ... ({rows - shown} more rows)")
    lines.append("Add or fix rules for these keys, drop checkpoint keys with a (pattern, None) rule, "
                 "or pass strict=False to load a subset.")
    return "\n".join(lines)
