"""anyxp_nn.vision: boxes, NMS, metrics, per-pixel CE, the grid detector's loss, the canvases.

Each numeric function runs on every backend (the ``backend`` fixture) and is checked against a
hand-worked value, a plain-Python reference or PyTorch autograd.
"""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import vision as V


def _np(a):
    return nn.to_numpy(a)


def _iou_ref(a, b):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            u = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - w * h
            out[i, j] = w * h / u if u > 0 else 0.0
    return out


def _random_boxes(rng, shape, size=40.0):
    xy = rng.uniform(0, size, shape + (2,))
    wh = rng.uniform(2, 15, shape + (2,))
    return np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)


# -- boxes ----------------------------------------------------------------------------------------------
def test_box_iou_matches_reference(backend):
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, (2, 5)), _random_boxes(rng, (2, 7))
    a[0, 0] = b[0, 0]  # identical boxes: IoU 1
    a[1, 1] = [3, 3, 3, 9]  # empty box against anything: IoU 0
    got = _np(V.box_iou(backend.asarray(a), backend.asarray(b)))
    assert got.shape == (2, 5, 7)
    for k in range(2):
        np.testing.assert_allclose(got[k], _iou_ref(a[k], b[k]), rtol=1e-5, atol=1e-6)
    assert got[0, 0, 0] == pytest.approx(1.0)


def test_box_convert_round_trip_and_errors(backend):
    boxes = backend.asarray(np.array([[1.0, 2.0, 5.0, 10.0]], dtype=np.float32))
    c = V.box_convert(boxes, "xyxy", "cxcywh")
    np.testing.assert_allclose(_np(c), [[3.0, 6.0, 4.0, 8.0]])
    np.testing.assert_allclose(_np(V.box_convert(c, "cxcywh", "xyxy")), _np(boxes))
    np.testing.assert_allclose(_np(V.box_area(boxes)), [32.0])
    with pytest.raises(ValueError, match=r"box_convert: `out_fmt` must be one of"):
        V.box_convert(boxes, "xyxy", "xywh")
    with pytest.raises(ValueError, match=r"box_iou: `boxes2` must have shape \(\.\.\., 4\)"):
        V.box_iou(boxes, backend.asarray(np.zeros((1, 3), dtype=np.float32)))
    with pytest.raises(TypeError, match=r"box_area: `boxes` must be a real floating array"):
        V.box_area(backend.asarray(np.zeros((1, 4), dtype=np.int64)))


# -- NMS ------------------------------------------------------------------------------------------------
def _nms_ref(boxes, scores, thr, labels=None, valid=None):
    """Greedy NMS, one box at a time (the plain-Python definition)."""
    keep = np.zeros(len(scores), dtype=bool)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    iou = _iou_ref(boxes, boxes)
    for i in order:
        if valid is not None and not valid[i]:
            continue
        if not any(keep[j] and iou[j, i] > thr and (labels is None or labels[j] == labels[i])
                   for j in range(len(scores))):
            keep[i] = True
    return keep


def test_batched_nms_equals_greedy_reference(backend):
    rng = np.random.default_rng(1)
    boxes = _random_boxes(rng, (3, 30), size=20.0)  # crowded: long suppression chains
    scores = rng.uniform(0, 1, (3, 30)).astype(np.float32)
    scores[0, 5] = scores[0, 6]  # a tie: the lower index ranks first
    labels = rng.integers(0, 3, (3, 30))
    valid = rng.uniform(0, 1, (3, 30)) > 0.2
    b = backend
    got = _np(V.batched_nms(b.asarray(boxes), b.asarray(scores), 0.3))
    got_cls = _np(V.batched_nms(b.asarray(boxes), b.asarray(scores), 0.3, labels=b.asarray(labels),
                                valid=b.asarray(valid)))
    for k in range(3):
        np.testing.assert_array_equal(got[k], _nms_ref(boxes[k], scores[k], 0.3))
        np.testing.assert_array_equal(got_cls[k], _nms_ref(boxes[k], scores[k], 0.3, labels[k], valid[k]))
    assert 0 < got.sum() < got.size


