"""Run the demonstration sections listed in :data:`anyxp_nn.demos.SECTIONS`.

Used by ``examples/neural_networks_examples.py`` and ``anyxp-nn demo``.  A section
that fails to import or whose ``run()`` raises is reported loudly (traceback on
stderr), the others still run, and the exit status is non-zero.  Every section's summary rows are printed as one table
at the end and written to ``<out>/summary.json`` and ``<out>/summary.csv``.
"""
from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Sequence

from .._table import format_table
from . import SECTIONS

__all__ = ["main", "run_sections", "build_parser"]


def build_parser(prog: str = "neural_networks_examples.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run the anyxp_nn demonstration sections and print a "
                                                       "summary table.")
    p.add_argument("--backend", default=None,
                   help="numpy | array_api_strict | torch | cupy (default: $ANYXP_BACKEND or numpy)")
    p.add_argument("--out", default="out", help="folder for the figures and the summary (default: ./out)")
    p.add_argument("--sections", default=None,
                   help="comma-separated section modules to run (default: all): "
                        + ", ".join(m for _, m in SECTIONS))
    p.add_argument("--quick", action="store_true",
                   help="small sizes: every section in a few minutes on a CPU (too short to reach the full "
                        "runs' accuracies)")
    p.add_argument("--list", action="store_true", help="list the sections and exit")
    return p


def run_sections(backend: str, out_dir: Path, quick: bool,
                 sections: "Sequence[str] | None" = None) -> tuple[list[dict], list[dict]]:
    """Run the sections; returns ``(summary rows, one status dict per section)``.  The sections
    draw with matplotlib's Figure API, so the user's matplotlib backend is left alone."""
    import anyxp_nn as nn

    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    statuses: list[dict] = []
    for title, module in SECTIONS:
        if sections is not None and module not in sections:
            continue
        started = time.time()
        print(f"[run ] {title} ({module}) on {backend}{' (quick)' if quick else ''}", file=sys.stderr, flush=True)
        nn.manual_seed(0)
        t = time.perf_counter()
        try:  # a section that does not import fails like one that raises; the others still run
            got = importlib.import_module(f"{__package__}.{module}").run(backend, out_dir, quick)
            if not isinstance(got, list) or not all(isinstance(r, dict) for r in got):
                raise TypeError(f"{module}.run() must return a list of dicts, got {type(got).__name__}")
            status = "ok"
        except Exception as e:
            traceback.print_exc()
            print(f"[FAIL] {title} ({module}): {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            got, status = [], f"FAILED: {type(e).__name__}: {e}"
        dt = time.perf_counter() - t
        figures = [f for f in out_dir.rglob("*")  # written (or rewritten) by this section
                   if f.suffix in (".png", ".pdf", ".svg") and f.stat().st_mtime >= started - 0.01]
        for r in got:
            rows.append({"section": r.get("section", module), "item": r.get("item", ""),
                         "value": r.get("value", ""), "unit": r.get("unit", "")})
        statuses.append({"section": module, "title": title, "status": status, "seconds": round(dt, 2),
                         "figures": len(figures)})
    return rows, statuses


def main(argv: "Sequence[str] | None" = None, prog: str = "neural_networks_examples.py") -> int:
    args = build_parser(prog).parse_args(argv)
    known = [m for _, m in SECTIONS]
    if args.list:
        for title, m in SECTIONS:
            print(f"{m:12s} {title}")
        return 0
    chosen = None
    if args.sections:
        chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in known]
        if unknown:
            print(f"{prog}: error: unknown section(s) {unknown}; known: {known}", file=sys.stderr)
            return 2
    import anyxp_nn as nn
    try:
        backend = nn.get_backend(args.backend).label
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    t = time.perf_counter()
    rows, statuses = run_sections(backend, out, args.quick, chosen)
    total = time.perf_counter() - t
    print()
    print(f"Summary ({backend}{', quick' if args.quick else ''}; figures in {out}/):")
    print(format_table(rows, ("section", "item", "value", "unit")) if rows else "(no rows)")
    print()
    print(format_table(statuses, ("section", "status", "seconds", "figures")))
    print(f"total {total:.1f} s")
    (out / "summary.json").write_text(json.dumps({"backend": backend, "quick": args.quick, "seconds": total,
                                                   "rows": rows, "sections": statuses}, indent=1, default=str))
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["section", "item", "value", "unit"])
        w.writeheader()
        w.writerows(rows)
    failed = [s["section"] for s in statuses if s["status"].startswith("FAILED")]
    if failed:
        print(f"FAILED sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
