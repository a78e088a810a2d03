"""A TCP proxy in front of the real local server that misbehaves on command.

Fault injection for client tests: the client talks to the real server
through this proxy, which can stall the line, cut it without a close frame,
inject raw websocket frames towards the client, or terminate TLS with a
self-signed certificate.
"""
import socket
import ssl
import struct
import threading
import time

__all__ = ["FaultProxy", "server_frame"]


def server_frame(payload, opcode=0x1):
    """Encode one unmasked websocket frame (server to client); opcode 1 text, 2 binary."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


class FaultProxy:
    """Forward 127.0.0.1:<port> to ``target``; faults apply to every live connection."""

    def __init__(self, target_port, ssl_context=None):
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # close() does not wake a blocked accept(); polling does
        self.port = self._listener.getsockname()[1]
        self._ssl = ssl_context
        self._lock = threading.Lock()
        self._pairs = []
        self._threads = []
        self._flowing = threading.Event()  # cleared while stalled: pumps wait on it
        self._flowing.set()
        self._trickle = None  # (bytes, seconds): how the server's bytes reach clients on a slow link
        self._stopping = False
        self.accepted = 0  # connections accepted so far
        self._accepter = threading.Thread(target=self._accept, name="test-proxy-accept")
        self._accepter.start()

    @property
    def url(self):
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    def stall(self):
        """Stop forwarding in both directions (pings go unanswered); sockets stay open.

        The proxy also stops reading (after at most one chunk per direction),
        so a client that keeps sending fills its socket: a peer that stopped reading.
        """
        self._flowing.clear()

    def trickle(self, size=64, pause=0.02):
        """Forward the server's bytes to clients ``size`` bytes every ``pause`` s: a slow link."""
        self._trickle = (size, pause)

    def cut(self):
        """Drop every connection at once, with no websocket close frame."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            for sock in (client, upstream):
                _hard_close(sock)

    def inject(self, raw):
        """Send raw bytes (e.g. ``server_frame(...)``) to every client, between forwarded chunks."""
        with self._lock:
            for client, _ in self._pairs:
                try:
                    client.sendall(raw)
                except OSError:  # that connection has ended already
                    pass

    def close(self):
        """Stop the proxy and join its threads."""
        self._stopping = True
        self._flowing.set()
        self._listener.close()
        self.cut()
        for thread in [self._accepter] + self._threads:
            thread.join(5)

    def _is_upstream(self, sock):
        with self._lock:
            return any(sock is upstream for _, upstream in self._pairs)

    def _accept(self):
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self._ssl is not None:
                try:
                    client = self._ssl.wrap_socket(client, server_side=True)
                except (ssl.SSLError, OSError):
                    client.close()  # the client refused our certificate
                    continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(src, dst), name="test-proxy-pump")
                thread.start()
                self._threads.append(thread)

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            self._flowing.wait()
            if self._stopping:
                break
            try:
                if self._trickle is not None and src is not dst and self._is_upstream(src):
                    size, pause = self._trickle
                    for start in range(0, len(data), size):
                        with self._lock:
                            dst.sendall(data[start:start + size])
                        time.sleep(pause)  # the slow link itself, not a synchronisation
                else:
                    with self._lock:
                        dst.sendall(data)
            except OSError:
                break
        for sock in (src, dst):
            _hard_close(sock)


def _hard_close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
