"""``python -m anyxp_nn ...``: see :mod:`anyxp_nn.cli`."""
import sys

from .cli import main

sys.exit(main())
