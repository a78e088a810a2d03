"""``python -m lmnt_sync.server``: run the local LMNT-compatible server."""
import sys

from ..errors import MissingDependencyError

try:
    from . import main
except MissingDependencyError as exc:  # one line naming the extra, not a traceback
    sys.exit(f"python -m lmnt_sync.server: error: {exc}")

sys.exit(main())
