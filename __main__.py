"""``python -m motivnet_edge``: the ``motivnet-edge`` command line."""

import sys

from motivnet_edge.cli import main

sys.exit(main())
