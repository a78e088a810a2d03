"""Speech: the facade that holds the key and base URL, REST calls and the session factory."""
from __future__ import annotations

import functools
import os
import threading
import weakref
from typing import Any, Dict, List, Optional, Tuple, Union

from . import protocol as p
from .errors import ConfigurationError, LocalProtocolError, MissingAPIKeyError
from .receiver import ReceiverThread, SessionState
from .rest import RestClient
from .session import StreamingConnection
from .spare import SpareConnection
from .transport import Transport, websocket_url

__all__ = ["Speech", "DEFAULT_BASE_URL"]

# LMNT's hosted API (https://api.lmnt.com) shut down in September 2026: with no
# base URL given, Speech() talks to the embedded server (lmnt_sync.server).
DEFAULT_BASE_URL = None
_LEGACY_ONLY = ("speed", "expressive", "conversational")


class Speech:
    """Entry point to LMNT's API, blocking style.

    Args:
        api_key: your key; defaults to the ``LMNT_API_KEY`` environment
            variable. Surrounding whitespace (a newline read from a file) is
            dropped; a control character inside is refused.
        base_url: the server, e.g. ``http://tts.example:8000``; defaults to
            ``LMNT_BASE_URL``. LMNT's hosted API shut down in September 2026,
            so with neither, the embedded server is started (as ``local=True``).
        local: True: start the embedded LMNT-compatible server
            (``lmnt_sync.server``, offline voices, needs the ``[server]``
            extra) and talk to it, with ``api_key`` as its key if given.
            False: never; a base URL is then required. None (default): only
            when no base URL is given.
        timeout: REST read timeout per attempt, seconds.
        connect_timeout: TCP/TLS/upgrade timeout, seconds (REST and sessions).
        max_retries: REST retries after the first attempt.
        verify: TLS verification: True (default), or a CA bundle path.
        preconnect: keep one idle connection open, ready for the next
            ``synthesize_streaming``, so that session skips the TCP, TLS and
            websocket handshakes (a background thread refills it; see
            ``spare.py``). Costs one idle connection to the server.

    Raises:
        MissingAPIKeyError: a base URL but no key (and ``LMNT_API_KEY`` unset).
        ConfigurationError: a malformed key or base URL, or ``local=False`` without a base URL.
        MissingDependencyError: the embedded server is needed but the ``[server]`` extra is missing.

    Use as a context manager or call ``close()``: that closes the sessions
    it opened, its HTTP connections, and the embedded server if any.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        local: Optional[bool] = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        verify: Union[bool, str] = True,
        preconnect: bool = False,
    ) -> None:
        api_key = _checked_key(api_key if api_key is not None else os.environ.get("LMNT_API_KEY"))
        base_url = base_url or os.environ.get("LMNT_BASE_URL") or None
        if local is None:
            local = base_url is None
        if local:
            self._server = _start_local_server(api_key)
            api_key, base_url = self._server.api_key, self._server.url
        else:
            self._server = None
            if base_url is None:
                raise ConfigurationError(
                    "no base URL: LMNT's hosted API shut down in September 2026; pass base_url=... or set "
                    "LMNT_BASE_URL to your server, or use the embedded one (local=True)"
                )
            if not api_key:
                raise MissingAPIKeyError("no API key: pass api_key=... or set the LMNT_API_KEY environment variable")
        self.base_url = base_url.rstrip("/")
        self._ws_url = websocket_url(self.base_url)
        self._api_key = api_key
        self.connect_timeout = connect_timeout
        self._ssl_options = _ssl_options(verify)
        self.rest = RestClient(
            self.base_url, api_key, timeout=timeout, connect_timeout=connect_timeout,
            max_retries=max_retries, verify=verify,
        )
        self._sessions: weakref.WeakSet[StreamingConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._spare: Optional[SpareConnection] = None
        if preconnect:
            # The thread must not reference self, so that an unclosed Speech can be collected.
            connect = functools.partial(Transport.connect, self._ws_url, timeout=connect_timeout, io_timeout=None,
                                        ssl_options=self._ssl_options)
            self._spare = SpareConnection(connect)
            weakref.finalize(self, self._spare.close)

    def __repr__(self) -> str:
        where = "local server" if self._server is not None else self.base_url
        return f"<Speech {where}>"

    # -- streaming --------------------------------------------------------

    def synthesize_streaming(
        self,
        voice: str,
        *,
        format: Optional[str] = None,  # noqa: A002 - LMNT's name
        sample_rate: Optional[int] = None,
        language: Optional[str] = None,
        return_extras: bool = False,
        protocol: str = p.CURRENT,
        speed: Optional[float] = None,
        expressive: Optional[float] = None,
        conversational: Optional[bool] = None,
        connect_timeout: Optional[float] = None,
        max_queue: int = 1024,
        max_frame_bytes: int = 16 * 1024 * 1024,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: Optional[float] = 20.0,
        io_timeout: Optional[float] = 30.0,
        close_timeout: float = 5.0,
        iter_timeout: Optional[float] = None,
        reconnect: bool = False,
    ) -> StreamingConnection:
        """Open a streaming session; blocks until connected (at most ``connect_timeout``).

        With ``Speech(preconnect=True)`` the connection opened in advance is
        used, if it is still open, and nothing blocks on the network.

        The receiver thread is already draining the socket when this returns.

        Args:
            voice: voice id, e.g. ``"lily"``.
            format: ``mp3``, ``pcm_s16le``, ``pcm_f32le``, ``ulaw``, ``webm``
                (legacy: ``mp3``, ``raw``, ``ulaw``); None: the server's default.
            sample_rate: 8000, 16000 or 24000; None: the server's default.
            language: language code; None: the server's default.
            return_extras: ask for word timings (``return_timestamps`` on the
                current wire, ``send_extras`` on the legacy one).
            protocol: ``"current"`` (lmnt-version 1.2) or ``"legacy"``.
            speed, expressive, conversational: legacy-wire options only.
            max_queue: bound on messages received but not yet iterated; when
                full, the receiver stops reading and TCP pushes back on the
                server (a thread reading for itself may add the few messages
                of one frame, and the end of the session is always queued).
            max_frame_bytes: larger server frames fail the session (ProtocolError).
            ping_interval, ping_timeout: keepalive; a peer that does not answer
                a ping within ``ping_timeout`` fails the session.
            io_timeout: how long one send, or the rest of a started frame,
                may stall before the connection counts as dead.
            close_timeout: how long ``close()`` waits for the server's answer.
            iter_timeout: how long iteration waits for one message (None: forever).
            reconnect: if the connection is lost between turns (every text
                sent was flushed and its ``flush_complete`` received, or
                reset, and ``finish()`` not called), open a new session with
                the same options at the next send or read, instead of
                raising. Nothing can be lost or spoken twice then. Lost in
                the middle of a turn, the session fails as usual. Current
                wire only; ``connection.reconnects`` counts the reopenings.
                A drop shows when the server closes or keepalive fails, so
                text sent into a silently dead connection still fails.

        Raises:
            ConfigurationError: an argument is invalid (the message names it).
            APIConnectionError, TimeoutError: the server could not be reached.
        """
        if self._closed:
            raise LocalProtocolError("this Speech is closed: open a new Speech() for new sessions")
        legacy_options = {"speed": speed, "expressive": expressive, "conversational": conversational}
        options: Dict[str, Any] = {"format": format, "sample_rate": sample_rate, "language": language}
        _check_session_args(voice, protocol, options, legacy_options)
        if max_queue < 1:
            raise ConfigurationError(f"max_queue must be at least 1, not {max_queue!r}")
        if reconnect and protocol != p.CURRENT:
            raise ConfigurationError("reconnect needs the current protocol: the legacy wire has no flush_complete")
        options.update(legacy_options)
        timeout = self.connect_timeout if connect_timeout is None else connect_timeout

        def open_session(nonce: int = 0) -> Tuple[SessionState, Optional[ReceiverThread]]:
            """Connect and send init; nonces continue after ``nonce`` (a reopened session)."""
            proto = p.ClientProtocol(protocol, return_extras, first_nonce=nonce)
            init = proto.init_message(self._api_key, voice, options)
            spare = self._spare.take() if self._spare is not None else None
            receiver = None
            if spare is not None:
                transport, receiver = spare
                transport.set_io_timeout(io_timeout)
            else:
                transport = Transport.connect(self._ws_url, timeout=timeout, io_timeout=io_timeout,
                                              ssl_options=self._ssl_options)
            try:
                transport.send_text(init)
            except BaseException:
                transport.close()
                if receiver is not None:
                    receiver.release()
                raise
            return SessionState(transport, proto, max_queue, ping_interval, ping_timeout, max_frame_bytes), receiver

        state, receiver = open_session()
        connection = StreamingConnection(state, close_timeout=close_timeout, iter_timeout=iter_timeout,
                                         receiver=receiver, reopen=open_session if reconnect else None)
        with self._lock:
            self._sessions.add(connection)
        return connection

    # -- REST -------------------------------------------------------------

    def synthesize(self, text: str, voice: str, **options: Any) -> bytes:
        """Return the audio for ``text`` as bytes; see ``RestClient.synthesize``."""
        return self.rest.synthesize(text, voice, **options)

    def synthesize_detailed(self, text: str, voice: str, **options: Any) -> Dict[str, Any]:
        """Return ``{"audio": bytes, "timestamps": [...]}``; see ``RestClient.synthesize_detailed``."""
        return self.rest.synthesize_detailed(text, voice, **options)

    def list_voices(self, *, owner: str = "all", starred: Optional[bool] = None) -> List[Dict[str, Any]]:
        """Return the voice list; see ``RestClient.list_voices``."""
        return self.rest.list_voices(owner=owner, starred=starred)

    def voice_info(self, voice_id: str) -> Dict[str, Any]:
        """Return one voice; see ``RestClient.voice_info``."""
        return self.rest.voice_info(voice_id)

    def create_voice(self, name: str, files: Any, **fields: Any) -> Dict[str, Any]:
        """Create a voice from audio files; see ``RestClient.create_voice``."""
        return self.rest.create_voice(name, files, **fields)

    def update_voice(self, voice_id: str, **changes: Any) -> Dict[str, Any]:
        """Update a voice; see ``RestClient.update_voice``."""
        return self.rest.update_voice(voice_id, **changes)

    def delete_voice(self, voice_id: str) -> Dict[str, Any]:
        """Delete a voice; see ``RestClient.delete_voice``."""
        return self.rest.delete_voice(voice_id)

    def account_info(self) -> Dict[str, Any]:
        """Return plan and usage; see ``RestClient.account_info``."""
        return self.rest.account_info()

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Close open sessions, HTTP connections and the embedded server; idempotent.

        Blocks at most about each session's ``close_timeout`` plus the
        server's stop time.
        """
        if self._spare is not None:
            self._spare.close()
        with self._lock:
            self._closed = True
            sessions = list(self._sessions)
        for session in sessions:
            session.close()
        self.rest.close()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> Speech:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _check_session_args(voice: Any, protocol: str, options: Dict[str, Any], legacy: Dict[str, Any]) -> None:
    """Raise ConfigurationError naming the first invalid session argument."""
    if not isinstance(voice, str) or not voice:
        raise ConfigurationError(f"voice must be a non-empty string, not {voice!r}")
    if protocol not in (p.CURRENT, p.LEGACY):
        raise ConfigurationError(f"protocol must be 'current' or 'legacy', not {protocol!r}")
    formats = p.SESSION_FORMATS if protocol == p.CURRENT else p.LEGACY_FORMATS
    fmt = options["format"]
    if fmt is not None and fmt not in formats:
        raise ConfigurationError(f"format {fmt!r} is not one of {', '.join(formats)} for the {protocol} protocol")
    rate = options["sample_rate"]
    if rate is not None and (isinstance(rate, bool) or rate not in p.SAMPLE_RATES):
        raise ConfigurationError(f"sample_rate must be one of {p.SAMPLE_RATES}, not {rate!r}")
    if options["language"] is not None and not isinstance(options["language"], str):
        raise ConfigurationError(f"language must be a string, not {options['language']!r}")
    given_legacy = [name for name, value in legacy.items() if value is not None]
    if protocol == p.CURRENT and given_legacy:
        names = " and ".join(given_legacy)
        verb = "is an option" if len(given_legacy) == 1 else "are options"
        raise ConfigurationError(f"{names} {verb} of the legacy protocol only: pass protocol='legacy' to use them")


