"""One websocket connection: connect, send, receive one frame, close.

A thin layer over websocket-client. It knows nothing of LMNT's messages; its
one other job is to translate the library's exceptions into ours, in
``_translate`` only.
"""
from __future__ import annotations

import select
import socket
import ssl
import struct
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

import websocket

from .errors import APIConnectionError, ConfigurationError, LmntError, ProtocolError
from .errors import TimeoutError as LmntTimeoutError

__all__ = ["Frame", "Transport", "websocket_url"]

STREAM_PATH = "/v1/ai/speech/stream"


def websocket_url(base_url: str) -> str:
    """Derive the session URL from a REST base URL, as the official SDK does.

    ``https://`` becomes ``wss://``, ``http://`` becomes ``ws://``, and the
    stream path is appended (a path prefix in the base URL is kept).
    """
    url = base_url.rstrip("/")
    for rest_scheme, ws_scheme in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(rest_scheme):
            return ws_scheme + url[len(rest_scheme):] + STREAM_PATH
    raise ConfigurationError(f"base_url must start with http:// or https://, not {base_url!r}")


@dataclass(frozen=True)
class Frame:
    """A frame received: ``kind`` is "text", "binary", "close", "ping" or "pong"."""

    kind: str
    data: Any = None
    code: Optional[int] = None
    reason: str = ""


_KINDS = {
    websocket.ABNF.OPCODE_TEXT: "text",
    websocket.ABNF.OPCODE_BINARY: "binary",
    websocket.ABNF.OPCODE_PING: "ping",  # websocket-client has answered it already
    websocket.ABNF.OPCODE_PONG: "pong",
}