def test_batched_nms_errors(backend):
    boxes = backend.asarray(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"batched_nms: `scores` must be \(B, N\) = \(2, 3\)"):
        V.batched_nms(boxes, backend.asarray(np.zeros((2, 4), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"batched_nms: `iou_threshold` must be in \[0, 1\]"):
        V.batched_nms(boxes, backend.asarray(np.zeros((2, 3), dtype=np.float32)), 1.5)


# -- segmentation metrics -------------------------------------------------------------------------------
def test_mean_iou_and_pixel_accuracy_hand_worked(backend):
    # truth / prediction over 8 pixels, 3 classes (class 2 never appears: left out of the mean)
    t = np.array([[0, 0, 0, 0, 1, 1, 1, 1]])
    p = np.array([[0, 0, 0, 1, 1, 1, 0, 1]])
    b = backend
    cm = _np(V.confusion_matrix(b.asarray(p), b.asarray(t), 3))
    np.testing.assert_array_equal(cm, [[3, 1, 0], [1, 3, 0], [0, 0, 0]])
    miou, iou = V.mean_iou(b.asarray(p), b.asarray(t), 3)
    # class 0: TP 3, FP 1, FN 1 -> 3/5; class 1 likewise
    np.testing.assert_allclose(_np(iou)[:2], [0.6, 0.6], rtol=1e-6)
    assert np.isnan(_np(iou)[2])
    assert float(_np(miou)) == pytest.approx(0.6)
    assert float(_np(V.pixel_accuracy(b.asarray(p), b.asarray(t)))) == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match=r"confusion_matrix: `pred` \(1, 8\) and `target` \(8,\)"):
        V.confusion_matrix(b.asarray(p), b.asarray(t[0]), 3)
    with pytest.raises(TypeError, match=r"pixel_accuracy: `pred` must hold integer class ids"):
        V.pixel_accuracy(b.asarray(p.astype(np.float32)), b.asarray(t.astype(np.float32)))


# -- detection metrics ----------------------------------------------------------------------------------
def test_average_precision_hand_worked(backend):
    # ranked by score: TP FP TP FP TP with 4 ground-truth objects
    #   precision 1, 1/2, 2/3, 2/4, 3/5;  recall .25, .25, .5, .5, .75
    #   interpolated precision (max to the right): 1, 2/3, 2/3, .6, .6
    #   AP = .25*1 + .25*(2/3) + .25*.6 = 0.5666...
    scores = np.array([0.6, 0.9, 0.5, 0.8, 0.7], dtype=np.float32)  # unsorted on purpose
    tp = np.array([False, True, True, False, True])
    ap = V.average_precision(backend.asarray(scores), backend.asarray(tp), 4)
    assert float(_np(ap)) == pytest.approx(0.25 + 0.25 * 2 / 3 + 0.25 * 0.6, rel=1e-6)
    # every detection right and every object found: AP 1
    ones = backend.asarray(np.ones(3, dtype=bool))
    assert float(_np(V.average_precision(backend.asarray(scores[:3]), ones, 3))) == pytest.approx(1.0)
    with pytest.raises(TypeError, match=r"average_precision: `is_tp` must be bool"):
        V.average_precision(backend.asarray(scores), backend.asarray(tp.astype(np.float32)), 4)


def test_match_detections_and_map_hand_worked(backend):
    # one image, two objects: a "3" at [0,0,10,10] and a "7" at [20,20,30,30]
    gt_boxes = np.array([[[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 0, 0]]], dtype=np.float32)
    gt_labels = np.array([[3, 7, 0]])
    gt_valid = np.array([[True, True, False]])
    det = np.array([[[0, 0, 10, 10],     # 0.9, class 3: TP
                     [1, 1, 10, 10],     # 0.8, class 3: the "3" is taken -> FP (duplicate)
                     [20, 20, 30, 30],   # 0.7, class 1: wrong class -> FP
                     [21, 21, 30, 30],   # 0.6, class 7: IoU .81 -> TP
                     [40, 40, 45, 45]]], dtype=np.float32)  # padding
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.99]], dtype=np.float32)
    labels = np.array([[3, 3, 1, 7, 3]])
    valid = np.array([[True, True, True, True, False]])
    b = backend
    args = [b.asarray(a) for a in (det, scores, labels, valid, gt_boxes, gt_labels, gt_valid)]
    tp = _np(V.match_detections(*args))
    np.testing.assert_array_equal(tp, [[True, False, False, True, False]])
    m, ap = V.mean_average_precision(*args, num_classes=10)
    ap = _np(ap)
    # class 3: TP then FP, 1 object -> AP 1; class 7: AP 1; class 1: no object -> NaN, left out
    assert ap[3] == pytest.approx(1.0) and ap[7] == pytest.approx(1.0)
    assert np.isnan(ap[1]) and np.isnan(ap[0])
    assert float(_np(m)) == pytest.approx(1.0)


