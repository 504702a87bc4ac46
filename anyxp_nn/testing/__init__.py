"""Testing helpers: gradient checks, closeness with backend/dtype/device checks, layer cases,
cross-backend training comparison and the host-sync guard (which lives in :mod:`anyxp_nn.sync`)."""
from ..sync import SyncCounter, SyncError, count_syncs, sync_guard, syncs_per_step
from .assert_close import assert_close
from .compare import CompareReport, compare_backends
from .dtype_audit import Float64Event, float64_audit
from .gradcheck import GradcheckError, gradcheck
from .layer_check import CHECKS, LayerCase, check_layer, layer_test
from .layers_probe import LayerResult, probe_layers
from .tolerances import TOLERANCES, default_tolerance, layer_tolerance, tolerance, training_tolerance

__all__ = [
    "CHECKS", "CompareReport", "Float64Event", "GradcheckError", "LayerCase", "LayerResult", "SyncCounter",
    "SyncError", "TOLERANCES", "assert_close", "check_layer", "compare_backends", "count_syncs",
    "default_tolerance", "float64_audit", "gradcheck", "layer_test", "layer_tolerance", "probe_layers",
    "sync_guard", "syncs_per_step", "tolerance", "training_tolerance",
]
