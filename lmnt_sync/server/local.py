"""LocalServer: the LMNT-compatible server in a background thread.

Usage::

    with LocalServer(engine="synthetic") as server:
        client = SomeLmntClient(api_key=server.api_key, base_url=server.url)
        ...

The server owns one event loop in a named daemon thread and a small pool
of worker threads for synthesis (most urgent job first, see
:mod:`.scheduling`); :meth:`LocalServer.stop` closes every
session, joins all of them and removes a temporary data folder.

Engines: the chosen engine is the primary one (it speaks LMNT's voice ids
when it has a voice of the right gender). With a real engine, the voices of
the other installed real engines are offered too, so the list holds several
local voices even though each real engine ships one; the synthetic engine
serves alone, which keeps tests deterministic and model-free.

A server still running when the interpreter exits is stopped by an
``atexit`` hook: its threads are daemons, and the interpreter must not
tear down a native library (onnxruntime) while a worker is still inside
it loading a model, which aborts the process ("terminate called without an
active exception", status 134) and loses the script's own exit status.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import os
import secrets
import shutil
import ssl
import tempfile
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from aiohttp import web

from . import logfilter
from .app import create_app
from .auth import Auth
from .engines import DEFAULT_ENGINE, engine_names, get_engine
from .engines.base import Engine, LocalVoice
from .scheduling import UrgencyExecutor
from .state import DEFAULT_MAX_SESSIONS, FrameRecorder, Limits, ServerState
from .voicedb import open_voice_db
from .voices import VoiceStore

__all__ = ["LocalServer", "worker_count", "load_engines", "get_engine_or_none", "build_state",
           "make_runner", "close_state"]

log = logging.getLogger("lmnt_sync.server")
_TEST_ENGINE = "synthetic"


_running: weakref.WeakSet[LocalServer] = weakref.WeakSet()


@atexit.register
def _stop_running_servers() -> None:
    """Stop every server still running at interpreter exit (see the module doc)."""
    for server in list(_running):
        server.stop()


def worker_count() -> int:
    """Return the synthesis thread count: one per core, 2 to 8."""
    return max(2, min(8, os.cpu_count() or 2))


def load_engines(primary: Engine) -> Tuple[Dict[str, Engine], List[Tuple[str, LocalVoice]]]:
    """Return the engines to serve and their voices, ``primary`` first.

    Cheap: no model weights are loaded. Other real engines whose packages
    are missing are skipped.
    """
    engines: Dict[str, Engine] = {primary.name: primary}
    voices = [(primary.name, v) for v in primary.voices()]
    if primary.name == _TEST_ENGINE or get_engine_or_none(primary.name) is not primary:
        return engines, voices  # synthetic or a caller's own engine: alone
    for name in engine_names():
        engine = get_engine_or_none(name) if name not in (primary.name, _TEST_ENGINE) else None
        if engine is None:
            continue
        try:
            extra = [(name, v) for v in engine.voices()]
        except ImportError:
            continue
        if extra:
            engines[name] = engine
            voices.extend(extra)
    return engines, voices


def get_engine_or_none(name: str) -> Optional[Engine]:
    """Return registry engine ``name``, or None if unknown or not installed."""
    try:
        return get_engine(name)
    except (ValueError, ImportError):
        return None


def build_state(engine: Engine, data_dir: Path, limits: Limits, api_key: Optional[str], *,
                store_url: Optional[str] = None,
                recorder: Optional[FrameRecorder] = None) -> ServerState:
    """Return the shared objects of one server process; :func:`close_state` ends them.

    Opens the voice store and starts the synthesis threads; loads no model
    weights. ``api_key`` None accepts any non-empty key.

    Raises:
        ValueError: no voices, or a corrupt ``voices.json`` to import.
        StoreError: the voice database cannot be opened.
    """
    logfilter.install()
    engines, local_voices = load_engines(engine)
    voices = VoiceStore(local_voices, engine.name, data_dir,
                        db=open_voice_db(data_dir, store_url, limits.store_timeout),
                        max_voices=limits.max_voices,
                        max_metadata_bytes=limits.max_voice_metadata_bytes)
    return ServerState(
        engines=engines, voices=voices, auth=Auth(api_key), limits=limits,
        executor=UrgencyExecutor(worker_count(), thread_name_prefix="lmnt-sync-synth"),
        recorder=recorder or FrameRecorder(False),
    )


def make_runner(state: ServerState) -> web.AppRunner:
    """Return the aiohttp runner serving ``state`` with the server's timeouts."""
    return web.AppRunner(create_app(state), access_log=None, shutdown_timeout=5.0,
                         handle_signals=False, keepalive_timeout=state.limits.idle_timeout)


