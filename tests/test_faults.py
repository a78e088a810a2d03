"""The client under real faults: a proxy in front of the real server stalls, cuts and injects frames."""
import gc
import os
import re
import select
import signal
import threading
import time

import pytest

from conftest import our_threads, socket_inodes, wait_until
from faultproxy import server_frame
from lmnt_sync import Speech
from lmnt_sync.errors import ConnectionClosedError, ProtocolError, SessionError
from lmnt_sync.errors import TimeoutError as LmntTimeoutError
from sessionkit import words


def ready_connection(speech, **kwargs):
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", **kwargs)
    conn.wait_ready(timeout=10)
    return conn


def test_stalled_server_times_out_iteration_and_flush(via_proxy, proxy):
    """A server that stops sending: iteration and flush(wait=True) raise TimeoutError within their budget."""
    conn = ready_connection(via_proxy, iter_timeout=0.3, ping_interval=None)
    proxy.stall()
    started = time.monotonic()
    with pytest.raises(LmntTimeoutError):
        for _ in conn:
            pass
    with pytest.raises(LmntTimeoutError, match="0.3 s"):
        conn.append_text("Hello.")
        conn.flush(wait=True, timeout=0.3)
    assert time.monotonic() - started < 3
    conn.close(timeout=0.2)


def test_keepalive_detects_a_dead_peer(via_proxy, proxy):
    """With pings unanswered, a blocked iteration fails within ping_interval + ping_timeout."""
    conn = ready_connection(via_proxy, ping_interval=0.2, ping_timeout=0.3)
    proxy.stall()
    started = time.monotonic()
    with pytest.raises(ConnectionClosedError) as caught:
        list(conn)
    assert time.monotonic() - started < 3
    assert "ping" in str(caught.value.__cause__) or "ping" in str(caught.value)
    conn.close(timeout=0.2)


@pytest.fixture(scope="module")
def pinging_server(no_leaks_after_suite):
    """A real local server that pings a websocket quiet for 2 s (and drops it 1 s after an unanswered ping).

    A second to answer: a busy machine can hold a client's thread off the CPU for a good
    fraction of one.
    """
    from lmnt_sync.server import LocalServer
    from lmnt_sync.server.state import Limits

    with LocalServer(engine="synthetic", limits=Limits(ping_interval=2.0)) as srv:
        yield srv


def test_server_pings_are_answered_and_do_not_end_the_session(pinging_server):
    """A server's pings, while the caller waits and while it sends nothing, keep the session alive."""
    with Speech(api_key=pinging_server.api_key, base_url=pinging_server.url) as speech:
        with speech.synthesize_streaming("lily", format="pcm_s16le", ping_interval=None) as conn:
            conn.wait_ready(timeout=10)
            state = conn._state
            with pytest.raises(LmntTimeoutError):
                conn.recv(timeout=2.5)  # a ping comes while this caller waits
            for _ in range(2):  # and two more with nobody waiting: the receiver thread answers them
                heard = state.last_heard  # every frame, a ping too, moves it
                assert wait_until(lambda: state.last_heard > heard, timeout=20)  # noqa: B023 - called at once
            conn.append_text("Still here after a few pings.")
            conn.finish()
            audio = b"".join(message["audio"] for message in conn)
    assert len(audio) > 0


def test_server_drops_a_client_that_never_answers_its_pings(pinging_server):
    """A client that stops reading (so never answers a ping) is dropped by the server."""
    import websocket

    from server_kit import close, connect, current_init

    ws = connect(pinging_server, current_init(pinging_server), timeout=10)
    try:
        # Nothing reads this socket (reading would answer the ping) until the server has hung up.
        assert wait_until(lambda: _peer_hung_up(ws.sock), timeout=30)
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:  # ready and pings may come first; then the server's close and the end
                opcode, _ = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    ws.recv_data()
    finally:
        close(ws)


