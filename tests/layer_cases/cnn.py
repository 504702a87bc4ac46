"""Rows for the CNN layers: Conv2D in every configuration, pooling, global pools, Flatten, Upsample2D.

Inputs are tiny (<= ~150 elements) so the float64 gradient check stays fast on every backend.
"""
import anyxp_nn as nn
from anyxp_nn.testing import LayerCase

from . import tnn


def _global(pool):
    """torch's twin of a global pool: the adaptive ``pool`` ("AdaptiveAvgPool2d") to 1x1, then Flatten."""
    return lambda: tnn.Sequential(getattr(tnn, pool)(1), tnn.Flatten())


def _distinct(rng, shape):
    """A random permutation of distinct values: no near-ties, so max-pool gradients are smooth."""
    n = 1
    for s in shape:
        n *= s
    return (rng.permutation(n).reshape(shape) - n / 2) / n * 4


C4D = r"expected a 4-D input, got shape \(2, 5, 5\)"

CASES = [
    # -- Conv2D ---------------------------------------------------------------------------------
    LayerCase("Conv2D-pad1", lambda **kw: nn.Conv2D(2, 3, 3, padding=1, **kw), (2, 2, 5, 5),
              torch=lambda: tnn.Conv2d(2, 3, 3, padding=1),
              bad_inputs=[((2, 4, 5, 5), ValueError, r"Conv2D\(2, 3, kernel_size=\(3, 3\).*\): input has 4 channels, "
                                                     r"expected 2"),
                          ((2, 5, 5), ValueError, r"Conv2D\(2, 3.*" + C4D)]),
    LayerCase("Conv2D-stride-nonsquare", lambda **kw: nn.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), **kw),
              (2, 2, 6, 5), torch=lambda: tnn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)),
              bad_inputs=[((1, 2, 1, 1), ValueError, r"kernel 3x2 \(dilated\) is larger than the padded input 3x1 "
                                                     r"\(input 1x1, padding 1x0\)")]),
    LayerCase("Conv2D-dilation", lambda **kw: nn.Conv2D(2, 2, 2, dilation=(2, 3), padding=1, **kw), (1, 2, 5, 6),
              torch=lambda: tnn.Conv2d(2, 2, 2, dilation=(2, 3), padding=1),
              bad_inputs=[((1, 2, 1, 1), ValueError, r"kernel 3x4 \(dilated\) is larger than the padded input 3x3")]),
    LayerCase("Conv2D-groups", lambda **kw: nn.Conv2D(4, 6, 3, groups=2, padding=1, **kw), (1, 4, 4, 4),
              torch=lambda: tnn.Conv2d(4, 6, 3, groups=2, padding=1),
              bad_inputs=[((1, 2, 4, 4), ValueError, r"input has 2 channels, expected 4")]),
    LayerCase("Conv2D-depthwise-stride2", lambda **kw: nn.Conv2D(3, 3, 3, stride=2, groups=3, **kw), (2, 3, 5, 5),
              torch=lambda: tnn.Conv2d(3, 3, 3, stride=2, groups=3)),
    LayerCase("Conv2D-batch1-nobias-torchinit", lambda **kw: nn.Conv2D(3, 2, 2, bias=False, init="torch", **kw),
              (1, 3, 4, 3), torch=lambda: tnn.Conv2d(3, 2, 2, bias=False)),
    LayerCase("Conv2D-1x1", lambda **kw: nn.Conv2D(3, 4, 1, **kw), (2, 3, 3, 3),
              torch=lambda: tnn.Conv2d(3, 4, 1)),
    # stride 1: dX is the convolution of dY with the flipped kernel and, with no more input than
    # output channels, dW comes from the same patch matrix of dY; padding beyond the dilated
    # kernel's reach takes col2im, as other strides do
    LayerCase("Conv2D-stride1-groups-dilation-nonsquare",
              lambda **kw: nn.Conv2D(6, 4, (3, 2), dilation=(1, 2), padding=1, groups=2, **kw), (2, 6, 5, 6),
              torch=lambda: tnn.Conv2d(6, 4, (3, 2), dilation=(1, 2), padding=1, groups=2)),
    LayerCase("Conv2D-padding-beyond-kernel", lambda **kw: nn.Conv2D(2, 3, (1, 3), padding=(1, 2), **kw),
              (2, 2, 4, 3), torch=lambda: tnn.Conv2d(2, 3, (1, 3), padding=(1, 2))),
    # 3x3 stride 1: im2col here (few channels), Winograd F(2x2, 3x3) for forward, dX and dW when
    # tests/test_conv_algorithms.py reruns these two rows with WINOGRAD_MIN_CHANNELS lowered to 1;
    # an odd output size (5x3) leaves a partial last tile
    LayerCase("Conv2D-winograd", lambda **kw: nn.Conv2D(8, 3, 3, padding=1, **kw), (1, 8, 5, 3),
              torch=lambda: tnn.Conv2d(8, 3, 3, padding=1),
              bad_inputs=[((1, 3, 5, 3), ValueError, r"Conv2D\(8, 3.*input has 3 channels, expected 8")]),
    LayerCase("Conv2D-winograd-pad2-nobias", lambda **kw: nn.Conv2D(8, 2, 3, padding=2, bias=False, **kw), (2, 8, 2, 3),
              torch=lambda: tnn.Conv2d(8, 2, 3, padding=2, bias=False)),
    # padding="same": an even (dilated) kernel puts the odd zero at the end (bottom/right), as PyTorch
    LayerCase("Conv2D-same-even-kernel", lambda **kw: nn.Conv2D(2, 3, (2, 4), padding="same", **kw), (2, 2, 4, 5),
              torch=lambda: tnn.Conv2d(2, 3, (2, 4), padding="same")),
    LayerCase("Conv2D-same-dilated", lambda **kw: nn.Conv2D(2, 2, 3, padding="same", dilation=(1, 2), **kw),
              (1, 2, 4, 5), torch=lambda: tnn.Conv2d(2, 2, 3, padding="same", dilation=(1, 2))),
    LayerCase("Conv2D-valid", lambda **kw: nn.Conv2D(2, 3, 2, padding="valid", **kw), (2, 2, 3, 4),
              torch=lambda: tnn.Conv2d(2, 3, 2, padding="valid"),
              bad_inputs=[((1, 2, 1, 4), ValueError, r"Conv2D\(2, 3, kernel_size=\(2, 2\), stride=\(1, 1\), "
                                                     r"padding='valid'\): kernel 2x2 \(dilated\) is larger")]),
    # -- pooling --------------------------------------------------------------------------------
    LayerCase("MaxPool2D-2", lambda **kw: nn.MaxPool2D(2, **kw), (2, 3, 4, 5), make_input=_distinct,
              torch=lambda: tnn.MaxPool2d(2),
              bad_inputs=[((2, 5, 5), ValueError, r"MaxPool2D\(kernel_size=\(2, 2\).*" + C4D),
                          ((1, 1, 1, 3), ValueError, r"MaxPool2D.*kernel 2x2 is larger than the padded input 1x3")]),
    LayerCase("MaxPool2D-overlap-pad", lambda **kw: nn.MaxPool2D(3, stride=2, padding=1, **kw), (2, 2, 5, 6),
              make_input=_distinct, torch=lambda: tnn.MaxPool2d(3, stride=2, padding=1)),
    LayerCase("MaxPool2D-nonsquare", lambda **kw: nn.MaxPool2D((2, 3), stride=(1, 2), **kw), (1, 2, 4, 7),
              make_input=_distinct, torch=lambda: tnn.MaxPool2d((2, 3), stride=(1, 2))),
    LayerCase("AvgPool2D-2", lambda **kw: nn.AvgPool2D(2, **kw), (2, 3, 4, 5), torch=lambda: tnn.AvgPool2d(2),
              bad_inputs=[((2, 5, 5), ValueError, r"AvgPool2D.*" + C4D)]),
    LayerCase("AvgPool2D-overlap-pad", lambda **kw: nn.AvgPool2D(3, stride=2, padding=1, **kw), (2, 2, 5, 6),
              torch=lambda: tnn.AvgPool2d(3, stride=2, padding=1)),
    LayerCase("AvgPool2D-nonsquare", lambda **kw: nn.AvgPool2D((3, 2), stride=1, padding=(1, 0), **kw), (1, 2, 4, 5),
              torch=lambda: tnn.AvgPool2d((3, 2), stride=1, padding=(1, 0))),
    LayerCase("GlobalAvgPool2D", lambda **kw: nn.GlobalAvgPool2D(**kw), (2, 3, 4, 5),
              torch=_global("AdaptiveAvgPool2d"),
              bad_inputs=[((2, 5, 5), ValueError, r"GlobalAvgPool2D.*" + C4D)]),
    LayerCase("GlobalMaxPool2D", lambda **kw: nn.GlobalMaxPool2D(**kw), (2, 3, 4, 5), make_input=_distinct,
              torch=_global("AdaptiveMaxPool2d"),
              bad_inputs=[((2, 5, 5), ValueError, r"GlobalMaxPool2D.*" + C4D)]),
    # -- shape layers ---------------------------------------------------------------------------
    LayerCase("Flatten", lambda **kw: nn.Flatten(**kw), (2, 3, 2, 4), torch=lambda: tnn.Flatten(),
              bad_inputs=[((5,), ValueError, r"Flatten.*ndim >= 2\), got shape \(5,\)")]),
    LayerCase("Upsample2D-2", lambda **kw: nn.Upsample2D(**kw), (2, 3, 3, 2),
              torch=lambda: tnn.Upsample(scale_factor=2, mode="nearest"),
              bad_inputs=[((2, 5, 5), ValueError, r"Upsample2D.*" + C4D)]),
    LayerCase("Upsample2D-nonsquare", lambda **kw: nn.Upsample2D((2, 3), **kw), (1, 2, 2, 3),
              torch=lambda: tnn.Upsample(scale_factor=(2, 3), mode="nearest")),
    # -- a small CNN: Conv2D's permuted output flows through ReLU, pooling and Flatten ----------
    LayerCase("Sequential-CNN",
              lambda **kw: nn.Sequential(nn.Conv2D(1, 2, 3, padding=1, **kw), nn.ReLU(**kw), nn.MaxPool2D(2, **kw),
                                         nn.Conv2D(2, 3, 2, **kw), nn.Flatten(**kw), nn.Linear(3, 2, **kw)),
              (2, 1, 4, 4), make_input=_distinct,
              torch=lambda: tnn.Sequential(tnn.Conv2d(1, 2, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                                              tnn.Conv2d(2, 3, 2), tnn.Flatten(), tnn.Linear(3, 2)),
              bad_inputs=[((2, 3, 4, 4), ValueError, r"Conv2D\(1, 2.*input has 3 channels, expected 1")]),
]
