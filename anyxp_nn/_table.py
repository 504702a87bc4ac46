"""Plain-text tables for the command line and the demo summary (it imports nothing of anyxp_nn)."""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["format_table"]


def _cell(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def format_table(rows: list[dict], keys: Sequence[str]) -> str:
    """``rows`` as left-aligned columns ``keys`` under a header and a dashed rule (floats to 4 digits)."""
    cells = [[_cell(r.get(k, "")) for k in keys] for r in rows]
    widths = [max([len(k)] + [len(c[i]) for c in cells]) for i, k in enumerate(keys)]
    out = ["  ".join(k.ljust(w) for k, w in zip(keys, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) for cell in cells]
    return "\n".join(out)
