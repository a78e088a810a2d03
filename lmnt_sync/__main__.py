"""``python -m lmnt_sync``: the ``lmnt-sync`` command line."""
import sys

from .cli import main

sys.exit(main())
