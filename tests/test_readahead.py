"""The read-ahead socket: one kernel read serves websocket-client's many small reads, nothing lost or reordered."""
import socket

from lmnt_sync.readahead import READ_AHEAD, READ_AHEAD_MIN, ReadAheadSocket, read_ahead_socket


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


def _read_exactly(reader, n):
    got = bytearray()
    while len(got) < n:
        got += reader.recv(4096)
    return bytes(got)


def test_kernel_reads_grow_in_a_burst_and_shrink_back_in_a_trickle():
    """Small frames are read READ_AHEAD_MIN at a time (malloc serves 256 KiB
    with an mmap per read); while reads come back full the ask doubles."""
    reader, writer = _pair()
    writer.settimeout(10)  # a burst that did not fit the socket buffer fails here, it does not hang
    with reader, writer:
        for _ in range(5):  # a trickle of 5 KB frames
            writer.sendall(b"t" * 5000)
            assert _read_exactly(reader, 5000) == b"t" * 5000
            assert reader._want == READ_AHEAD_MIN
        burst = bytes(range(250)) * 600  # 150 000 bytes, all queued before the first read
        writer.sendall(burst)
        assert _read_exactly(reader, len(burst)) == burst
        # 16 KiB, 32 KiB and 64 KiB came back full; the last read (128 KiB
        # asked, 35 312 got) was not small enough to halve it.
        assert reader._want == 8 * READ_AHEAD_MIN <= READ_AHEAD
        for _ in range(3):  # back to a trickle: each small read halves the next ask
            writer.sendall(b"u" * 5000)
            assert _read_exactly(reader, 5000) == b"u" * 5000
        assert reader._want == READ_AHEAD_MIN


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