def _peer_hung_up(sock) -> bool:
    """True once the peer has shut its side (its FIN arrived), without reading anything (Linux)."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return any(events & (select.POLLRDHUP | select.POLLHUP) for _, events in poller.poll(0))


def test_connection_dropped_without_close_frame(via_proxy, proxy):
    """A cut connection ends iteration with ConnectionClosedError, and the next send raises too."""
    conn = ready_connection(via_proxy)
    proxy.cut()
    with pytest.raises(ConnectionClosedError):
        conn.recv(timeout=5)
    with pytest.raises(ConnectionClosedError):
        conn.append_text("after the cut")
    conn.close()


def test_server_dying_mid_stream_raises_promptly(no_leaks_after_suite):
    """Stopping the server mid-stream fails the blocked caller with ConnectionClosedError."""
    from lmnt_sync.server import LocalServer

    srv = LocalServer(engine="synthetic").start()
    try:
        with Speech(api_key=srv.api_key, base_url=srv.url) as speech:
            conn = ready_connection(speech, return_extras=True)
            conn.append_text("One sentence here. " * 50)
            conn.recv(timeout=5)
            srv.stop()
            with pytest.raises(ConnectionClosedError):
                while True:
                    conn.recv(timeout=5)
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "frame, expected",
    [
        (server_frame("not json"), "invalid JSON"),
        (server_frame('{"type": "surprise"}'), "unknown message type"),
        (server_frame('{"type": "flush_complete", "nonce": "one"}'), "integer nonce"),
        (server_frame('{"type": "timestamps", "timestamps": "soon"}'), "malformed timestamps"),
        (server_frame(b"\xff\xfe", opcode=0x1), "UTF-8|decode"),
    ],
)
def test_malformed_server_messages_give_a_typed_error(via_proxy, proxy, frame, expected):
    """Off-protocol frames fail the session with ProtocolError naming the frame; the receiver ends cleanly."""
    conn = ready_connection(via_proxy)
    proxy.inject(frame)
    with pytest.raises(ConnectionClosedError) as caught:
        conn.recv(timeout=5)
    assert isinstance(caught.value.__cause__, ProtocolError)
    assert re.search(expected, str(caught.value.__cause__))
    conn.close()
    assert conn.closed


def test_huge_frame_is_refused(via_proxy, proxy):
    """A frame over max_frame_bytes fails the session with a ProtocolError stating the sizes."""
    conn = ready_connection(via_proxy, max_frame_bytes=1024)
    proxy.inject(server_frame(b"\x00" * 4096, opcode=0x2))
    with pytest.raises(ConnectionClosedError) as caught:
        conn.recv(timeout=5)
    assert "4096-byte" in str(caught.value.__cause__) and "1024" in str(caught.value.__cause__)
    conn.close()


def test_slow_consumer_gets_backpressure_not_loss(speech):
    """With a small queue and a reader that waits, the queue stays bounded and no word is lost."""
    text = "Every word here must arrive exactly once. " * 40
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, max_queue=8)
    conn.append_text(text)
    conn.finish()
    state = conn._state
    with state.lock:  # the receiver fills the inbox, then waits for room
        assert state.wait_for(lambda: state.inbox.blocked, timeout=30)
        assert state.inbox.qsize() <= 8
    got = list(conn)
    assert words(got) == text.split()
    conn.close()


def test_garbage_collected_session_leaves_nothing(server):
    """An unclosed, unreferenced session is closed by the garbage collector: no thread, no socket."""
    sockets_before = socket_inodes()
    speech = Speech(api_key=server.api_key, base_url=server.url)
    conn = speech.synthesize_streaming("lily")
    conn.wait_ready(10)
    del conn
    gc.collect()
    assert wait_until(lambda: not our_threads("lmnt-sync-receiver"))
    speech.close()
    assert wait_until(lambda: socket_inodes() <= sockets_before)


def test_keyboard_interrupt_in_the_caller_leaves_nothing(speech, ctrl_c_raises):
    """Ctrl-C while blocked in iteration inside `with conn:` closes the session."""
    conn = speech.synthesize_streaming("lily")
    state = conn._state
    # Directed at the main thread, as a terminal's Ctrl-C usually lands, once it waits on the inbox.
    killer = threading.Thread(target=_interrupt_main_when_waiting, args=(state,))
    with pytest.raises(KeyboardInterrupt):
        with conn:
            killer.start()
            for _ in conn:
                pass
    killer.join()
    assert conn.closed


def _interrupt_main_when_waiting(state):
    with state.lock:
        state.wait_for(lambda: state.inbox.getters > 0, timeout=None)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def test_ctrl_c_while_waiting_for_audio_leaves_the_session_usable(speech, ctrl_c_raises):
    """Ctrl-C lands while the main thread waits in recv(): KeyboardInterrupt, and the session goes on intact."""
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True)
    killer = threading.Thread(target=_interrupt_main_when_waiting, args=(conn._state,))
    killer.start()
    with pytest.raises(KeyboardInterrupt):
        conn.recv(timeout=None)
    killer.join()
    conn.append_text("Hello there, still here.")
    conn.finish()
    assert words(list(conn)) == ["Hello", "there,", "still", "here."]
    conn.close()


def test_a_thousand_open_close_cycles_leak_nothing(server):
    """1000 sessions opened and closed end with the thread and fd counts they started with."""
    fds_before = len(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()
    with Speech(api_key=server.api_key, base_url=server.url) as speech:
        for _ in range(1000):
            conn = speech.synthesize_streaming("lily", close_timeout=1.0)
            conn.close()
    assert wait_until(lambda: threading.active_count() == threads_before)
    assert wait_until(lambda: len(os.listdir("/proc/self/fd")) <= fds_before)


def test_server_error_mid_turn_keeps_audio_before_it(speech):
    """Audio received before a server error is still iterated, then SessionError is raised."""
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True)
    conn.append_text("Short words first.")
    conn.flush(wait=True, timeout=10)
    conn.append_text("x" * (1 << 20))  # over the server's message size limit
    got = []
    with pytest.raises(SessionError, match="64 KiB|65536|too"):
        while True:
            got.append(conn.recv(timeout=10))
    assert words(got) == ["Short", "words", "first."]
    conn.close()
