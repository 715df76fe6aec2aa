"""python -m pyresnet: the same as the `pyresnet` command."""

import sys

from .cli import main

sys.exit(main())
