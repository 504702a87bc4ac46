"""Rows for the computer-vision layers: ConvTranspose2D in every configuration, Concatenate.

Inputs are tiny so the float64 gradient check stays fast on every backend.
"""
import anyxp_nn as nn
from anyxp_nn.testing import LayerCase
from anyxp_nn.testing.torch_models import torch_concatenate

from . import tnn


CT = "ConvTranspose2D"
C4D = r"expected a 4-D input, got shape \(2, 5, 5\)"

CASES = [
    # -- ConvTranspose2D ---------------------------------------------------------------------------
    LayerCase(f"{CT}-stride2-pad1-outpad1", lambda **kw: nn.ConvTranspose2D(2, 3, 3, stride=2, padding=1,
                                                                           output_padding=1, **kw),
              (2, 2, 3, 3), torch=lambda: tnn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),
              bad_inputs=[((2, 4, 3, 3), ValueError, rf"{CT}\(2, 3, kernel_size=\(3, 3\).*\): input has 4 channels, "
                                                     r"expected 2"),
                          ((2, 5, 5), ValueError, rf"{CT}\(2, 3.*" + C4D)]),
    LayerCase(f"{CT}-stride1", lambda **kw: nn.ConvTranspose2D(3, 2, 2, **kw), (2, 3, 3, 4),
              torch=lambda: tnn.ConvTranspose2d(3, 2, 2)),
    LayerCase(f"{CT}-upsample2x", lambda **kw: nn.ConvTranspose2d(2, 2, 2, stride=2, **kw), (1, 2, 3, 2),
              torch=lambda: tnn.ConvTranspose2d(2, 2, 2, stride=2)),
    # stride == kernel, no padding: the taps tile the output (the U-Net up-conv), with groups and output_padding
    LayerCase(f"{CT}-tiles-groups-nonsquare", lambda **kw: nn.ConvTranspose2D(4, 6, (2, 3), stride=(2, 3), groups=2,
                                                                              **kw),
              (2, 4, 3, 2), torch=lambda: tnn.ConvTranspose2d(4, 6, (2, 3), stride=(2, 3), groups=2)),
    LayerCase(f"{CT}-tiles-outpad", lambda **kw: nn.ConvTranspose2D(2, 3, 2, stride=2, output_padding=(1, 0), **kw),
              (2, 2, 3, 2), torch=lambda: tnn.ConvTranspose2d(2, 3, 2, stride=2, output_padding=(1, 0))),
    LayerCase(f"{CT}-nonsquare", lambda **kw: nn.ConvTranspose2D(2, 3, (3, 2), stride=(2, 3), padding=(1, 0),
                                                                 output_padding=(0, 2), **kw),
              (2, 2, 3, 2), torch=lambda: tnn.ConvTranspose2d(2, 3, (3, 2), stride=(2, 3), padding=(1, 0),
                                                                 output_padding=(0, 2))),
    # padding crops the full output (it is a Conv2D's padding undone)
    LayerCase(f"{CT}-pad2-crops", lambda **kw: nn.ConvTranspose2D(2, 2, 3, padding=(2, 1), **kw), (1, 2, 4, 3),
              torch=lambda: tnn.ConvTranspose2d(2, 2, 3, padding=(2, 1)),
              bad_inputs=[((1, 2, 1, 2), ValueError, r"input 1x2 gives an empty output -1x2; `padding` \(2, 1\) "
                                                     r"crops more")]),
    LayerCase(f"{CT}-groups-nobias", lambda **kw: nn.ConvTranspose2D(4, 6, 3, stride=2, groups=2, bias=False, **kw),
              (1, 4, 3, 3), torch=lambda: tnn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, bias=False),
              bad_inputs=[((1, 2, 3, 3), ValueError, r"input has 2 channels, expected 4")]),
    LayerCase(f"{CT}-dilation", lambda **kw: nn.ConvTranspose2D(2, 2, 2, dilation=(2, 3), padding=1, **kw),
              (1, 2, 3, 4), torch=lambda: tnn.ConvTranspose2d(2, 2, 2, dilation=(2, 3), padding=1)),
    # output_padding >= stride is allowed while < dilation: backward's patch matrix of dY is cropped
    LayerCase(f"{CT}-outpad-below-dilation", lambda **kw: nn.ConvTranspose2D(2, 3, 2, stride=1, dilation=3,
                                                                             output_padding=2, **kw),
              (2, 2, 3, 3), torch=lambda: tnn.ConvTranspose2d(2, 3, 2, stride=1, dilation=3, output_padding=2)),
    LayerCase(f"{CT}-depthwise-torchinit", lambda **kw: nn.ConvTranspose2D(3, 3, 3, stride=2, groups=3, init="torch",
                                                                           **kw),
              (2, 3, 2, 2), torch=lambda: tnn.ConvTranspose2d(3, 3, 3, stride=2, groups=3)),
    # -- Concatenate --------------------------------------------------------------------------------
    LayerCase("Concatenate-unet-skip",
              lambda **kw: nn.Concatenate(nn.Identity(**kw), nn.Sequential(nn.Conv2D(2, 3, 3, padding=1, **kw),
                                                                             nn.ReLU(**kw))),
              (2, 2, 4, 4), torch=lambda: torch_concatenate(tnn.Identity(),
                                                           tnn.Sequential(tnn.Conv2d(2, 3, 3, padding=1), tnn.ReLU())),
              bad_inputs=[((2, 3, 4, 4), ValueError, r"Conv2D\(2, 3.*input has 3 channels, expected 2"),
                          ((2, 5, 5), ValueError, r"Identity.*|Conv2D.*" + C4D)]),
    LayerCase("Concatenate-three-axis-last",
              lambda **kw: nn.Concatenate(nn.Linear(3, 2, **kw), nn.Tanh(**kw), nn.Linear(3, 4, bias=False, **kw),
                                          axis=-1),
              (4, 3), torch=lambda: torch_concatenate(tnn.Linear(3, 2), tnn.Tanh(), tnn.Linear(3, 4, bias=False),
                                                     axis=-1),
              bad_inputs=[((4, 5), ValueError, r"Linear\(3, 2.*expected input of shape \(\.\.\., 3\), got \(4, 5\)")]),
    LayerCase("Concatenate-mismatched-spatial",
              lambda **kw: nn.Concatenate(nn.Conv2D(1, 2, 3, padding=1, **kw), nn.Conv2D(1, 1, 3, padding=0, **kw)),
              (1, 1, 4, 4), skip=("gradcheck", "torch", "numpy_equivalence", "dtype_device", "non_contiguous"),
              # every call raises; only the error checks run
              bad_inputs=[((1, 1, 5, 5), ValueError, r"Concatenate\(axis=1\): branch 1's output shape \(1, 1, 3, 3\) "
                                                     r"differs from branch 0's \(1, 2, 5, 5\) outside axis 1")]),
]
