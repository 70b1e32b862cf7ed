"""``python -m datadistill`` (and ``torchrun -m datadistill``) run the command line."""

import sys

from datadistill.cli import main

sys.exit(main())
