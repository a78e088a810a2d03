"""``serve --workers N``: several server processes under gunicorn.

gunicorn's arbiter binds the port once, forks ``N`` workers of aiohttp's
own worker class (``aiohttp.GunicornWebWorker``), restarts any that die and
stops them all gracefully on SIGTERM/SIGINT. Each worker builds its own
server (:func:`.local.build_state`: engines, synthesis threads, a
connection to the voice store) after the fork, so nothing with threads
crosses it. Workers share created voices through the database
(:mod:`.voicedb`: SQLite in WAL mode on one machine, PostgreSQL for
replicas on several), so a voice created through one worker is at once
known to all.

Needs gunicorn (the ``[service]`` extra); POSIX only.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import math
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional

from aiohttp import web

from .engines import get_engine
from .local import build_state, close_state, make_runner
from .state import Limits

__all__ = ["run_workers"]

log = logging.getLogger("lmnt_sync.server")


def run_workers(args: argparse.Namespace, api_key: Optional[str], data_dir: Path) -> int:
    """Serve with ``args.workers`` processes until SIGTERM/SIGINT; return the exit status.

    Blocks. ``api_key`` None accepts any non-empty key.

    Raises:
        ImportError: gunicorn is not installed (names the extra).
    """
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError as exc:
        raise ImportError("serve --workers needs gunicorn: pip install 'lmnt-sync[service]'") from exc

    limits = Limits(max_sessions=args.max_sessions, idle_timeout=args.idle_timeout)
    port = args.port or _free_port(args.host)  # every worker binds the same port itself
    options: Dict[str, Any] = {
        "bind": f"[{args.host}]:{port}" if ":" in args.host else f"{args.host}:{port}",
        "workers": args.workers,
        # SO_REUSEPORT: one listening socket per worker, and the kernel spreads
        # connections across them (a shared socket lets one busy-polling
        # worker take nearly all of them).
        "reuse_port": True,
        "worker_class": "aiohttp.GunicornWebWorker",
        "keepalive": max(1, math.ceil(limits.idle_timeout)),  # gunicorn wants whole seconds
        "graceful_timeout": 10,
        "timeout": 60,  # a worker whose loop stalls this long is replaced
        "accesslog": None,
        "post_worker_init": _announce,
        "proc_name": "lmnt-sync-server",
        "control_socket_disable": True,  # one fixed path in $HOME: servers side by side would clash
    }
    if args.certfile:
        options.update(certfile=str(args.certfile), keyfile=str(args.keyfile or args.certfile))

    factory = _runner_factory(args.engine, data_dir, limits, api_key, args.store_url)

    class _Service(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # control_socket_disable: gunicorn >= 24
                    self.cfg.set(key, value)

        def load(self) -> Callable[[], Awaitable[web.AppRunner]]:
            return factory

    _Service().run()  # exits the process with gunicorn's status when stopped
    return 0


def _runner_factory(engine_name: str, data_dir: Path, limits: Limits, api_key: Optional[str],
                    store_url: Optional[str]) -> Callable[[], Awaitable[web.AppRunner]]:
    """Return what each worker calls (after the fork) to build its server."""

    async def make() -> web.AppRunner:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(4, thread_name_prefix="lmnt-sync-io"))
        engine = get_engine(engine_name)
        state = build_state(engine, data_dir, limits, api_key, store_url=store_url)
        runner = make_runner(state)

        async def close(_app: web.Application) -> None:
            close_state(state)

        runner.app.on_cleanup.append(close)
        loop.run_in_executor(state.executor, _warm_up, engine)
        return runner

    return make


def _warm_up(engine: Any) -> None:
    try:
        engine.load()
    except Exception:  # the first synthesis will report it to a client
        log.exception("loading engine %s failed", engine.name)


def _free_port(host: str) -> int:
    """Return a port free on ``host`` now (for ``--port 0``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _announce(worker: Any) -> None:
    """gunicorn's post_worker_init hook: say where this worker listens.

    Its socket is bound and listening by now (connections wait in its
    backlog until the app is up), so "listening on" may be acted upon, as
    with the one-process server.
    """
    for host, port in worker.cfg.address:
        scheme = "https" if worker.cfg.is_ssl else "http"
        host = f"[{host}]" if ":" in host else host
        # One write per line: the workers share stderr.
        sys.stderr.write(f"lmnt_sync.server: worker {worker.pid} listening on {scheme}://{host}:{port}\n")
        sys.stderr.flush()
