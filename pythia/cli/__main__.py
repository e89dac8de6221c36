"""``python -m pythia.cli``: the ``pythia`` command."""

import sys

from pythia.cli import main

sys.exit(main())
