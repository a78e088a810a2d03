"""synthesize_streaming(reconnect=True): a session lost between turns resumes on a new one.

The client talks to the real local server through tests/faultproxy.py, which
drops connections (no close frame) or injects the server's close frame on
command. Between turns nothing may be lost or spoken twice; in the middle
of a turn the loss must surface as an error, as without the option.
"""
import threading

import pytest

from conftest import wait_until
from faultproxy import FaultProxy, server_frame
from lmnt_sync import Speech
from lmnt_sync.errors import ConfigurationError, ConnectionClosedError
from sessionkit import audio, drain, words

TURNS = ["Hello there, this is the first turn.", "And here comes the second one.", "A third turn to close."]


def open_resumable(speech, **kwargs):
    return speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, reconnect=True, **kwargs)


def lose_between_turns(conn, proxy, text=TURNS[0]):
    """Say ``text`` as one whole turn, then drop the line; returns once the client has noticed."""
    conn.append_text(text)
    conn.flush(wait=True, timeout=10)
    old = conn._state
    proxy.cut()
    assert wait_until(lambda: old.ended)


def close_frame(code, reason=b""):
    return server_frame(code.to_bytes(2, "big") + reason, opcode=0x8)


@pytest.mark.parametrize("fault", ["cut", "server close"])
def test_a_session_lost_between_turns_resumes_with_nothing_lost(via_proxy, proxy, fault):
    """An iterating thread sees every word of every turn exactly once; flush nonces keep counting."""
    conn = open_resumable(via_proxy)
    received = []
    reader = threading.Thread(target=lambda: received.extend(conn), name="test-reader")
    reader.start()
    for number, turn in enumerate(TURNS, start=1):
        conn.append_text(turn)
        assert conn.flush(wait=True, timeout=10) == number
        if number < len(TURNS):
            proxy.cut() if fault == "cut" else proxy.inject(close_frame(1000))
            assert wait_until(lambda: conn.reconnects == number)  # noqa: B023 - the reader noticed and reopened
    conn.finish()
    reader.join(10)
    assert not reader.is_alive()
    assert words(received) == " ".join(TURNS).split()
    assert proxy.accepted == len(TURNS)
    conn.close()


def test_a_sender_resumes_and_the_lost_sessions_audio_is_still_iterated(via_proxy, proxy):
    """Nobody iterating: the next append_text reopens; iteration then yields the old audio first."""
    conn = open_resumable(via_proxy)
    lose_between_turns(conn, proxy)
    conn.append_text(TURNS[1])
    conn.flush(wait=True, timeout=10)
    assert conn.reconnects == 1
    got = drain(conn)
    assert words(got) == (TURNS[0] + " " + TURNS[1]).split()
    assert len(audio(got)) > 0
    conn.close()


def test_a_reset_after_resuming_also_drops_the_lost_sessions_audio(via_proxy, proxy):
    """reset() drops all audio queued here, including what a lost session left un-iterated."""
    conn = open_resumable(via_proxy)
    lose_between_turns(conn, proxy)
    conn.reset(wait=True, timeout=10)
    assert conn.reconnects == 1
    conn.append_text(TURNS[1])
    conn.flush(wait=True, timeout=10)
    assert words(drain(conn)) == TURNS[1].split()
    conn.close()


def test_a_session_lost_mid_turn_fails_as_without_the_option(via_proxy, proxy):
    """Text sent but not yet flushed and acknowledged: the loss raises, nothing reopens."""
    conn = open_resumable(via_proxy)
    conn.append_text(TURNS[0])
    conn.flush(wait=True, timeout=10)
    conn.append_text("This text is in the server's buffer when the line drops")
    proxy.cut()
    with pytest.raises(ConnectionClosedError):
        for _ in range(100):
            conn.recv(timeout=5)
    with pytest.raises(ConnectionClosedError):
        conn.append_text("more")
    assert conn.reconnects == 0
    assert proxy.accepted == 1
    conn.close()


def test_without_the_option_a_loss_between_turns_still_fails(via_proxy, proxy):
    """The default stays strict: reconnect is opt-in."""
    conn = via_proxy.synthesize_streaming("lily", format="pcm_s16le", return_extras=True)
    lose_between_turns(conn, proxy)
    with pytest.raises(ConnectionClosedError):
        conn.append_text(TURNS[1])
    conn.close()


def test_reopening_that_fails_says_so(server):
    """If the server is gone for good, the reopening error names the lost turn boundary."""
    proxy = FaultProxy(server.port)
    speech = Speech(api_key=server.api_key, base_url=proxy.url)
    conn = open_resumable(speech, connect_timeout=2)
    conn.append_text(TURNS[0])
    conn.flush(wait=True, timeout=10)
    old = conn._state
    proxy.close()  # stops listening and drops the connection
    assert wait_until(lambda: old.ended)
    with pytest.raises(ConnectionClosedError, match="between turns and reopening it failed"):
        conn.append_text(TURNS[1])
    conn.close()
    speech.close()


def test_reconnect_needs_the_current_wire(speech):
    with pytest.raises(ConfigurationError, match="reconnect"):
        speech.synthesize_streaming("lily", protocol="legacy", reconnect=True)
