"""A minimal LMNT-wire websocket server that sends pre-built audio frames as fast as it can.

    python bench/blaster.py [--frame-bytes 65536]

Prints one JSON line ``{"url", "api_key", "pid"}`` and serves until its
standard input closes. It exists to measure a *client's* receive capacity:
through the real local server one long stream runs at the speed of the
server's per-chunk worker hop (client and server both stay under one core),
so every client measures the same server. Here each connection gets its own
thread, frames are built once and written with ``sendall`` in batches, so
the client is the bottleneck.

Speaks just enough of the current wire (PROTOCOL.md section 1.5): ``ready``
after the init message; one binary frame per word of text; ``flush`` sends
them and ``flush_complete``; ``finish`` sends them and closes with 1000.
Frames are unmasked server frames carrying ``stamp_engine`` chunks (zero
stamps), so clients check the bytes as usual. Loopback only.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from stamp_engine import HEADER, pattern  # noqa: E402

__all__ = ["frame", "serve_connection", "main"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
_BATCH = 16  # frames per sendall


def frame(opcode: int, payload: bytes) -> bytes:
    """Return one unmasked, final websocket frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        end = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def message(self) -> tuple:
        """Return (opcode, payload) of the next client frame (unmasked; no fragments)."""
        b0, b1 = self.exactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.exactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.exactly(8))
        mask = self.exactly(4) if b1 & 0x80 else b"\0\0\0\0"
        data = self.exactly(n)
        if b1 & 0x80 and n:
            key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
            data = (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
        return b0 & 0x0F, data


def serve_connection(sock: socket.socket, chunk: bytes) -> None:
    """Serve one websocket session (see the module docstring)."""
    reader = _Reader(sock)
    try:
        request = reader.until(b"\r\n\r\n").decode("latin-1")
        key = next(line.split(":", 1)[1].strip() for line in request.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        reader.message()  # init
        sock.sendall(frame(1, b'{"type":"ready","request_id":"blast"}'))
        pending = 0
        while True:
            opcode, data = reader.message()
            if opcode == 8:
                sock.sendall(frame(8, struct.pack("!H", 1000)))
                return
            if opcode != 1:
                continue
            message = json.loads(data)
            kind = message.get("type")
            if kind == "text":
                pending += len(message["text"].split())
            elif kind in ("flush", "finish"):
                while pending:
                    batch = min(pending, _BATCH)
                    sock.sendall(chunk * batch)
                    pending -= batch
                if kind == "finish":
                    sock.sendall(frame(8, struct.pack("!H", 1000)))
                    reader.message()  # the client's close answer
                    return
                sock.sendall(frame(1, json.dumps({"type": "flush_complete", "nonce": message["nonce"]}).encode()))
    except (EOFError, OSError, StopIteration, ValueError):
        pass
    finally:
        sock.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame-bytes", type=int, default=65536)
    args = parser.parse_args(argv)
    chunk = frame(2, bytes(HEADER) + pattern(args.frame_bytes))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept_loop() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve_connection, args=(sock, chunk), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    print(json.dumps({"url": f"http://127.0.0.1:{port}", "api_key": "blast", "pid": os.getpid()}), flush=True)
    sys.stdin.read()
    listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
