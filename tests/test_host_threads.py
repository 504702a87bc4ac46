"""Conv2D's batch chunks on host threads (Backend.parallel_chunks): the BLAS pool is held at one
thread for the rest of a cpu_threads() scope once chunks ran on threads, and restored after."""
import anyxp_nn as nn
from anyxp_nn import backend as B


def test_parallel_map_holds_blas_at_one_thread_until_the_scope_ends(monkeypatch):
    from threadpoolctl import threadpool_limits
    be = nn.get_backend("numpy")
    monkeypatch.setattr(be, "parallel_chunks", True)
    monkeypatch.setattr(B._core_meter, "free_cores", lambda: 2.0)
    sizes = lambda: {get() for get, _ in B._thread_pools("numpy")}  # noqa: E731  NumPy's BLAS pools
    with threadpool_limits(2, user_api="blas"):
        with be.cpu_threads():
            assert sizes() == {2} and be.host_threads() == 2
            assert be.parallel_map(lambda i: i + 1, [1, 2]) == [2, 3]
            assert sizes() == {1}  # held for the rest of the step
            assert be.host_threads() == 2  # still the user's thread budget
        assert sizes() == {2}  # restored when the scope ends
        assert be.parallel_map(lambda i: i, [1, 2]) == [1, 2] and sizes() == {2}  # outside a scope: per call