def close_state(state: ServerState) -> None:
    """Stop the synthesis threads (after their current chunk) and close the store."""
    state.executor.shutdown(wait=True, cancel_futures=True)
    state.voices.close()


class LocalServer:
    """An LMNT-compatible server on ``host:port``, run in a background thread.

    Args:
        host: interface to bind; loopback by default.
        port: TCP port; 0 picks a free one (see :attr:`url` after start).
        api_key: the key clients must send; None generates a random one
            (read it from :attr:`api_key`).
        engine: engine name (see ``engines.engine_names()``) or an Engine
            object; None means ``engines.DEFAULT_ENGINE``.
        data_dir: folder for created voices; None uses a temporary folder
            that :meth:`stop` removes.
        max_sessions: concurrent websocket sessions allowed.
        record_frames: keep the JSON messages clients send (see
            :meth:`client_frames`).
        accept_any_key: accept any non-empty key (``python -m
            lmnt_sync.server`` without a configured key).
        limits: other limits; ``max_sessions`` overrides its field.
        certfile: PEM certificate (chain) to serve https/wss with; None
            serves plain http/ws.
        keyfile: its private key (None: the key is in ``certfile``).
        store_url: a ``postgresql://`` URL to keep created voices in (shared
            by replicas); None keeps them in SQLite in ``data_dir``.

    Raises:
        ValueError: unknown engine name.
        ImportError: the engine's package is not installed.
        OSError: the certificate or key cannot be read (ssl.SSLError: they
            do not match or are not PEM).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: Optional[str] = None,
        engine: Union[str, Engine, None] = None,
        data_dir: Union[str, os.PathLike[str], None] = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        record_frames: bool = False,
        accept_any_key: bool = False,
        limits: Optional[Limits] = None,
        certfile: Union[str, os.PathLike[str], None] = None,
        keyfile: Union[str, os.PathLike[str], None] = None,
        store_url: Optional[str] = None,
    ) -> None:
        self._ssl = _ssl_context(certfile, keyfile)
        self._store_url = store_url
        self._state: Optional[ServerState] = None
        self._host = host
        self._port = port
        self._api_key = api_key if api_key is not None else "lmnt-local-" + secrets.token_urlsafe(24)
        self._accept_any_key = accept_any_key
        self._engine: Engine = (
            get_engine(engine or DEFAULT_ENGINE) if engine is None or isinstance(engine, str) else engine
        )
        self._temp_dir = data_dir is None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._limits = replace(limits or Limits(), max_sessions=max_sessions)
        self._recorder = FrameRecorder(record_frames)
        self._lock = threading.Lock()  # serialises start() and stop()
        self._thread: Optional[threading.Thread] = None
        self._stop_serving: Optional[Callable[[], Any]] = None  # set once listening
        self._runner: Optional[web.AppRunner] = None
        self._executor: Optional[UrgencyExecutor] = None
        self._ready = threading.Event()
        self._stop_requested = threading.Event()
        self._error: Optional[BaseException] = None

    # -- properties --------------------------------------------------------

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:54321`` (after start)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'https' if self._ssl else 'http'}://{host}:{self._port}"

    @property
    def port(self) -> int:
        """Return the bound port (0 before :meth:`start`)."""
        return self._port

    @property
    def api_key(self) -> str:
        """Return the API key clients must send."""
        return self._api_key

    @property
    def engine_name(self) -> str:
        """Return the name of the speech engine in use."""
        return self._engine.name

    @property
    def data_dir(self) -> Optional[Path]:
        """Return the folder holding created voices (set once started)."""
        return self._data_dir

    @property
    def running(self) -> bool:
        """Return True between a successful start() and stop()."""
        return self._thread is not None and self._thread.is_alive() and self._error is None

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 60.0) -> LocalServer:
        """Start serving; block until the port listens (at most ``timeout`` s).

        Idempotent while running. Returns self.

        Raises:
            OSError: the port cannot be bound.
            ValueError: the voice store in ``data_dir`` is corrupt.
            TimeoutError: the server did not come up in time.
        """
        with self._lock:
            if self._thread is not None:
                return self
            if self._data_dir is None:
                self._data_dir = Path(tempfile.mkdtemp(prefix="lmnt-local-"))
            self._ready.clear()
            self._stop_requested.clear()
            self._error = None
            self._thread = threading.Thread(target=self._run, name="lmnt-sync-server", daemon=True)
            self._thread.start()
            _running.add(self)
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"local server did not start within {timeout:g} s")
        if self._error is not None:
            error = self._error
            self.stop()
            raise error
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Close all sessions, stop the server and join its threads.

        Idempotent and thread-safe; blocks at most about ``timeout`` s.
        A temporary data folder is removed.
        """
        with self._lock:
            if self._thread is None:
                return
            self._stop_requested.set()
            thread, stop_serving = self._thread, self._stop_serving
            if stop_serving is not None:
                stop_serving()
            thread.join(timeout)
            if thread.is_alive():
                log.warning("local server thread did not stop within %g s", timeout)
            self._thread = None
            self._stop_serving = None
            _running.discard(self)
            if self._temp_dir and self._data_dir is not None:
                shutil.rmtree(self._data_dir, ignore_errors=True)
                self._data_dir = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def client_frames(self) -> List[List[Dict[str, Any]]]:
        """Return, per websocket session in connection order, the client's messages.

        Only filled with ``record_frames=True``; API key values read
        ``"<redacted>"``. Thread-safe; returns copies.
        """
        return self._recorder.snapshot()

    # -- server thread -----------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # File I/O (uploads, the voice store) runs here, off the event loop.
        loop.set_default_executor(ThreadPoolExecutor(4, thread_name_prefix="lmnt-sync-io"))
        try:
            loop.run_until_complete(self._serve(loop))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start, report readiness, wait for stop(), shut down (always)."""
        stopping = asyncio.Event()
        try:
            await self._startup()
            self._stop_serving = lambda: loop.call_soon_threadsafe(stopping.set)
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
        self._ready.set()
        try:
            # stop() sets the flag before reading _stop_serving, so a stop
            # racing with startup is seen by one side or the other.
            if self._error is None and not self._stop_requested.is_set():
                await stopping.wait()
        finally:
            await self._shutdown()

    async def _startup(self) -> None:
        assert self._data_dir is not None
        self._state = build_state(self._engine, self._data_dir, self._limits,
                                  None if self._accept_any_key else self._api_key,
                                  store_url=self._store_url, recorder=self._recorder)
        executor = self._state.executor  # tests look at its queue
        self._executor = executor if isinstance(executor, UrgencyExecutor) else None
        self._runner = make_runner(self._state)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True,
                           ssl_context=self._ssl)
        await site.start()
        self._port = self._runner.addresses[0][1]
        # Load model weights in the background so the first request is fast.
        asyncio.get_running_loop().run_in_executor(self._state.executor, self._warm_up)

    def _warm_up(self) -> None:
        try:
            self._engine.load()
        except Exception:  # the first synthesis will report it to a client
            log.exception("loading engine %s failed", self._engine.name)

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._state is not None:
            close_state(self._state)
            self._state = None
            self._executor = None


def _ssl_context(certfile: Union[str, os.PathLike[str], None],
                 keyfile: Union[str, os.PathLike[str], None]) -> Optional[ssl.SSLContext]:
    """Return a server TLS context for the certificate, or None without one.

    Raises:
        ValueError: a key without a certificate.
        OSError, ssl.SSLError: unreadable or mismatched files.
    """
    if certfile is None:
        if keyfile is not None:
            raise ValueError("a TLS key needs its certificate (certfile)")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # modern defaults (TLS >= 1.2)
    context.load_cert_chain(certfile, keyfile)
    return context
