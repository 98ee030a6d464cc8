"""`python3 -m ark` from a checkout, where the `ark` script is not installed."""

import sys

from .cli import main

sys.exit(main())
