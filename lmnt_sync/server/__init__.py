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

Requires the ``[server]`` extra (aiohttp, av, numpy, soxr and the engines).
The names above are imported on first use, so that without the extra they
raise :class:`lmnt_sync.MissingDependencyError` naming it, instead of a bare
``No module named 'numpy'``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError

if TYPE_CHECKING:  # what __getattr__ hands out, for type checkers (at run time, imported on first use)
    from .cli import main
    from .local import LocalServer
    from .state import DEFAULT_MAX_SESSIONS, Limits

__all__ = ["LocalServer", "Limits", "DEFAULT_MAX_SESSIONS", "main"]

_HOMES = {"LocalServer": "local", "Limits": "state", "DEFAULT_MAX_SESSIONS": "state", "main": "cli"}
#: the third-party packages the server itself imports (the engines' are optional, per engine)
DEPENDENCIES = ("aiohttp", "av", "numpy", "soxr")
INSTALL_HINT = "the local server needs the [server] extra: pip install 'lmnt-sync[server]'"


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562).

    Raises:
        MissingDependencyError: a package of the ``[server]`` extra is missing.
    """
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f".{_HOMES[name]}", __name__)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in DEPENDENCIES:
            raise
        raise MissingDependencyError(f"{INSTALL_HINT} ({exc.name} is not installed)") from exc
    value = getattr(module, name)
    globals()[name] = value
    return value
