"""``python -m tunesmith`` (used by ``torchrun -m tunesmith train``)."""

import sys

from tunesmith.cli import main

sys.exit(main())
