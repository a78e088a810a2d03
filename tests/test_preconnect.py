"""Speech(preconnect=True): a spare connection opened ahead of time serves the next session.

Through tests/faultproxy.py in front of the real local server, so the tests
can count the TCP connections the client opens and drop the spare as an
idle-timeout would.
"""

from conftest import our_threads, socket_inodes, wait_until
from faultproxy import server_frame
from lmnt_sync import Speech
from lmnt_sync.spare import SpareConnection
from lmnt_sync.transport import Transport, websocket_url
from sessionkit import audio, words


def speak(speech, text="Spare connections save round trips."):
    """Open a session, say ``text``, return (messages, the connection's transport)."""
    with speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True) as conn:
        transport = conn._state.transport
        conn.append_text(text)
        conn.finish()
        got = list(conn)
    assert words(got) == text.split()
    assert audio(got)
    return got, transport


def test_the_next_session_uses_the_spare_and_it_is_refilled(server, proxy):
    """Each session takes the connection opened in advance; a new spare follows each one."""
    with Speech(api_key=server.api_key, base_url=proxy.url, preconnect=True) as speech:
        assert wait_until(lambda: proxy.accepted == 1)
        for turn in range(1, 4):
            assert wait_until(lambda: speech._spare._spare is not None)
            spare = speech._spare._spare.transport
            _, used = speak(speech)
            assert used is spare  # no connect of its own
            assert wait_until(lambda: proxy.accepted == turn + 1)  # noqa: B023 - the refill
    assert not our_threads("lmnt-sync-preconnect")


def test_a_spare_the_server_dropped_is_replaced_by_a_fresh_connection(server, proxy):
    """A spare cut without a close frame, or closed by the server, is discarded; the session still works."""
    with Speech(api_key=server.api_key, base_url=proxy.url, preconnect=True) as speech:
        for fault in (proxy.cut, lambda: proxy.inject(server_frame(b"\x03\xe9idle", opcode=0x8))):
            assert wait_until(lambda: speech._spare._spare is not None)
            stale = speech._spare._spare.transport
            fault()
            _, used = speak(speech)
            assert used is not stale


def test_a_spare_the_server_pinged_is_still_used(server, proxy):
    """A keepalive ping on the idle spare is answered when it is taken, and the spare serves the session."""
    with Speech(api_key=server.api_key, base_url=proxy.url, preconnect=True) as speech:
        assert wait_until(lambda: speech._spare._spare is not None)
        spare = speech._spare._spare.transport
        proxy.inject(server_frame(b"are you there", opcode=0x9))
        assert wait_until(lambda: spare.wait_readable(0))  # the ping is waiting on the spare
        _, used = speak(speech)
        assert used is spare


def test_an_idle_spare_is_replaced_after_max_idle(server):
    """After max_idle seconds the thread closes the spare and opens another; nothing accumulates."""
    sockets_before = socket_inodes()
    url = websocket_url(server.url)
    spare = SpareConnection(lambda: Transport.connect(url, timeout=5, io_timeout=None), max_idle=0.2)
    try:
        assert wait_until(lambda: spare._spare is not None)
        first = spare._spare
        assert wait_until(lambda: spare._spare is not None and spare._spare is not first)
        assert len(socket_inodes() - sockets_before) <= 2  # the current spare, maybe one being replaced
    finally:
        spare.close()
    assert not our_threads("lmnt-sync-preconnect")
    assert wait_until(lambda: socket_inodes() <= sockets_before)


def test_an_unreachable_server_only_means_no_spare(server):
    """With the server down, take() returns None (sessions then connect and fail as usual); close() is prompt."""
    url = websocket_url("http://127.0.0.1:9")  # discard port: nothing listens
    spare = SpareConnection(lambda: Transport.connect(url, timeout=1, io_timeout=None))
    try:
        assert spare.take() is None
    finally:
        spare.close(timeout=5)
    assert not our_threads("lmnt-sync-preconnect")


def test_an_unclosed_speech_with_preconnect_is_collected(server):
    """Garbage collection of a Speech that was never closed stops the thread and closes the spare."""
    import gc

    sockets_before = socket_inodes()
    speech = Speech(api_key=server.api_key, base_url=server.url, preconnect=True)
    assert wait_until(lambda: speech._spare._spare is not None)  # noqa: F821 - called before the del
    del speech
    gc.collect()
    assert wait_until(lambda: not our_threads("lmnt-sync-preconnect"))
    assert wait_until(lambda: socket_inodes() <= sockets_before)
