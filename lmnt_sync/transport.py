"""One websocket connection: connect, send, receive one frame, shut down.

A thin layer over websocket-client, used through its documented API only
(``connect``, ``send``, ``ping``, ``pong``, ``recv_frame``, ``send_close``,
``settimeout``, ``getheaders`` and the connected ``sock``). It knows nothing
of LMNT's messages. Its other jobs:

- translating the library's exceptions into ours, in ``_translate`` only;
- waking blocked threads: ``shutdown`` shuts the socket down in both
  directions, which makes a thread blocked in ``recv`` or ``send`` on it
  return at once (closing a file descriptor alone wakes nobody, and
  websocket-client's own ``abort`` does nothing once ``send_close`` ran);
- fork safety: a forked child never shuts down, nor sends on, a socket it
  inherited (that would end its parent's session); it only drops its copy
  of the descriptor.
"""
from __future__ import annotations

import math
import os
import select
import selectors
import socket
import ssl
import struct
import weakref
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import websocket

from .errors import APIConnectionError, ConfigurationError, LmntError, LocalProtocolError, ProtocolError
from .errors import TimeoutError as LmntTimeoutError
from .readahead import ReadAheadSocket, read_ahead_socket
from .spec import STREAM_PATH

__all__ = ["Frame", "Transport", "websocket_url"]

# poll(2) where there is one: no descriptor of its own and no FD_SETSIZE
# limit (select() fails once a process holds more than 1024 descriptors).
_Selector = getattr(selectors, "PollSelector", selectors.DefaultSelector)
_POLL_MAX_MS = 2**31 - 1
_POLLRDHUP = getattr(select, "POLLRDHUP", None) if hasattr(select, "poll") else None


