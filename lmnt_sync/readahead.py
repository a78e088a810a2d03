"""A plain TCP socket that reads ahead, for websocket-client's small reads.

websocket-client reads the upgrade response one byte per ``recv`` and every
frame in pieces: 2 header bytes, the extended length, then the payload in
reads of at most 16 KiB. On a socket with a timeout each piece costs two
system calls (poll, recv): about 250 for the handshake, a dozen for one
64 KiB audio frame. Reading up to :data:`READ_AHEAD` bytes at once makes
that one call per burst, which is what lets one thread receive a long
stream at the official SDK's rate (BENCHMARKS.md, "receive capacity").

websocket-client still does all of the framing: only ``recv`` without flags
changes, and it is handed over through the library's public ``socket=``
option. ``buffered`` tells a caller about to wait in poll(2) that bytes are
already here (poll cannot see them). TLS (``wss://``) keeps
websocket-client's own socket: an SSL socket reads whole records, so its
small reads cost no system call; so does a URL the environment's proxy
settings route through a proxy.
"""
from __future__ import annotations

import socket
import urllib.request
from typing import Optional
from urllib.parse import urlsplit

import websocket

__all__ = ["ReadAheadSocket", "read_ahead_socket", "READ_AHEAD", "READ_AHEAD_MIN"]

#: Most bytes asked of the kernel per read: about sixteen 64 KiB audio frames.
#: Every read gives up the GIL, and taking it back while the caller's thread
#: runs costs a futex wait and wake; on a burst of 64 KiB frames, 1 MiB
#: reads cost about a tenth less CPU per frame than 256 KiB reads
#: (BENCHMARKS.md, session 8). The buffer is held only while a burst lasts.
READ_AHEAD = 1048576
#: Fewest bytes asked per read. Reads start here and double while they come
#: back full, so a burst of large frames soon reads READ_AHEAD at a time,
#: while a trickle of small frames never allocates a buffer that large:
#: malloc serves 256 KiB with a fresh mmap, and a buffer that is shrunk to
#: a 5 KB frame before it is freed costs an mmap, an mremap, a munmap and
#: page faults per read (about 3x the kernel time of the read itself).
READ_AHEAD_MIN = 16384


class ReadAheadSocket(socket.socket):
    """A socket whose flagless ``recv`` reads up to ``READ_AHEAD`` bytes and serves small reads from memory.

    Not thread-safe for reading (one reader: the connecting thread, then the
    receiver thread); sending is unchanged.
    """

    __slots__ = ("_ahead", "_pos", "_want")

    def __init__(self, family: int, type: int, proto: int, fileno: int) -> None:  # noqa: A002 - socket's names
        super().__init__(family, type, proto, fileno)
        self._ahead = b""  # bytes read ahead, served from _pos on; b"" once all served
        self._pos = 0
        self._want = READ_AHEAD_MIN  # bytes to ask for next (see READ_AHEAD_MIN)

    @property
    def buffered(self) -> bool:
        """True if bytes read ahead are waiting to be served."""
        return bool(self._ahead)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """As ``socket.recv``; blocks (up to the socket's timeout) only when nothing is buffered."""
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
        want = self._want
        data = super().recv(max(bufsize, want))
        if len(data) >= want:
            self._want = min(2 * want, READ_AHEAD)  # more was waiting: read more next time
        elif len(data) < want // 4:
            self._want = max(want // 2, READ_AHEAD_MIN)
        if len(data) <= bufsize:
            return data
        self._ahead, self._pos = data, bufsize
        return data[:bufsize]


def read_ahead_socket(url: str, timeout: Optional[float]) -> Optional[ReadAheadSocket]:
    """Connect a read-ahead socket for a plain ``ws://`` URL; None: let websocket-client connect.

    Blocks up to ``timeout`` for the TCP connection. The socket options are
    websocket-client's defaults (TCP_NODELAY, keepalive), as on the sockets
    it opens itself.

    Raises:
        OSError: the connection failed (``socket.timeout`` when out of time).
    """
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or _proxied(parts.hostname):
        return None
    raw = socket.create_connection((parts.hostname, parts.port or 80), timeout)
    sock = ReadAheadSocket(raw.family, raw.type, raw.proto, raw.detach())
    sock.settimeout(timeout)
    for option in websocket.DEFAULT_SOCKET_OPTION:
        try:
            sock.setsockopt(*option)
        except OSError:  # an option this platform lacks
            pass
    return sock


def _proxied(hostname: str) -> bool:
    """True if the environment names a proxy for ``ws://`` to ``hostname`` (websocket-client's rules)."""
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get("http") or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(hostname, proxies)  # type: ignore[attr-defined]
