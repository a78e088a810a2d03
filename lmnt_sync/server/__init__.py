"""An LMNT-compatible speech server that runs locally, offline.

It serves LMNT's REST API and streaming websocket at LMNT's paths on one
port, speaking with offline engines (see :mod:`.engines`), so the official
LMNT SDKs and :mod:`lmnt_sync` work against it unchanged. It is the embedded
default of :mod:`lmnt_sync` (no key, no network) and the peer of the tests.

Public API:

* :class:`LocalServer` -- run it in a background thread (context manager);
* :func:`main` -- the command line (``python -m lmnt_sync.server``,
  ``lmnt-sync serve``);
* :class:`Limits` -- resource limits.

Requires the ``[server]`` extra (aiohttp, av, numpy and the engines).
"""
from __future__ import annotations

from .cli import main
from .local import LocalServer
from .state import DEFAULT_MAX_SESSIONS, Limits

__all__ = ["LocalServer", "Limits", "DEFAULT_MAX_SESSIONS", "main"]
