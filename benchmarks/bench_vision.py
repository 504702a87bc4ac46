"""Vision training steps: the U-Net (segmentation) and the grid detector, anyxp_nn vs PyTorch CPU.

Run:  flock /tmp/anyxp_bench.lock python benchmarks/bench_vision.py [--steps 20] [--backends numpy]

Models (from anyxp_nn.vision.models, the demos' models):
  * the segmentation demo's U-Net, width, batch and loss (anyxp_nn.demos.segmentation: width 8,
    batch 8 of 1x64x64 canvases, 11 classes): class-weighted per-pixel cross-entropy plus soft
    Dice (anyxp_nn.vision.segmentation_loss / torch.nn.functional.cross_entropy(weight=) plus the
    Dice formula in torch ops, autograd).
  * grid detector, width 16, batch 32 of 1x48x48 canvases, a 6x6 grid, 10 classes: the YOLO-style
    loss (anyxp_nn.vision.detection_loss / the same formula written in torch, autograd).
One step = forward + loss + backward + Adam step.  The PyTorch twin is built from the same layer
list (same children, so the same state_dict keys) and loads the same initial weights.
Time: both frameworks alternate in rounds inside this process; median ms per step.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn import vision as V
from anyxp_nn.demos import segmentation as S
from anyxp_nn.layers.base import Layer
from anyxp_nn.testing.torch_models import torch_concatenate

sys.path.insert(0, os.path.dirname(__file__))
from _common import interleaved_ms, machine  # noqa: E402


def torch_twin(layer: Layer) -> Any:
    """A ``torch.nn`` module with the same children and parameters as ``layer`` (weights copied)."""
    import torch
    import torch.nn as t

    def build(m: Layer) -> Any:
        kind = type(m).__name__
        kids = [build(c) for _, c in m.named_children()]
        if kind == "Sequential":
            return t.Sequential(*kids)
        if kind == "Concatenate":
            return torch_concatenate(*kids)
        if kind == "Conv2D":
            return t.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                            dilation=m.dilation, groups=m.groups, bias=m.bias is not None)
        if kind == "ConvTranspose2D":
            return t.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                                     padding=m.padding, output_padding=m.output_padding, groups=m.groups,
                                     bias=m.bias is not None, dilation=m.dilation)
        if kind == "BatchNorm2D":
            return t.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
        if kind == "MaxPool2D":
            return t.MaxPool2d(m.kernel_size, m.stride, m.padding)
        if kind == "Upsample2D":
            return t.Upsample(scale_factor=tuple(float(s) for s in m.scale_factor), mode="nearest")
        if kind in ("ReLU", "Identity"):
            return getattr(t, kind)()
        raise TypeError(f"torch_twin: no twin for {kind}")

    state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
    twin = build(layer).to(next(v.dtype for v in state.values() if v.is_floating_point()))  # float64 stays float64
    twin.load_state_dict(state)
    return twin


def torch_detection_loss(pred: Any, target: Any, box_weight: float = 5.0, noobj_weight: float = 0.5) -> Any:
    """anyxp_nn.vision.detection_loss written with torch ops (autograd gives the gradient)."""
    import torch
    F = torch.nn.functional
    obj = target[:, :1]
    bce = F.binary_cross_entropy_with_logits(pred[:, :1], obj, reduction="none")
    l_obj = (bce * (obj + noobj_weight * (1 - obj))).sum()
    l_box = box_weight * (((torch.sigmoid(pred[:, 1:5]) - target[:, 1:5]) * obj) ** 2).sum()
    ce = F.cross_entropy(pred[:, 5:], target[:, 5].long(), reduction="none")
    return (l_obj + l_box + (ce * obj[:, 0]).sum()) / pred.shape[0]


def torch_segmentation_loss(logits: Any, labels: Any, weight: Any, dice: float, smooth: float = 1.0) -> Any:
    """anyxp_nn.vision.segmentation_loss written with torch ops: weighted cross-entropy + dice * soft Dice."""
    import torch
    F = torch.nn.functional
    p = torch.softmax(logits, dim=1)
    g = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    inter, total = (p * g).sum((0, 2, 3)), p.sum((0, 2, 3)) + g.sum((0, 2, 3))
    soft_dice = 1 - ((2 * inter + smooth) / (total + smooth)).mean()
    return F.cross_entropy(logits, labels, weight=weight) + dice * soft_dice


def unet() -> Layer:
    """The segmentation demo's U-Net (its width), initial weights from seed 0, on NumPy."""
    return V.unet(S.CLASSES, rng=nn.Generator(0), width=S.WIDTH)


