"""Testing helpers: gradient checks, closeness with backend/dtype/device checks, layer cases,
cross-backend training comparison and the host-sync guard."""
from .assert_close import assert_close, default_tolerance
from .compare import CompareReport, Culprit, compare_backends, training_tolerance
from .dtype_audit import Float64Event, float64_audit
from .gradcheck import GradcheckError, gradcheck
from .layer_check import CHECKS, LayerCase, check_layer, layer_test
from .layers_probe import LayerResult, layer_tolerance, probe_layers
from .sync import SyncCounter, SyncError, count_syncs, sync_guard, syncs_per_step

__all__ = ["gradcheck", "GradcheckError", "assert_close", "default_tolerance", "LayerCase",
           "check_layer", "layer_test", "CHECKS", "compare_backends", "CompareReport", "Culprit",
           "LayerResult", "training_tolerance", "layer_tolerance", "probe_layers", "float64_audit",
           "Float64Event", "sync_guard", "count_syncs", "syncs_per_step", "SyncError", "SyncCounter"]
