"""The host-sync guard, here too for the tests that import it from ``anyxp_nn.testing``.

It is a runtime feature and lives in :mod:`anyxp_nn.sync`.
"""
from ..sync import KINDS, SyncCounter, SyncError, SyncEvent, count_syncs, sync_guard, syncs_per_step

__all__ = ["SyncError", "SyncCounter", "SyncEvent", "sync_guard", "count_syncs", "syncs_per_step", "KINDS"]
