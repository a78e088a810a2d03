"""``python -m lmnt_sync.server``: run the local LMNT-compatible server."""
import sys

from .cli import main

sys.exit(main())