class Transport:
    """A connected websocket, safe to send on from several threads.

    One thread receives (``wait_readable`` + ``recv``); any thread may send.
    """

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        timeout: Optional[float],
        io_timeout: Optional[float],
        ssl_options: Optional[Dict[str, Any]] = None,
    ) -> "Transport":
        """Open the connection; blocks for at most ``timeout`` seconds.

        Args:
            url: ``ws://`` or ``wss://`` URL.
            timeout: budget for TCP connect, TLS and the upgrade.
            io_timeout: afterwards, how long one send or the rest of a
                started frame may stall before the connection counts as dead.
            ssl_options: passed to websocket-client (``ca_certs``, ...);
                certificates are verified unless told otherwise.

        Raises:
            APIConnectionError: the server could not be reached or refused the upgrade.
            TimeoutError: the budget ran out.
        """
        sock = None
        try:
            sock = _read_ahead_socket(url, timeout)
            ws = websocket.create_connection(
                url,
                timeout=timeout,
                enable_multithread=True,
                sslopt=dict(ssl_options or {}),
                suppress_origin=True,
                # recv() decodes text frames itself, strictly (C speed); the library's
                # own check is pure Python, ~0.2 ms per KiB of JSON.
                skip_utf8_validation=True,
                socket=sock,  # None: websocket-client opens its own
            )
            ws.settimeout(io_timeout)
        except Exception as exc:  # translated in one place
            if sock is not None:
                sock.close()
            raise _translate(exc, f"connecting to {url}") from exc
        return cls(ws)

    def set_io_timeout(self, io_timeout: Optional[float]) -> None:
        """Change ``io_timeout`` (see ``connect``), e.g. for a connection opened ahead of time."""
        self._ws.settimeout(io_timeout)

    @property
    def response_headers(self) -> Dict[str, str]:
        """Headers of the upgrade response."""
        return dict(self._ws.getheaders() or {})

    def send_text(self, data: str) -> None:
        """Send one text frame; blocks at most ``io_timeout`` if the peer stalls."""
        try:
            self._ws.send(data)
        except Exception as exc:
            raise _translate(exc, "sending") from exc

    def ping(self) -> None:
        """Send a ping frame (keepalive)."""
        try:
            self._ws.ping()
        except Exception as exc:
            raise _translate(exc, "sending a ping") from exc

    def wait_readable(self, timeout: Optional[float]) -> bool:
        """Block until a frame starts arriving or ``timeout`` passes; True if readable."""
        sock = self._ws.sock
        if sock is None:
            return True  # closed: recv() reports it
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        if isinstance(sock, _ReadAheadSocket) and sock.buffered:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
        except (OSError, ValueError):
            return True  # socket shut from another thread: recv() reports it
        return bool(readable)

    def recv(self) -> Frame:
        """Receive one whole frame; answers pings and close frames itself.

        Raises:
            APIConnectionError: the connection dropped without a close frame.
            TimeoutError: a started frame stalled longer than ``io_timeout``.
            ProtocolError: the peer broke websocket framing.
        """
        try:
            opcode, data = self._ws.recv_data(control_frame=True)
        except Exception as exc:
            raise _translate(exc, "receiving") from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return _close_frame(data)
        kind = _KINDS.get(opcode, "other")
        if kind == "text":
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError("text frame is not valid UTF-8") from exc
        return Frame(kind, data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; never raises (the socket may be gone)."""
        try:
            self._ws.send_close(code, reason.encode("utf-8"))
        except Exception:  # already closed or broken: nothing left to tell the peer
            pass

    def abort(self) -> None:
        """Shut the socket down so a blocked receive returns at once; never raises."""
        try:
            self._ws.abort()
        except Exception:
            pass

    def close(self) -> None:
        """Release the socket; idempotent, never raises.

        Shuts the socket down before closing it: on Linux, closing alone does
        not wake another thread blocked in ``select`` on it.
        """
        self.abort()
        try:
            self._ws.shutdown()
        except Exception:
            pass


class _ReadAheadSocket(socket.socket):
    """A plain TCP socket whose ``recv`` reads ahead and serves small reads from memory.

    websocket-client reads the upgrade response one byte per ``recv`` and
    each frame in pieces (2 header bytes, the length, the payload); on a
    socket with a timeout each piece costs two system calls (poll, recv),
    about 250 for the handshake alone. Reading up to ``READ`` bytes at once
    makes that one call per burst; websocket-client still does all the
    framing. Only ``recv`` without flags changes; ``buffered`` tells a
    ``select`` caller that bytes are already here.
    """

    __slots__ = ("_ahead", "_pos")
    READ = 262144

    def __init__(self, family: int, type: int, proto: int, fileno: int) -> None:  # noqa: A002
        super().__init__(family, type, proto, fileno)
        self._ahead = b""  # bytes read ahead, served from _pos on; b"" once all served
        self._pos = 0

    @property
    def buffered(self) -> bool:
        """True if bytes read ahead are waiting."""
        return bool(self._ahead)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        ahead = self._ahead
        if ahead:
            pos, end = self._pos, self._pos + bufsize
            if end < len(ahead):
                self._pos = end
                return ahead[pos:end]
            self._ahead = b""  # all served: hold no memory between bursts
            return ahead[pos:] if pos else ahead
        if flags:
            return super().recv(bufsize, flags)
        data = super().recv(max(bufsize, self.READ))
        if len(data) <= bufsize:
            return data
        self._ahead, self._pos = data, bufsize
        return data[:bufsize]


def _read_ahead_socket(url: str, timeout: Optional[float]) -> Optional[_ReadAheadSocket]:
    """Connect a read-ahead socket for a plain ``ws://`` URL; None: let websocket-client connect.

    TLS (``wss://``) keeps websocket-client's own path (a TLS socket reads
    whole records, so its small reads make no system call), and so does a
    URL that the environment's proxy settings send through a proxy (the
    standard ``*_proxy``/``no_proxy`` rules, as websocket-client applies
    them). The socket options are websocket-client's defaults (TCP_NODELAY,
    keepalive), as on the sockets it opens itself.
    """
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or _proxied(parts.hostname):
        return None
    raw = socket.create_connection((parts.hostname, parts.port or 80), timeout)
    sock = _ReadAheadSocket(raw.family, raw.type, raw.proto, raw.detach())
    sock.settimeout(timeout)
    for option in websocket.DEFAULT_SOCKET_OPTION:
        try:
            sock.setsockopt(*option)
        except OSError:  # e.g. an option this platform lacks
            pass
    return sock


def _proxied(hostname: str) -> bool:
    """True if the environment names a proxy for ``ws://`` to ``hostname``."""
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get("http") or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(hostname, proxies)


def _close_frame(payload: bytes) -> Frame:
    if len(payload) >= 2:
        (code,) = struct.unpack("!H", payload[:2])
        return Frame("close", code=code, reason=payload[2:].decode("utf-8", "replace"))
    return Frame("close", code=1005)  # 1005: close frame without a status code


def _translate(exc: BaseException, doing: str) -> LmntError:
    """Map a websocket-client or socket error to ours (the one place that does)."""
    if isinstance(exc, LmntError):
        return exc
    if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout)):
        return LmntTimeoutError(f"websocket timed out while {doing}")
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return APIConnectionError(f"server refused the websocket upgrade while {doing}: HTTP {exc.status_code}")
    if isinstance(exc, (websocket.WebSocketProtocolException, websocket.WebSocketPayloadException)):
        return ProtocolError(f"websocket protocol error while {doing}: {exc}")
    if isinstance(exc, ssl.SSLError):
        return APIConnectionError(f"TLS failed while {doing}: {exc}")
    if isinstance(exc, (websocket.WebSocketException, OSError)):
        return APIConnectionError(f"connection failed while {doing}: {exc or type(exc).__name__}")
    return APIConnectionError(f"unexpected {type(exc).__name__} while {doing}: {exc}")
