"""The blocking core keeps its promise under a hostile network (issue 11).

Each test drives the real local server, through ``tests/faultproxy.py`` where
the network must misbehave, and asserts that every blocking call returns
within the time it was given (plus ``MARGIN``, for a busy 2-core machine)
and that no thread or descriptor is left. Synchronisation is on conditions
(the session's own), never on sleeps.
"""
import gc
import os
import resource
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import our_threads, socket_inodes, wait_until
from lmnt_sync import Speech
from lmnt_sync.errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    LocalProtocolError,
    SessionError,
)
from lmnt_sync.errors import TimeoutError as LmntTimeoutError
from sessionkit import words

MARGIN = 1.5  # seconds a call may overrun its budget: thread wake-ups on a loaded machine
CHUNK = "All work and no play makes a dull voice. " * 1500  # ~60 KB, under the server's 64 KiB per message


class Timed:
    """``with Timed(budget):`` asserts the block took at most ``budget + MARGIN`` seconds."""

    def __init__(self, budget):
        self.budget = budget

    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.took = time.monotonic() - self.started
        assert self.took <= self.budget + MARGIN, f"took {self.took:.2f} s for a {self.budget} s budget"


def in_thread(target):
    """Run ``target`` in a thread; return (thread, outcome list: ['ok', value] or ['raised', exc])."""
    outcome = []

    def run():
        try:
            outcome[:] = ["ok", target()]
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome[:] = ["raised", exc]

    thread = threading.Thread(target=run, name="test-caller")
    thread.start()
    return thread, outcome


def wait_state(conn, predicate, timeout=30):
    """Wait on the session's own condition until ``predicate(state)``."""
    state = conn._state
    with state.lock:
        assert state.wait_for(lambda: predicate(state), timeout=timeout)


def fill_until_blocked(conn, stop):
    """Send text until a send blocks on the full socket (the caller's thread), or ``stop`` is set."""
    while not stop.is_set():
        conn.append_text(CHUNK)


@pytest.fixture
def nothing_left(server):
    """After the test: no receiver thread, no socket beyond those it started with."""
    before = socket_inodes()
    yield
    assert wait_until(lambda: not our_threads("lmnt-sync-receiver")), our_threads()
    assert wait_until(lambda: socket_inodes() <= before)


def test_close_wakes_every_waiter_when_the_peer_stops_answering(nothing_left, via_proxy, proxy):
    """io_timeout=None, peer frozen: close(timeout=1) returns in time and wakes recv, iteration and flush(wait)."""
    conn = via_proxy.synthesize_streaming("lily", format="pcm_s16le", io_timeout=None, ping_interval=None)
    conn.wait_ready(10)
    proxy.stall()
    receiver = conn._thread
    waiters = [in_thread(lambda: conn.recv()), in_thread(lambda: list(conn)),
               in_thread(lambda: conn.flush(wait=True, timeout=None))]
    wait_state(conn, lambda s: s.inbox.getters == 2)
    with Timed(1.0):
        conn.close(timeout=1.0)
    for thread, _ in waiters:
        thread.join(MARGIN)
        assert not thread.is_alive()
    outcomes = [outcome for _, outcome in waiters]
    assert outcomes[0][0] == "raised" and isinstance(outcomes[0][1], ConnectionClosedOK)
    assert outcomes[1] == ["ok", []]
    assert outcomes[2][0] == "raised" and isinstance(outcomes[2][1], (ConnectionClosedOK, LocalProtocolError))
    assert not receiver.is_alive()


def test_a_peer_that_stops_reading_cannot_hold_close_or_flush_past_their_budget(nothing_left, via_proxy, proxy):
    """A sender blocked on a full socket: flush(wait, timeout=1) and close(timeout=1) still keep their budgets."""
    conn = via_proxy.synthesize_streaming("lily", format="pcm_s16le", io_timeout=None, ping_interval=None)
    conn.wait_ready(10)
    proxy.stall()
    stop = threading.Event()
    sender, sent = in_thread(lambda: fill_until_blocked(conn, stop))
    wait_state(conn, lambda s: not s.transport.wait_writable(0) and s.send_lock.locked())
    with Timed(1.0), pytest.raises(LmntTimeoutError, match="flush"):
        conn.flush(wait=True, timeout=1.0)
    stop.set()
    with Timed(1.0):
        conn.close(timeout=1.0)
    sender.join(MARGIN)
    assert not sender.is_alive()
    assert sent[0] == "raised" and isinstance(sent[1], (LocalProtocolError, ConnectionClosed))


def test_a_send_that_times_out_ends_the_session(nothing_left, via_proxy, proxy):
    """Half a frame may be on the wire after a send timeout: the session ends with a typed error,
    nothing later is sent."""
    conn = via_proxy.synthesize_streaming("lily", format="pcm_s16le", io_timeout=0.5, ping_interval=None)
    conn.wait_ready(10)
    proxy.stall()
    with pytest.raises(LmntTimeoutError, match="sending timed out"):
        with Timed(60):  # however much the kernel buffers, then io_timeout
            while True:
                conn.append_text(CHUNK)
    with pytest.raises(ConnectionClosedError) as later:
        conn.append_text("this must never reach the server")
    assert isinstance(later.value.__cause__, LmntTimeoutError)
    assert wait_until(lambda: conn.closed)
    conn.close()