def _ssl_options(verify: Union[bool, str]) -> Dict[str, Any]:
    """websocket-client TLS options matching requests' ``verify``."""
    import ssl

    if verify is False:
        return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    if isinstance(verify, str):
        return {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": verify}
    return {"cert_reqs": ssl.CERT_REQUIRED}


def _checked_key(key: Optional[str]) -> Optional[str]:
    """Return ``key`` without surrounding whitespace; refuse one that could corrupt a header or a log.

    The message never shows the key, only where the bad character is.

    Raises:
        ConfigurationError: not a string, or a control or non-ASCII character inside.
    """
    if key is None:
        return None
    if not isinstance(key, str):
        raise ConfigurationError(f"api_key must be a string, not {type(key).__name__}")
    key = key.strip()
    for position, char in enumerate(key):
        if not " " < char < "\x7f":
            raise ConfigurationError(
                f"api_key has a control, space or non-ASCII character at position {position} of {len(key)}: "
                "LMNT keys are printable ASCII (check how the key was copied or read)"
            )
    return key


def _start_local_server(api_key: Optional[str]) -> Any:
    """Start the embedded server (lazily imported: it needs the [server] extra).

    Raises:
        MissingDependencyError: the [server] extra is not installed (the server package names it).
    """
    from .server import LocalServer

    server = LocalServer(api_key=api_key or None)
    server.start()
    return server
