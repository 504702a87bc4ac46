"""Testing helpers: gradient checks, closeness with backend/dtype/device checks, layer cases,
cross-backend training comparison and the host-sync guard."""
from .assert_close import assert_close, default_tolerance
from .compare import CompareReport, Culprit, compare_backends, training_tolerance
from .dtype_audit import Float64Event, float64_audit
from .gradcheck import GradcheckError, gradcheck
from .layer_check import CHECKS, LayerCase, check_layer, layer_test
from .layers_probe import LayerResult, layer_tolerance, probe_layers
from .sync import SyncCounter, SyncError, count_syncs, sync_guard, syncs_per_step

__all__ = [
    "CHECKS", "CompareReport", "Culprit", "Float64Event", "GradcheckError", "LayerCase", "LayerResult",
    "SyncCounter", "SyncError", "assert_close", "check_layer", "compare_backends", "count_syncs",
    "default_tolerance", "float64_audit", "gradcheck", "layer_test", "layer_tolerance", "probe_layers",
    "sync_guard", "syncs_per_step", "training_tolerance"
]