def test_flush_wait_that_cannot_fit_the_inbox_says_so_at_once(nothing_left, speech):
    """A turn longer than max_queue with nobody iterating: flush(wait) names max_queue instead of
    timing out; nothing is lost."""
    text = "Every word of this long turn arrives in order. " * 20
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, max_queue=4)
    conn.append_text(text)
    with Timed(10), pytest.raises(LocalProtocolError, match="max_queue=4"):
        conn.flush(wait=True, timeout=60)
    conn.finish()
    assert words(list(conn)) == text.split()
    conn.close()


def test_flush_wait_completes_while_another_thread_iterates(nothing_left, speech):
    """The same long turn with a thread iterating: flush(wait) completes, the iterator gets everything."""
    text = "Every word of this long turn arrives in order. " * 20
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, max_queue=4)
    reader, got = in_thread(lambda: list(conn))
    wait_state(conn, lambda s: s.inbox.getters == 1)
    conn.append_text(text)
    conn.flush(wait=True, timeout=60)
    conn.finish()
    reader.join(60)
    assert words(got[1]) == text.split()
    conn.close()


def test_polling_on_a_slow_link_never_blocks(nothing_left, via_proxy, proxy):
    """recv(timeout=0) and recv(timeout=0.2) return in time while frames trickle in byte by byte."""
    proxy.trickle(size=16, pause=0.01)
    conn = via_proxy.synthesize_streaming("lily", format="pcm_s16le", return_extras=True)
    conn.append_text("A slow link brings this sentence in small pieces.")
    conn.finish()
    got, worst = [], 0.0
    while True:
        for timeout in (0, 0.2):
            started = time.monotonic()
            try:
                got.append(conn.recv(timeout=timeout))
            except LmntTimeoutError:
                pass
            except ConnectionClosedOK:
                assert worst <= 0.2 + MARGIN, worst
                assert words(got) == ["A", "slow", "link", "brings", "this", "sentence", "in", "small", "pieces."]
                conn.close()
                return
            worst = max(worst, time.monotonic() - started)


FORK_SCRIPT = textwrap.dedent('''
    import os, sys
    from lmnt_sync import Speech
    url, key = sys.argv[1], sys.argv[2]
    with Speech(api_key=key, base_url=url, preconnect=True) as speech:
        conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True)
        conn.wait_ready(10)
        assert speech._spare.wait_ready(10)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a child that simply exits: atexit, finalizers, garbage collection
        assert os.waitpid(pid, 0)[1] == 0
        conn.append_text("The parent still speaks.")
        conn.finish()
        said = [s["text"] for m in conn for s in m.get("timestamps", [])]
        second = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True)
        second.append_text("So does its spare.")
        second.finish()
        said += [s["text"] for m in second for s in m.get("timestamps", [])]
        print(" ".join(said))
''')


def test_a_forked_child_that_exits_leaves_the_parents_session_and_spare(server, proxy):
    """fork() then a plain exit in the child: the parent's session and its preconnect spare still work."""
    result = subprocess.run([sys.executable, "-c", FORK_SCRIPT, proxy.url, server.api_key],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["The", "parent", "still", "speaks.", "So", "does", "its", "spare."]
    assert proxy.accepted == 2  # the second session used the spare: no third connection


def test_garbage_collection_never_blocks_the_collecting_thread(nothing_left, via_proxy, proxy):
    """An abandoned connection to a frozen peer is collected at once, even by a thread holding its lock."""
    conn = via_proxy.synthesize_streaming("lily", io_timeout=None, ping_interval=None)
    conn.wait_ready(10)
    proxy.stall()
    state, receiver, finalizer = conn._state, conn._thread, conn._finalizer
    del conn
    with Timed(0.5):
        with state.lock:  # as the receiver thread would, if the collector ran in it
            finalizer()
    with Timed(0.5):
        gc.collect()
    receiver.join(MARGIN)
    assert not receiver.is_alive()


def test_two_threads_noticing_one_loss_between_turns_both_go_on(nothing_left, via_proxy, proxy):
    """With reconnect, two threads sending after the same between-turns loss both succeed; one new session."""
    conn = via_proxy.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, reconnect=True)
    conn.append_text("First turn.")
    conn.flush(wait=True, timeout=10)
    proxy.cut()
    wait_state(conn, lambda s: s.ended)  # the loss is known: both threads will run into it
    barrier = threading.Barrier(2)

    def speak(text):
        barrier.wait()
        conn.append_text(text)
        return conn.flush(wait=False)

    # Spaces: either order reads as two words.
    threads = [in_thread(lambda: speak("One. ")), in_thread(lambda: speak("Two. "))]
    for thread, _ in threads:
        thread.join(30)
    assert [outcome[0] for _, outcome in threads] == ["ok", "ok"], threads
    assert conn.reconnects == 1
    conn.finish()
    said = words(list(conn))
    assert said[0] == "First" and sorted(said[2:]) == ["One.", "Two."]
    conn.close()