def data(bs: int = S.BATCH) -> dict:
    Xs, Ms = V.make_segmentation_canvases(2 * bs, seed=0)
    Xd, boxes, labels, valid = V.make_detection_canvases(64, seed=0)
    w = S.class_weights(Ms)
    return {"seg": ([Xs[:bs], Xs[bs:]], [Ms[:bs], Ms[bs:]], w),
            "det": ([Xd[:32], Xd[32:]], V.encode_grid(boxes, labels, valid, 6, 48))}


def ours(task: str, backend: str, d: dict) -> Any:
    b = nn.get_backend(backend)
    xp = b.xp
    if task == "seg":
        model = V.unet(S.CLASSES, backend=b, rng=nn.Generator(0), width=S.WIDTH)
        xs, ms, w = d["seg"]
        xs, ys, wd = [b.asarray(x) for x in xs], [b.asarray(m) for m in ms], b.asarray(w)

        def loss_fn(out: Any, i: int) -> Any:
            return V.segmentation_loss(out, ys[i % 2], wd, dice=S.DICE)
    else:
        model = V.grid_detector(backend=b, rng=nn.Generator(0))
        xs, tg = d["det"]
        xs, tg = [b.asarray(x) for x in xs], b.asarray(tg)

        def loss_fn(out: Any, i: int) -> Any:
            return V.detection_loss(out, xp.take(tg, b.asarray(np.arange(32) + 32 * (i % 2)), axis=0))
    opt = nn.optim.Adam(model.parameters(), lr=1e-3)

    def step(i: int) -> None:
        out, backprop = model.forward(xs[i % 2], train=True)
        loss, dout = loss_fn(out, i)
        model.zero_grad()
        backprop(dout, need_dx=False)
        opt.step()
        b.synchronize()

    return model, step


def reference(task: str, model: Layer, d: dict) -> Any:
    import torch
    twin = torch_twin(model)
    x0 = d[task][0][0]
    with torch.no_grad():  # the twin is a twin: same inference output before any step
        ref = twin.eval()(torch.from_numpy(x0)).numpy()
        gap = float(np.max(np.abs(ref - nn.to_numpy(model(model.backend.asarray(x0))))))
    twin.train()
    if gap > 1e-3:
        raise AssertionError(f"bench_vision: the torch twin of the {task} model differs by {gap:.2e}")
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    if task == "seg":
        xs, ms, w = d["seg"]
        xs, ys, wt = [torch.from_numpy(x) for x in xs], [torch.from_numpy(m) for m in ms], torch.from_numpy(w)

        def loss_fn(out: Any, i: int) -> Any:
            return torch_segmentation_loss(out, ys[i % 2], wt, S.DICE)
    else:
        xs, tg = d["det"]
        xs, tg = [torch.from_numpy(x) for x in xs], torch.from_numpy(np.asarray(tg))

        def loss_fn(out: Any, i: int) -> Any:
            return torch_detection_loss(out, tg[32 * (i % 2):32 * (i % 2) + 32])

    def step(i: int) -> None:
        opt.zero_grad()
        loss_fn(twin(xs[i % 2]), i).backward()
        opt.step()

    return step


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per implementation (default 20)")
    ap.add_argument("--backends", default="numpy", help="anyxp_nn backends to time (comma-separated)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--tasks", default="seg,det", help="seg (U-Net), det (grid detector) or both")
    ap.add_argument("--seg-batch", type=int, default=S.BATCH, help=f"U-Net batch (default the demo's, {S.BATCH})")
    args = ap.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    d = data(args.seg_batch)
    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    names = {"seg": f"U-Net 64x64 (segmentation demo), batch {args.seg_batch}", "det": "grid detector 48x48, batch 32"}
    for task in args.tasks.split(","):
        fns, model = {}, None
        for backend in args.backends.split(","):
            model, fns[f"anyxp_nn[{backend}]"] = ours(task, backend, d)
        fns["torch"] = reference(task, unet() if task == "seg" else
                                 V.grid_detector(rng=nn.Generator(0)), d)  # the initial weights, on numpy
        ms = interleaved_ms(fns, args.steps, rounds=4, warmup=1)
        print(f"\n{names[task]}, Adam: median ms per training step over {args.steps} steps")
        print(f"{'implementation':<28}{'step ms':>9}{'x torch':>9}")
        for k, v in ms.items():
            print(f"{k:<28}{v:>9.2f}{v / ms['torch']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
