"""Command line of the local server: ``python -m lmnt_sync.server``.

:func:`main` is also what ``lmnt-sync serve`` calls. It runs in the
foreground until SIGINT or SIGTERM and reports on stderr; it never prints
an API key.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from .engines import DEFAULT_ENGINE, engine_names
from .local import LocalServer
from .state import DEFAULT_MAX_SESSIONS, Limits
from .voicedb import StoreError

__all__ = ["main", "build_parser", "default_data_dir", "API_KEY_ENV"]

#: Environment variable read when ``--api-key`` is not given.
API_KEY_ENV = "LMNT_SERVER_API_KEY"


def default_data_dir() -> Path:
    """Return where the command line keeps created voices by default."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "lmnt_sync" / "server"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (shared with ``lmnt-sync serve``)."""
    parser = argparse.ArgumentParser(
        prog="python -m lmnt_sync.server",
        description="Run an LMNT-compatible speech server locally (offline voices).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port, 0 for any (default: %(default)s)")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, choices=engine_names(),
                        help="speech engine (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"folder for created voices (default: {default_data_dir()})")
    parser.add_argument("--api-key", default=None,
                        help=f"the key clients must send (default: ${API_KEY_ENV}; "
                        "without one any non-empty key is accepted)")
    parser.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS,
                        help="concurrent streaming sessions (default: %(default)s)")
    parser.add_argument("--idle-timeout", type=float, default=Limits.idle_timeout,
                        help="seconds a connection may take to send a request's headers or stay "
                        "idle between requests (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help="serve with this many processes (gunicorn with aiohttp's worker; "
                        "created voices shared through the store); default: one process")
    parser.add_argument("--store-url", default=None,
                        help="postgresql://... database for created voices, shared by replicas "
                        "(default: SQLite in --data-dir)")
    parser.add_argument("--certfile", type=Path, default=None,
                        help="PEM certificate: serve https and wss (LMNT clients default to them)")
    parser.add_argument("--keyfile", type=Path, default=None,
                        help="PEM private key of --certfile (default: inside the certificate file)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the server until interrupted; return the process exit status.

    Blocks until SIGINT/SIGTERM (or KeyboardInterrupt). Returns 0 after a
    clean stop, 1 when the server cannot start (the reason goes to stderr).
    """
    args = build_parser().parse_args(argv)
    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if args.workers is not None:
        return _serve_workers(args, key)
    try:
        server = LocalServer(
            args.host, args.port, api_key=key, engine=args.engine,
            data_dir=args.data_dir or default_data_dir(), accept_any_key=key is None,
            max_sessions=args.max_sessions, limits=Limits(idle_timeout=args.idle_timeout),
            certfile=args.certfile, keyfile=args.keyfile, store_url=args.store_url,
        ).start()
    except (ValueError, ImportError, OSError, TimeoutError, StoreError) as exc:  # ssl.SSLError is an OSError
        print(f"lmnt_sync.server: cannot start: {exc}", file=sys.stderr)
        return 1
    _announce(server, key is None)
    try:
        _wait_for_signal()
    finally:
        print("lmnt_sync.server: stopping", file=sys.stderr, flush=True)
        server.stop()
    return 0


def _serve_workers(args: argparse.Namespace, key: Optional[str]) -> int:
    """Run ``args.workers`` processes under gunicorn (see :mod:`.service`)."""
    if args.workers < 1:
        print("lmnt_sync.server: --workers must be at least 1", file=sys.stderr)
        return 2
    from .service import run_workers

    if key is None:
        print("lmnt_sync.server: no API key configured: any non-empty key is accepted "
              f"(set --api-key or ${API_KEY_ENV} to require one)", file=sys.stderr, flush=True)
    try:
        return run_workers(args, key, args.data_dir or default_data_dir())
    except ImportError as exc:
        print(f"lmnt_sync.server: cannot start: {exc}", file=sys.stderr)
        return 1


def _announce(server: LocalServer, any_key: bool) -> None:
    print(f"lmnt_sync.server: listening on {server.url} (engine {server.engine_name}, "
          f"voices in {server.data_dir})", file=sys.stderr)
    if any_key:
        print("lmnt_sync.server: no API key configured: any non-empty key is accepted "
              f"(set --api-key or ${API_KEY_ENV} to require one)", file=sys.stderr)
    sys.stderr.flush()


def _wait_for_signal() -> None:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # A timed wait keeps the main thread responsive to Ctrl-C everywhere.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
