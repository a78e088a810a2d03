"""The read-ahead socket: one kernel read serves websocket-client's many small reads, nothing lost or reordered."""
import socket

from lmnt_sync.readahead import READ_AHEAD, ReadAheadSocket, read_ahead_socket


def _pair():
    a, b = socket.socketpair()
    return ReadAheadSocket(a.family, a.type, a.proto, a.detach()), b


def test_small_reads_are_served_from_one_read_in_order():
    reader, writer = _pair()
    with reader, writer:
        data = bytes(range(256)) * 200  # 51200 bytes, one write (fits the socket buffer)
        writer.sendall(data)
        got = []
        first = reader.recv(2)  # like a frame header: the kernel read takes what is queued
        got.append(first)
        assert reader.buffered
        while sum(map(len, got)) < len(data):
            got.append(reader.recv(16384))
        assert b"".join(got) == data
        assert not reader.buffered  # all served, no memory held


def test_reads_never_take_more_than_asked_or_cross_a_later_write():
    reader, writer = _pair()
    with reader, writer:
        writer.sendall(b"abc")
        assert reader.recv(1) == b"a" and reader.buffered
        assert reader.recv(5) == b"bc"  # the rest of what was read ahead, not a blocking wait for more
        writer.sendall(b"def")
        assert reader.recv(10) == b"def"


def test_recv_with_flags_is_the_plain_socket_call():
    reader, writer = _pair()
    with reader, writer:
        writer.sendall(b"xyz")
        assert reader.recv(3, socket.MSG_PEEK) == b"xyz"
        assert not reader.buffered
        assert reader.recv(3) == b"xyz"


def test_only_plain_ws_urls_get_one(monkeypatch):
    """wss:// keeps websocket-client's TLS socket; a proxied URL keeps the library's proxy path."""
    assert read_ahead_socket("wss://127.0.0.1:1/v1/ai/speech/stream", 1) is None
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert read_ahead_socket("ws://example.invalid/v1/ai/speech/stream", 1) is None
    assert READ_AHEAD >= 65536 + 14  # one whole 64 KiB audio frame and its header per read
