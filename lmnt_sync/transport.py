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
from dataclasses import dataclass
from typing import Any, Dict, Optional

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
    """A frame received: ``kind`` is "text", "binary", "close" or "pong"."""

    kind: str
    data: Any = None
    code: Optional[int] = None
    reason: str = ""


_KINDS = {
    websocket.ABNF.OPCODE_TEXT: "text",
    websocket.ABNF.OPCODE_BINARY: "binary",
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
        try:
            ws = websocket.create_connection(
                url,
                timeout=timeout,
                enable_multithread=True,
                sslopt=dict(ssl_options or {}),
                suppress_origin=True,
            )
            ws.settimeout(io_timeout)
        except Exception as exc:  # translated in one place
            raise _translate(exc, f"connecting to {url}") from exc
        return cls(ws)

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
        """Release the socket; idempotent, never raises."""
        try:
            self._ws.shutdown()
        except Exception:
            pass


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