# -- per-pixel cross-entropy ------------------------------------------------------------------------------
def test_pixel_cross_entropy_matches_torch(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, (2, 4, 3, 5))
    y = rng.integers(0, 4, (2, 3, 5))
    y[0, 0, :2] = -100  # ignored pixels
    w = np.array([0.2, 1.0, 3.0, 0.5])
    b = backend
    for weight in (None, w):
        loss, dz = V.pixel_cross_entropy(b.asarray(z, dtype="float64"), b.asarray(y),
                                         None if weight is None else b.asarray(weight, dtype="float64"))
        zt = torch.tensor(z, requires_grad=True)
        ref = torch.nn.functional.cross_entropy(zt, torch.tensor(y), weight=None if weight is None else
                                                torch.tensor(weight))
        ref.backward()
        assert float(_np(loss)) == pytest.approx(ref.item(), rel=1e-10)
        np.testing.assert_allclose(_np(dz), zt.grad.numpy(), rtol=1e-9, atol=1e-12)
        assert b.owns(dz) and dz.dtype == b.xp.float64


def test_pixel_cross_entropy_errors(backend):
    z = backend.asarray(np.zeros((2, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"pixel_cross_entropy: `labels` must be \(2, 4, 4\)"):
        V.pixel_cross_entropy(z, backend.asarray(np.zeros((2, 4), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"pixel_cross_entropy: `weight` must be \(3,\)"):
        V.pixel_cross_entropy(z, backend.asarray(np.zeros((2, 4, 4), dtype=np.int64)),
                              backend.asarray(np.ones(2, dtype=np.float32)))
    with pytest.raises(TypeError, match=r"pixel_cross_entropy: `labels` must be integer class ids"):
        V.pixel_cross_entropy(z, backend.asarray(np.zeros((2, 4, 4), dtype=np.float32)))


def test_soft_dice_loss_matches_torch_autograd(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, (2, 4, 3, 5))
    y = rng.integers(0, 3, (2, 3, 5))  # class 3 absent: D_3 = s / (sum p_3 + s), pushing p_3 down
    for smooth in (1.0, 0.0):
        if smooth == 0.0:
            y[0, 0, 0] = 3
        loss, dz = V.soft_dice_loss(backend.asarray(z, dtype="float64"), backend.asarray(y), smooth=smooth)
        zt = torch.tensor(z, requires_grad=True)
        p = torch.softmax(zt, dim=1)
        g = torch.nn.functional.one_hot(torch.tensor(y), 4).permute(0, 3, 1, 2).double()
        inter, total = (p * g).sum((0, 2, 3)), p.sum((0, 2, 3)) + g.sum((0, 2, 3))
        ref = 1 - ((2 * inter + smooth) / (total + smooth)).mean()
        ref.backward()
        assert float(_np(loss)) == pytest.approx(ref.item(), rel=1e-10)
        np.testing.assert_allclose(_np(dz), zt.grad.numpy(), rtol=1e-9, atol=1e-12)
        assert backend.owns(dz) and dz.dtype == backend.xp.float64


def test_soft_dice_loss_errors(backend):
    z = backend.asarray(np.zeros((2, 3, 4, 4), dtype=np.float32))
    labels = backend.asarray(np.zeros((2, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"soft_dice_loss: `labels` must be \(2, 4, 4\)"):
        V.soft_dice_loss(z, backend.asarray(np.zeros((2, 4), dtype=np.int64)))
    with pytest.raises(TypeError, match=r"soft_dice_loss: `labels` must be integer class ids"):
        V.soft_dice_loss(z, backend.asarray(np.zeros((2, 4, 4), dtype=np.float32)))
    with pytest.raises(TypeError, match=r"soft_dice_loss: `logits` must be real floating"):
        V.soft_dice_loss(labels, labels)
    with pytest.raises(ValueError, match=r"soft_dice_loss: `smooth` must be a finite number >= 0, got -1"):
        V.soft_dice_loss(z, labels, smooth=-1)


def test_segmentation_loss_is_cross_entropy_plus_dice(backend):
    rng = np.random.default_rng(4)
    z = backend.asarray(rng.normal(0, 2, (2, 4, 3, 5)), dtype="float64")
    y = backend.asarray(rng.integers(0, 3, (2, 3, 5)))
    w = backend.asarray(np.array([0.2, 1.0, 3.0, 0.5]), dtype="float64")
    for weight, dice in ((w, 0.7), (None, 1.0), (w, 0.0)):
        loss, dz = V.segmentation_loss(z, y, weight, dice=dice, smooth=0.5)
        l_ce, d_ce = V.pixel_cross_entropy(z, y, weight)
        l_dice, d_dice = V.soft_dice_loss(z, y, smooth=0.5)
        assert float(_np(loss)) == pytest.approx(float(_np(l_ce)) + dice * float(_np(l_dice)), rel=1e-12)
        np.testing.assert_allclose(_np(dz), _np(d_ce) + dice * _np(d_dice), rtol=1e-10, atol=1e-14)
        assert backend.owns(dz) and dz.dtype == backend.xp.float64


def test_segmentation_loss_errors(backend):
    z = backend.asarray(np.zeros((2, 3, 4, 4), dtype=np.float32))
    labels = backend.asarray(np.zeros((2, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"segmentation_loss: `labels` must be \(2, 4, 4\)"):
        V.segmentation_loss(z, backend.asarray(np.zeros((2, 4), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"segmentation_loss: `weight` must be \(3,\) for 3 classes"):
        V.segmentation_loss(z, labels, backend.asarray(np.ones(2, dtype=np.float32)))
    with pytest.raises(ValueError, match=r"segmentation_loss: `dice` must be a finite number >= 0, got -0.5"):
        V.segmentation_loss(z, labels, dice=-0.5)
    with pytest.raises(ValueError, match=r"segmentation_loss: `smooth` must be a finite number >= 0, got True"):
        V.segmentation_loss(z, labels, smooth=True)
    with pytest.raises(ValueError, match=r"segmentation_loss: `dice` must be a finite number >= 0, got nan"):
        V.segmentation_loss(z, labels, dice=float("nan"))
    with pytest.raises(ValueError, match=r"soft_dice_loss: `smooth` must be a finite number >= 0, got inf"):
        V.soft_dice_loss(z, labels, smooth=float("inf"))


def test_ignored_pixels_take_no_part_in_dice_or_cross_entropy(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    z = rng.normal(0, 2, (2, 4, 3, 5))
    y = rng.integers(0, 4, (2, 3, 5))
    y[0, 1, :] = -100  # a row of ignored pixels
    y[1, 2, 3] = 7     # out of range: left out the same way
    w = np.array([0.2, 1.0, 3.0, 0.5])
    zb, yb, wb = backend.asarray(z, dtype="float64"), backend.asarray(y), backend.asarray(w, dtype="float64")
    # reference: the same sums over the counted pixels only, by torch autograd
    zt = torch.tensor(z, requires_grad=True)
    keep = torch.tensor((y >= 0) & (y < 4))
    p = torch.softmax(zt, dim=1).permute(0, 2, 3, 1)[keep]            # (pixels, C)
    g = torch.nn.functional.one_hot(torch.tensor(y)[keep], 4).double()
    dice_ref = 1 - ((2 * (p * g).sum(0) + 1.0) / (p.sum(0) + g.sum(0) + 1.0)).mean()
    ce_ref = torch.nn.functional.cross_entropy(zt.permute(0, 2, 3, 1)[keep], torch.tensor(y)[keep],
                                               weight=torch.tensor(w))
    (ce_ref + 0.5 * dice_ref).backward()
    loss, dz = V.segmentation_loss(zb, yb, wb, dice=0.5)
    assert float(_np(loss)) == pytest.approx((ce_ref + 0.5 * dice_ref).item(), rel=1e-10)
    np.testing.assert_allclose(_np(dz), zt.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert np.all(_np(dz)[0, :, 1, :] == 0)  # no gradient reaches an ignored pixel
    l_dice, _ = V.soft_dice_loss(zb, yb)
    assert float(_np(l_dice)) == pytest.approx(dice_ref.item(), rel=1e-10)


# -- the grid detector --------------------------------------------------------------------------------
def _gt():
    boxes = np.array([[[2, 3, 14, 20], [30, 30, 44, 46], [0, 0, 0, 0]],
                      [[10, 10, 20, 22], [11, 12, 19, 20], [25, 2, 40, 15]]], dtype=np.float32)
    labels = np.array([[4, 9, 0], [1, 2, 7]])
    valid = np.array([[True, True, False], [True, True, True]])  # image 1: boxes 0 and 1 share a cell
    return boxes, labels, valid


def test_encode_decode_round_trip(backend):
    boxes, labels, valid = _gt()
    b, xp = backend, backend.xp
    t = V.encode_grid(b.asarray(boxes), b.asarray(labels), b.asarray(valid), 6, 48)
    tn = _np(t)
    assert tn.shape == (2, 6, 6, 6) and tn[:, 0].sum() == 4  # the shared cell keeps the first box
    assert tn[1, 5, 2, 1] == 1.0 and tn[0, 5, 1, 1] == 4.0
    # a prediction that is the targets in logit form decodes to the boxes
    eps = 1e-6
    q = np.clip(tn[:, 1:5], eps, 1 - eps)
    cls = np.eye(10)[tn[:, 5].astype(int)].transpose(0, 3, 1, 2) * 20.0
    pred = np.concatenate([(tn[:, :1] * 2 - 1) * 20.0, np.log(q / (1 - q)), cls], axis=1)
    bx, sc, lab = V.decode_grid(b.asarray(pred, dtype="float64"), 48)
    keep = _np(sc) > 0.5
    assert keep.sum() == 4
    got = sorted(map(tuple, np.round(_np(bx)[keep], 3)))
    want = sorted(map(tuple, boxes[[0, 0, 1, 1], [0, 1, 0, 2]].astype(float)))
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert sorted(_np(lab)[keep]) == [1, 4, 7, 9]
    with pytest.raises(ValueError, match=r"encode_grid: `image_size` \(=50\) must be a multiple of `grid` \(=6\)"):
        V.encode_grid(b.asarray(boxes), b.asarray(labels), b.asarray(valid), 6, 50)


def _torch_detection_loss(torch, pred, t, box_weight=5.0, noobj_weight=0.5):
    F = torch.nn.functional
    obj = t[:, :1]
    bce = F.binary_cross_entropy_with_logits(pred[:, :1], obj, reduction="none")
    l_obj = (bce * (obj + noobj_weight * (1 - obj))).sum()
    l_box = box_weight * (((torch.sigmoid(pred[:, 1:5]) - t[:, 1:5]) * obj) ** 2).sum()
    ce = F.cross_entropy(pred[:, 5:], t[:, 5].long(), reduction="none")
    return (l_obj + l_box + (ce * obj[:, 0]).sum()) / pred.shape[0]


def test_detection_loss_matches_torch_autograd(backend):
    torch = pytest.importorskip("torch")
    boxes, labels, valid = _gt()
    b = backend
    t = V.encode_grid(b.asarray(boxes, dtype="float64"), b.asarray(labels), b.asarray(valid), 6, 48)
    pred = np.random.default_rng(3).normal(0, 1.5, (2, 15, 6, 6))
    loss, dpred = V.detection_loss(b.asarray(pred, dtype="float64"), t)
    pt = torch.tensor(pred, requires_grad=True)
    ref = _torch_detection_loss(torch, pt, torch.tensor(_np(t)))
    ref.backward()
    assert float(_np(loss)) == pytest.approx(ref.item(), rel=1e-10)
    np.testing.assert_allclose(_np(dpred), pt.grad.numpy(), rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match=r"detection_loss: `targets` must be \(N, 6, S, S\) = \(2, 6, 6, 6\)"):
        V.detection_loss(b.asarray(pred), t[:, :5, ...])


# -- canvases -----------------------------------------------------------------------------------------
def test_canvases_errors():
    with pytest.raises(ValueError, match=r"make_detection_canvases: `digits` must be \(lo, hi\) with 1 <= lo <= hi, "
                                         r"got \(3, 2\)"):
        V.make_detection_canvases(2, digits=(3, 2))
    with pytest.raises(ValueError, match=r"make_segmentation_canvases: `digit_size` \(24, 40\) does not fit a 32px"):
        V.make_segmentation_canvases(2, size=32, digit_size=(24, 40))


def test_canvases_are_deterministic_and_labelled():
    X, boxes, labels, valid = V.make_detection_canvases(20, seed=3)
    X2, boxes2, _, _ = V.make_detection_canvases(20, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(boxes, boxes2)
    assert X.shape == (20, 1, 48, 48) and X.dtype == np.float32 and boxes.shape == (20, 4, 4)
    assert valid.sum(axis=1).min() >= 1 and (labels[valid] < 10).all()
    iou = _iou_ref(boxes[0][valid[0]], boxes[0][valid[0]])
    np.testing.assert_allclose(iou, np.eye(len(iou)))  # disjoint digits
    Xs, masks = V.make_segmentation_canvases(10, seed=1)
    assert Xs.shape == (10, 1, 64, 64) and masks.shape == (10, 64, 64) and masks.max() <= 10
    assert (masks > 0).any(axis=(1, 2)).all()
    with pytest.raises(ValueError, match=r"make_detection_canvases: `digits` must be \(lo, hi\)"):
        V.make_detection_canvases(2, digits=(0, 2))


# -- the demo models against PyTorch twins ----------------------------------------------------------
def _torch_twin():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_vision.py")
    spec = importlib.util.spec_from_file_location("bench_vision", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.torch_twin


def test_unet_widths_errors():
    with pytest.raises(ValueError, match=r"unet: `widths` must be 4 positive ints .*got \(8, 16, 32\)"):
        V.unet(widths=(8, 16, 32))
    with pytest.raises(ValueError, match=r"unet: `widths` must be 4 positive ints .*got \(8, 16, 0, 64\)"):
        V.unet(widths=(8, 16, 0, 64))


@pytest.mark.parametrize("which", ["unet", "unet-widths", "grid_detector"])
def test_vision_models_match_torch_twin(which, backend):
    """Forward (train mode: batch statistics) and every parameter gradient equal PyTorch autograd."""
    torch = pytest.importorskip("torch")
    build = {"unet": lambda **k: V.unet(5, width=2, **k),
             "unet-widths": lambda **k: V.unet(5, widths=(2, 3, 5, 4), **k),
             "grid_detector": lambda **k: V.grid_detector(3, width=2, **k)}
    model = build[which](backend=backend, dtype="float64", rng=nn.Generator(0))
    twin = _torch_twin()(model)
    x = np.random.default_rng(4).random((2, 1, 16, 16))
    y, backprop = model.forward(backend.asarray(x, dtype="float64"), train=True)
    yt = twin(torch.tensor(x))
    np.testing.assert_allclose(_np(y), yt.detach().numpy(), rtol=1e-9, atol=1e-10)
    dy = np.random.default_rng(5).normal(size=tuple(y.shape))
    backprop(backend.asarray(dy, dtype="float64"))
    yt.backward(torch.tensor(dy))
    grads = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(_np(p.grad), grads[name].grad.numpy(), rtol=1e-7, atol=1e-9, err_msg=name)