def test_a_send_racing_the_loss_resumes(nothing_left, via_proxy, proxy):
    """A send right after the server's FIN, before or after the receiver notices it, resumes instead of failing."""
    conn = via_proxy.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, reconnect=True)
    for turn in range(5):
        conn.append_text(f"Turn {turn}.")
        conn.flush(wait=True, timeout=10)
        transport = conn._state.transport
        proxy.cut()
        assert wait_until(transport.peer_closed)  # on the wire; the receiver may or may not have seen it
    conn.append_text("Last.")
    conn.finish()
    said = words(list(conn))
    assert said == [w for turn in range(5) for w in ("Turn", f"{turn}.")] + ["Last."]
    assert conn.reconnects == 5
    conn.close()


def test_a_close_frame_already_received_is_reported_as_such(nothing_left):
    """The server closed (1001, shutting down) before our send: the error says so, not 'Broken pipe'."""
    from lmnt_sync.server import LocalServer

    with LocalServer(engine="synthetic") as srv:
        speech = Speech(api_key=srv.api_key, base_url=srv.url)
        conn = speech.synthesize_streaming("lily")
        conn.wait_ready(10)
    wait_state(conn, lambda s: s.ended)
    with pytest.raises(ConnectionClosedError) as caught:
        conn.append_text("anyone there?")
    assert "1001" in str(caught.value) and "pipe" not in str(caught.value).lower()
    conn.close()
    speech.close()


def test_a_session_past_1024_descriptors_lives(nothing_left, speech):
    """With more than 1024 fds open (select()'s limit), an idle session waits and then works as usual."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, io_timeout=0.3,
                                           ping_interval=0.2, ping_timeout=5)
        state = conn._state
        assert state.transport._sock.fileno() > 1024
        conn.wait_ready(10)
        # Idle: the receiver sleeps in poll() until a keepalive is due, pings, and hears the
        # pong: the only frame an idle session gets. (A ping is out for ~1 ms of every 0.2 s:
        # watching ping_sent itself would race with the pong.)
        quiet_since = state.last_heard
        assert wait_until(lambda: state.last_heard > quiet_since, timeout=10)
        assert state.ended is False
        conn.append_text("Still alive.")
        conn.finish()
        assert words(list(conn)) == ["Still", "alive."]
        conn.close()
    finally:
        for fd in held:
            os.close(fd)


def test_every_raise_is_a_fresh_exception_chained_to_the_cause(nothing_left, speech):
    """After a server error, each call raises a new exception (no growing traceback) chained to the same cause."""
    conn = speech.synthesize_streaming("lily")
    conn.append_text("x" * (1 << 20))  # over the server's message size limit
    raised = []
    for _ in range(3):
        with pytest.raises(SessionError) as caught:
            conn.recv(timeout=10)
        raised.append(caught.value)
    assert len({id(e) for e in raised}) == 3
    assert len({id(e.__cause__) for e in raised}) == 1 and raised[0].__cause__ is not None
    depth = [len(list(_frames(e.__traceback__))) for e in raised]
    assert depth[0] == depth[1] == depth[2]
    conn.close()


def _frames(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_a_key_with_a_newline_never_shows(nothing_left, server, caplog):
    """A key read from a file (trailing newline) works; a key with a newline inside is refused without showing it."""
    import logging

    caplog.set_level(logging.DEBUG)
    with Speech(api_key=server.api_key + "\n", base_url=server.url) as speech:
        with speech.synthesize_streaming("lily") as conn:
            conn.wait_ready(10)
    secret = "sk-top-secret\n-second-line"
    with pytest.raises(Exception) as caught:
        Speech(api_key=secret, base_url=server.url)
    shown = str(caught.value) + repr(caught.value) + caplog.text
    assert "top-secret" not in shown and "second-line" not in shown


def test_a_close_frame_read_late_is_still_reported_as_the_close(nothing_left, via_proxy, proxy):
    """The server's close frame waits behind a full inbox while the server hangs up: the close,
    not 'Broken pipe', is reported."""
    import struct

    from faultproxy import server_frame

    conn = via_proxy.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, max_queue=1)
    conn.append_text("Enough words to fill a one message inbox.")
    conn.flush()
    wait_state(conn, lambda s: s.inbox.blocked)  # the receiver reads nothing now
    proxy.inject(server_frame(struct.pack("!H", 1001) + b"going away", opcode=0x8))
    proxy.cut()  # the server is gone before our answering close frame could reach it
    transport = conn._state.transport
    assert wait_until(transport.peer_closed)
    transport.ping()  # a write to the closed peer, answered by a reset: later writes fail (EPIPE)
    assert wait_until(lambda: _reset_seen(transport._sock))
    with pytest.raises(ConnectionClosedError) as caught:
        for _ in conn:
            pass
    assert caught.value.code == 1001 and "pipe" not in str(caught.value).lower()
    conn.close()


def _reset_seen(sock):
    """True once the peer answered with a TCP reset (poll reports an error or hang-up)."""
    import select

    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
