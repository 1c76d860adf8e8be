"""``python -m dcsim.cli``: the dcsim command line."""

import sys

from dcsim.cli import main

sys.exit(main())
