"""Rows for anyxp_nn.distributed: SyncBatchNorm on one rank is BatchNorm (torch's BatchNorm1d/2d twin)."""
from anyxp_nn.distributed import SyncBatchNorm
from anyxp_nn.testing import LayerCase

from . import tnn
from .deep import _ONE, _with_stats

CASES = [
    LayerCase("SyncBatchNorm-NCHW", lambda **kw: _with_stats(SyncBatchNorm(3, **kw)), (3, 3, 3, 2),
              torch=lambda: tnn.BatchNorm2d(3),
              bad_inputs=[((1, 3, 1, 1), ValueError, _ONE),
                          ((2, 4, 3, 3), ValueError, r"SyncBatchNorm\(3.*expected 3 channels .*\(2, 4, 3, 3\)"),
                          ((2, 3, 3, 3, 3), ValueError, "expected a 2-D or 3-D or 4-D input")]),
    LayerCase("SyncBatchNorm-NC", lambda **kw: _with_stats(SyncBatchNorm(4, momentum=0.3, **kw)), (5, 4),
              torch=lambda: tnn.BatchNorm1d(4, momentum=0.3)),
    LayerCase("SyncBatchNorm-eval", lambda **kw: _with_stats(SyncBatchNorm(3, **kw)), (2, 3, 2, 3),
              torch=lambda: tnn.BatchNorm2d(3), train=False),
]
