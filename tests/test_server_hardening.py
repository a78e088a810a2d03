"""Hardening of the server against slow, broken or hostile peers (issue 13).

Each test reproduces a failure seen against the real server and checks the
fix over real loopback sockets.
"""
import json
import socket
import time

import pytest
import websocket

from server_kit import BINARY, CLOSE, TEXT, close, current_init, send, synthetic_seconds, ws_url


@pytest.fixture(scope="module")
def eager_pinger(no_leaks_after_suite):
    """A server that pings after 0.4 s without a sign of life (drops 0.2 s after that)."""
    from lmnt_sync.server import LocalServer
    from lmnt_sync.server.state import Limits

    with LocalServer(engine="synthetic", limits=Limits(ping_interval=0.4)) as srv:
        yield srv


def test_a_slow_reader_under_backpressure_is_not_dropped_by_keepalive(eager_pinger):
    """A consumer reading slower than audio is made is alive: every word and all audio arrive.

    Its small receive buffer and paced reads keep the server's send buffer
    full, so a ping waits behind megabytes of audio for far longer than the
    0.2 s a pong is given (aiohttp's heartbeat dropped such a client mid-turn).
    """
    words = [f"word{i}" for i in range(600)]
    text = " ".join(words) + "."
    ws = websocket.create_connection(ws_url(eager_pinger), timeout=30,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)])
    try:
        send(ws, current_init(eager_pinger), {"type": "text", "text": text}, {"type": "finish"})
        audio, said, close_code = bytearray(), [], None
        while close_code is None:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == BINARY:
                audio += data
                time.sleep(len(data) / 3_000_000)  # the backpressure: read at 3 MB/s (pcm is made far faster)
            elif opcode == TEXT:
                message = json.loads(data)
                said += [w["text"] for w in message.get("timestamps", [])]
            elif opcode == CLOSE:
                close_code = int.from_bytes(data[:2], "big")
    finally:
        close(ws)
    assert close_code == 1000
    assert said == words[:-1] + [words[-1] + "."]
    assert len(audio) == pytest.approx(synthetic_seconds(text) * 24000 * 2, abs=24000 * 2 * 0.05)


def _tcp_state(sock):
    """Return the kernel's TCP state of ``sock`` (tcp_info.tcpi_state; 7 is CLOSE)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def test_a_reader_that_stalls_mid_turn_is_still_dropped(eager_pinger):
    """A client that stops reading while audio is queued shows no progress and is dropped (reset)."""
    from conftest import wait_until

    text = " ".join(f"word{i}" for i in range(600)) + "."
    ws = websocket.create_connection(ws_url(eager_pinger), timeout=30,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)])
    try:
        send(ws, current_init(eager_pinger), {"type": "text", "text": text}, {"type": "finish"})
        # Nothing is read: the buffers fill, the queue stops shrinking, no pong comes.
        assert wait_until(lambda: _tcp_state(ws.sock) == 7, timeout=30)
    finally:
        close(ws)


# -- voice store: all or nothing -----------------------------------------------


def _voice_parts(name):
    return [("name", (None, name)), ("file", ("take.wav", b"RIFF" + b"\0" * 64, "audio/wav"))]


def test_a_failed_voice_save_changes_nothing(tmp_path):
    """Create, update and delete that cannot be saved answer 500 and leave every voice as it was.

    The save fails for real: the store's temporary file name is taken by a
    folder (as a full or read-only disk would fail the write). Before the
    fix the change was applied in memory anyway: phantom or resurrected voices.
    """
    from lmnt_sync.server import LocalServer
    from test_server_rest import call

    with LocalServer(engine="synthetic", data_dir=tmp_path) as srv:
        kept = call(srv, "POST", "/v1/ai/voice", files=_voice_parts("Kept")).json()
        uploads = sorted(p.name for p in (tmp_path / "uploads").iterdir())
        (tmp_path / "voices.tmp").mkdir()  # every save now fails
        assert call(srv, "POST", "/v1/ai/voice", files=_voice_parts("Phantom")).status_code == 500
        assert call(srv, "PUT", f"/v1/ai/voice/{kept['id']}", json={"name": "Renamed"}).status_code == 500
        assert call(srv, "PUT", "/v1/ai/voice/lily", json={"starred": True}).status_code == 500
        assert call(srv, "DELETE", f"/v1/ai/voice/{kept['id']}").status_code == 500
        mine = call(srv, "GET", "/v1/ai/voice/list", params={"owner": "me"}).json()
        assert [(v["id"], v["name"]) for v in mine] == [(kept["id"], "Kept")]
        assert call(srv, "GET", "/v1/ai/voice/lily").json()["starred"] is False
        assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == uploads
        (tmp_path / "voices.tmp").rmdir()
    with LocalServer(engine="synthetic", data_dir=tmp_path) as again:  # what was saved is the same
        mine = call(again, "GET", "/v1/ai/voice/list", params={"owner": "me"}).json()
        assert [(v["id"], v["name"]) for v in mine] == [(kept["id"], "Kept")]