class _ReadableWaiter:
    """Waits for one socket to become readable: poll(2) directly where there is one.

    The receiver waits here before every frame, so it is worth skipping the
    selectors module's bookkeeping (a key lookup and a list per call).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._poll: Any = None
        self._selector: Optional[selectors.BaseSelector] = None
        if hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
        else:
            self._selector = _Selector()
            self._selector.register(sock, selectors.EVENT_READ)

    def wait(self, timeout: Optional[float]) -> bool:
        """True once readable (or at its end, or in error); False after ``timeout`` s (None: no limit)."""
        if self._poll is not None:
            # poll() counts in whole milliseconds (a C int): round up, never wake early into a busy loop.
            ms = None if timeout is None else min(math.ceil(max(timeout, 0.0) * 1000), _POLL_MAX_MS)
            return bool(self._poll.poll(ms))
        assert self._selector is not None
        return bool(self._selector.select(timeout))

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()


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


class Frame(NamedTuple):
    """A frame received: ``kind`` is "text", "binary", "close", "ping" or "pong"."""

    kind: str
    data: Any = None
    code: Optional[int] = None
    reason: str = ""


class Transport:
    """A connected websocket: one thread receives, any thread sends.

    ``send_text``/``ping``/``send_close`` may block up to ``io_timeout`` on
    a peer that does not read; ``shutdown`` (from any thread) ends every
    such wait at once.
    """

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        sock = ws.sock
        if sock is None:  # websocket-client sets it on connect; a Transport is made from a connected one
            raise APIConnectionError("the websocket is not connected")
        self._sock: socket.socket = sock
        self._pid = os.getpid()
        self._shut = False
        self._fragments: Optional[Tuple[int, List[bytes]]] = None  # (opcode, parts) of a message still arriving
        self._readable = _ReadableWaiter(self._sock)
        _live.add(self)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        timeout: Optional[float],
        io_timeout: Optional[float],
        ssl_options: Optional[Dict[str, Any]] = None,
    ) -> Transport:
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
        ws = websocket.WebSocket(
            enable_multithread=True,  # frames from several threads never interleave
            sslopt=dict(ssl_options or {}),
            # recv() decodes text frames itself, strictly (C speed); the library's
            # own check is pure Python, ~0.2 ms per KiB of JSON.
            skip_utf8_validation=True,
        )
        sock: Optional[ReadAheadSocket] = None
        try:
            ws.settimeout(timeout)
            sock = read_ahead_socket(url, timeout)  # None: websocket-client opens its own
            ws.connect(url, suppress_origin=True, timeout=timeout, socket=sock)
            ws.settimeout(io_timeout)
            return cls(ws)
        except Exception as exc:  # translated in one place
            try:
                ws.shutdown()
            except Exception:
                pass
            if sock is not None:
                sock.close()  # in case the library never took it
            raise _translate(exc, f"connecting to {url}") from exc

    def set_io_timeout(self, io_timeout: Optional[float]) -> None:
        """Change ``io_timeout`` (see ``connect``), e.g. for a connection opened ahead of time."""
        self._ws.settimeout(io_timeout)

    @property
    def response_headers(self) -> Dict[str, str]:
        """Headers of the upgrade response."""
        return dict(self._ws.getheaders() or {})

    def send_text(self, data: str) -> None:
        """Send one text frame; blocks at most ``io_timeout`` if the peer stalls.

        Raises:
            TimeoutError: the peer did not take the frame in time; part of it
                may be on the wire, so the connection must not be used again.
            APIConnectionError: the connection is broken or was shut down.
        """
        self._check_owner("send on")
        try:
            self._ws.send(data)
        except Exception as exc:
            raise _translate(exc, "sending") from exc

    def ping(self) -> None:
        """Send a ping frame (keepalive); raises as ``send_text``."""
        self._check_owner("ping on")
        try:
            self._ws.ping()
        except Exception as exc:
            raise _translate(exc, "sending a ping") from exc

    def wait_readable(self, timeout: Optional[float]) -> bool:
        """Block until a frame starts arriving or ``timeout`` passes; True if readable.

        A shut-down socket is readable (at its end): ``recv`` then reports it.
        """
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True  # decrypted bytes wait inside the TLS layer, invisible to poll
        if isinstance(sock, ReadAheadSocket) and sock.buffered:
            return True  # bytes read ahead wait in memory, invisible to poll
        try:
            return self._readable.wait(timeout)
        except (OSError, ValueError):
            return True  # closed meanwhile: recv() reports it

    def wait_writable(self, timeout: Optional[float]) -> bool:
        """Block until a small frame can be sent without blocking, or ``timeout`` passes."""
        try:
            with _Selector() as selector:
                selector.register(self._sock, selectors.EVENT_WRITE)
                return bool(selector.select(timeout))
        except (OSError, ValueError):
            return False

    def peer_closed(self) -> bool:
        """True if the peer has shut its side down (its FIN arrived), without reading anything.

        Linux reports it as POLLRDHUP even with data still queued in front;
        elsewhere this is always False and a send finds out by failing.
        """
        if _POLLRDHUP is None:
            return False
        poller = select.poll()
        try:
            poller.register(self._sock, _POLLRDHUP)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True  # closed here already

    def recv(self) -> Frame:
        """Receive one whole message (fragments joined) or control frame.

        Pings are answered and a close frame is answered once, best effort:
        if the reply cannot be sent (the server already hung up, as it may
        when we read its close late), the close frame received is still
        what is returned, not the broken pipe.

        Raises:
            APIConnectionError: the connection dropped without a close frame.
            TimeoutError: a started frame stalled longer than ``io_timeout``.
            ProtocolError: the peer broke websocket framing.
        """
        try:
            while True:
                frame = self._ws.recv_frame()
                opcode = frame.opcode
                if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    if self._fragments is not None:
                        raise ProtocolError("server started a new message inside a fragmented one")
                    if frame.fin:
                        return self._message(opcode, frame.data)
                    self._fragments = (opcode, [frame.data])
                elif opcode == websocket.ABNF.OPCODE_CONT:
                    if self._fragments is None:
                        raise ProtocolError("server sent a continuation frame outside a fragmented message")
                    self._fragments[1].append(frame.data)
                    if frame.fin:
                        first, parts = self._fragments
                        self._fragments = None
                        return self._message(first, b"".join(parts))
                elif opcode == websocket.ABNF.OPCODE_PING:
                    self._reply(lambda: self._ws.pong(frame.data))  # noqa: B023 - _reply calls it at once
                    return Frame("ping", frame.data)
                elif opcode == websocket.ABNF.OPCODE_PONG:
                    return Frame("pong", frame.data)
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    self._reply(lambda: self._ws.send_close())
                    return _close_frame(frame.data)
                else:
                    raise ProtocolError(f"server sent a websocket frame with opcode {opcode}")
        except LmntError:
            raise
        except Exception as exc:
            raise _translate(exc, "receiving") from exc

    def _message(self, opcode: int, data: bytes) -> Frame:
        if opcode == websocket.ABNF.OPCODE_BINARY:
            return Frame("binary", data)
        try:
            return Frame("text", data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ProtocolError("text frame is not valid UTF-8") from exc

    def _reply(self, send: Any) -> None:
        """Answer a control frame; a failure is the connection's end, which the next read reports."""
        if not self.owned:
            return
        try:
            send()
        except Exception:
            pass

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame; never raises (the socket may be gone)."""
        if not self.owned:
            return
        try:
            self._ws.send_close(code, reason.encode("utf-8"))
        except Exception:  # already closed or broken: nothing left to tell the peer
            pass

    def shutdown(self) -> None:
        """Shut the socket down both ways: every blocked ``recv``/``send`` returns now.

        Never blocks, never raises, takes no lock (a GC finalizer calls it); idempotent. In a forked child it does
        nothing (the connection is the parent's).
        """
        if self._shut or not self.owned:
            return
        self._shut = True  # a racing second shutdown only gets ENOTCONN
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # not connected any more
            pass

    def close(self) -> None:
        """Shut down and release the socket; idempotent, never raises.

        In a forked child, only the child's copy of the descriptor goes.
        """
        self.shutdown()
        self._readable.close()
        try:
            self._sock.close()
        except OSError:
            pass

    @property
    def owned(self) -> bool:
        """False in a forked child: the connection belongs to the parent process."""
        return self._pid == os.getpid()

    def _check_owner(self, doing: str) -> None:
        if not self.owned:
            raise LocalProtocolError(f"cannot {doing} a connection opened by the parent process (after fork)")


# Every open transport, so a forked child can forget them (see _after_fork_in_child).
_live: weakref.WeakSet[Transport] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child owns none of its parent's connections: drop them without a word.

    Closing the child's copy of a descriptor leaves the parent's connection
    untouched, whereas a shutdown or a close frame would end it.
    """
    for transport in list(_live):
        try:
            transport._sock.close()
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
