"""Run every anyxp_nn demonstration section on one backend and print a summary table.

    python examples/neural_networks_examples.py --backend numpy --quick --out out
    python examples/neural_networks_examples.py --backend torch --sections mlp,cnn

Sections are listed in anyxp_nn/demos/__init__.py (SECTIONS); each saves its
figures into --out and returns summary rows.  A section that fails to import or
raises prints its traceback and makes the exit status 1; the others still run.
The same runner is behind ``anyxp-nn demo``.
"""
import sys

from anyxp_nn.demos.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
