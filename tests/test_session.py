"""StreamingConnection against the real local server over loopback."""
import io
import threading
import time

import av
import pytest

from lmnt_sync import Speech
from lmnt_sync.errors import (
    APIConnectionError,
    ConfigurationError,
    ConnectionClosedOK,
    LocalProtocolError,
    MissingAPIKeyError,
    SessionError,
)
from lmnt_sync.errors import TimeoutError as LmntTimeoutError
from sessionkit import audio, drain, words

TEXT = "The quick brown fox jumps over the lazy dog. It was not amused, and said so twice! Then it slept."


def test_the_guide_loop_writes_a_decodable_mp3(speech):
    """append_text, finish, and `for m in conn: out.write(m["audio"])` give one valid mp3."""
    conn = speech.synthesize_streaming("lily", format="mp3")
    for start in range(0, len(TEXT), 5):
        conn.append_text(TEXT[start:start + 5])
    conn.finish()
    out = io.BytesIO()
    for message in conn:
        out.write(message["audio"])
    conn.close()
    out.seek(0)
    with av.open(out) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        assert stream.codec_context.name.startswith("mp3") and stream.rate == 24000
    assert samples / 24000 > 1.0


def test_one_thread_appends_while_another_iterates(speech):
    """Text sent from one thread while another iterates arrives whole: every word timed once, in order."""
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True)
    received = []
    reader = threading.Thread(target=lambda: received.extend(conn), name="test-reader")
    reader.start()
    for word in TEXT.split(" "):
        conn.append_text(word + " ")
        time.sleep(2 * 0.001)
    conn.finish()
    reader.join(30)
    assert not reader.is_alive()
    assert words(received) == TEXT.split()
    assert len(audio(received)) > 0
    conn.close()


def test_two_threads_iterating_one_connection_get_each_message_once(speech):
    """Two threads iterating the same connection (each may read the socket itself) share the messages:
    none lost, none twice."""
    text = " ".join(f"word{i}" for i in range(300))
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True)
    received = {"a": [], "b": []}
    readers = [threading.Thread(target=lambda k=k: received[k].extend(conn), name=f"test-reader-{k}") for k in received]
    for reader in readers:
        reader.start()
    for start in range(0, len(text), 37):
        conn.append_text(text[start:start + 37])
    conn.finish()
    for reader in readers:
        reader.join(30)
    assert not any(reader.is_alive() for reader in readers)
    conn.close()
    both = received["a"] + received["b"]
    assert sorted(words(both)) == sorted(text.split())
    with speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True) as alone:
        alone.append_text(text)
        alone.finish()
        assert len(audio(both)) == len(audio(list(alone)))


def test_flush_wait_is_an_exact_barrier(speech):
    """After flush(wait=True) returns, every word sent before it has already been received."""
    with speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True) as conn:
        conn.append_text("Hello there, no sentence end here")
        nonce = conn.flush(wait=True, timeout=10)
        assert nonce == 1
        assert words(drain(conn)) == ["Hello", "there,", "no", "sentence", "end", "here"]
        conn.append_text("Second turn")
        assert conn.flush(wait=True, timeout=10) == 2
        assert words(drain(conn)) == ["Second", "turn"]


def test_reset_drops_buffered_text_and_queued_audio(speech):
    """After reset(), only speech of text sent after it is iterated."""
    with speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True) as conn:
        conn.append_text(TEXT * 3)  # speaking starts at once: some audio is in flight
        time.sleep(0.05)
        conn.reset(wait=True, timeout=10)
        conn.append_text("alpha beta gamma")
        conn.flush(wait=True, timeout=10)
        assert words(drain(conn)) == ["alpha", "beta", "gamma"]


def test_finish_loses_nothing(speech):
    """finish() then iterating yields every word and audio matching the timings."""
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True, sample_rate=16000)
    conn.append_text(TEXT * 4)
    conn.finish()
    messages = list(conn)
    conn.close()
    assert words(messages) == (TEXT * 4).split()
    seconds = len(audio(messages)) / 2 / 16000
    last = [m for m in messages if m.get("timestamps")][-1]["timestamps"][-1]
    assert last["start"] + last["duration"] <= seconds + 0.05


def test_close_from_a_third_thread_unblocks_the_iterating_caller(speech):
    """close() from another thread ends a blocked iteration quietly and joins the receiver."""
    conn = speech.synthesize_streaming("lily", format="pcm_s16le")
    got = []
    reader = threading.Thread(target=lambda: got.extend(conn), name="test-reader")
    reader.start()
    time.sleep(0.1)
    assert reader.is_alive()  # blocked: nothing to read yet
    started = time.monotonic()
    closer = threading.Thread(target=conn.close, name="test-closer")
    closer.start()
    reader.join(5)
    assert not reader.is_alive() and time.monotonic() - started < 5
    assert got == []
    closer.join(5)
    assert conn.closed  # close() returns only once the receiver thread has been joined
    conn.close()  # idempotent


def test_sending_after_finish_or_close_is_a_local_error(speech):
    """Misuse raises LocalProtocolError at once."""
    with speech.synthesize_streaming("lily") as conn:
        conn.finish()
        with pytest.raises(LocalProtocolError):
            conn.append_text("late")
    with pytest.raises(LocalProtocolError, match="closed"):
        conn.append_text("later")


def test_server_error_surfaces_with_request_id_in_both_threads(speech):
    """An unknown voice: iteration raises SessionError with the request id; the next send raises too."""
    conn = speech.synthesize_streaming("no-such-voice-xyz")
    with pytest.raises(SessionError) as caught:
        for _ in conn:
            pass
    assert caught.value.type == "invalid_request_error" or caught.value.type == "not_found_error"
    assert "no-such-voice-xyz" in caught.value.message
    assert caught.value.request_id
    with pytest.raises(SessionError):
        conn.append_text("more")
    conn.close()


def test_wrong_key_is_an_authentication_error(server):
    """A wrong key gets the server's authentication_error, never echoing the key."""
    with Speech(api_key="wrong-key-123", base_url=server.url) as speech:
        conn = speech.synthesize_streaming("lily")
        with pytest.raises(SessionError) as caught:
            conn.recv(timeout=10)
        conn.close()
    assert caught.value.type == "authentication_error"
    assert "wrong-key-123" not in str(caught.value)


def test_recv_timeout_states_the_budget(speech):
    """recv(timeout) raises our TimeoutError (also a builtin TimeoutError) naming the budget."""
    with speech.synthesize_streaming("lily") as conn:
        with pytest.raises(TimeoutError, match="0.05 s"):
            conn.recv(timeout=0.05)


def test_polling_with_timeout_zero_receives_everything(speech):
    """A GUI-style poll (recv(timeout=0) every few ms, never blocking) still gets every message."""
    with speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True) as conn:
        conn.append_text(TEXT * 3)
        conn.finish()
        got, tick = [], threading.Event()
        while True:
            try:
                got.append(conn.recv(timeout=0))
            except LmntTimeoutError:
                tick.wait(0.005)  # the GUI's own event loop would run here
            except ConnectionClosedOK:
                break
        assert words(got) == (TEXT * 3).split()


def test_wait_ready_returns_the_request_id(speech):
    """The current wire confirms the session with a request id."""
    with speech.synthesize_streaming("lily") as conn:
        assert conn.wait_ready(timeout=10)
        assert conn.request_id == conn.wait_ready()


def test_legacy_wire_streams_with_durations_and_buffer_empty(speech):
    """protocol='legacy' with extras yields audio with durations, and flush(wait) uses buffer_empty."""
    with speech.synthesize_streaming("lily", protocol="legacy", format="raw", return_extras=True) as conn:
        conn.append_text("Hello legacy world")
        conn.flush(wait=True, timeout=10)
        first = drain(conn)
        assert words(first) == ["Hello", "legacy", "world"]
        assert first[-1]["buffer_empty"] is True and all("durations" in m for m in first)
        conn.append_text(TEXT)
        conn.finish()
        rest = list(conn)
    assert words(rest) == TEXT.split()
    assert len(audio(rest)) > 0


def test_legacy_reset_is_refused(speech):
    """The legacy wire has no reset: a clear local error."""
    with speech.synthesize_streaming("lily", protocol="legacy") as conn:
        with pytest.raises(LocalProtocolError, match="legacy"):
            conn.reset()


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"format": "flac"}, "format"),
        ({"sample_rate": 44100}, "sample_rate"),
        ({"speed": 1.2}, "speed"),
        ({"protocol": "v3"}, "protocol"),
    ],
)
def test_bad_session_arguments_are_named(speech, kwargs, named):
    """Invalid arguments raise ConfigurationError naming the argument, before connecting."""
    with pytest.raises(ConfigurationError, match=named):
        speech.synthesize_streaming("lily", **kwargs)


def test_missing_key_names_the_variable(server, monkeypatch):
    """A server given but no key: the error names LMNT_API_KEY."""
    monkeypatch.delenv("LMNT_API_KEY", raising=False)
    monkeypatch.setenv("LMNT_BASE_URL", server.url)
    with pytest.raises(MissingAPIKeyError, match="LMNT_API_KEY"):
        Speech()


def test_no_base_url_means_the_embedded_server_not_the_dead_cloud(monkeypatch):
    """LMNT's hosted API is gone: with no base URL, Speech() starts the embedded server and speaks."""
    monkeypatch.delenv("LMNT_BASE_URL", raising=False)
    monkeypatch.setenv("LMNT_API_KEY", "my-old-lmnt-key")
    with Speech() as speech:
        assert speech.base_url.startswith("http://127.0.0.1:")
        with speech.synthesize_streaming("lily", format="pcm_s16le") as conn:
            conn.append_text("Hello there.")
            conn.finish()
            assert len(audio(list(conn))) > 0


def test_local_false_without_a_base_url_says_what_happened(monkeypatch):
    """local=False and no base URL: a ConfigurationError that says why there is no default."""
    monkeypatch.delenv("LMNT_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="shut down.*LMNT_BASE_URL"):
        Speech(api_key="k", local=False)


@pytest.mark.parametrize("key, fine", [("abc123\n", True), ("  abc123 ", True), ("abc\n123", False),
                                       ("abc\x00", False), ("ab\u00e9c", False)])
def test_keys_are_checked_before_any_header_or_log(server, key, fine):
    """A trailing newline is dropped; a control or non-ASCII character inside is refused without showing the key."""
    if fine:
        with Speech(api_key=key.replace("abc123", server.api_key), base_url=server.url) as speech:
            with speech.synthesize_streaming("lily") as conn:
                assert conn.wait_ready(timeout=10)
        return
    with pytest.raises(ConfigurationError, match="api_key has a control, space or non-ASCII character") as info:
        Speech(api_key=key, base_url=server.url)
    assert key.strip() not in str(info.value) and "abc" not in str(info.value)


def test_key_never_in_repr(server):
    """Neither Speech, its REST client nor a connection shows the key."""
    with Speech(api_key="secret-key-456", base_url=server.url) as speech:
        conn = speech.synthesize_streaming("lily")
        shown = repr(speech) + repr(speech.rest) + repr(conn)
        conn.close()
    assert "secret-key-456" not in shown


def test_unreachable_server_is_a_connection_error():
    """Connecting to a closed port raises APIConnectionError promptly."""
    with Speech(api_key="k", base_url="http://127.0.0.1:9") as speech:
        with pytest.raises(APIConnectionError):
            speech.synthesize_streaming("lily", connect_timeout=2)


def test_speech_close_closes_its_sessions(server):
    """Closing Speech closes every session it opened."""
    speech = Speech(api_key=server.api_key, base_url=server.url)
    conns = [speech.synthesize_streaming("lily") for _ in range(3)]
    speech.close()
    assert all(conn.closed for conn in conns)
    with pytest.raises(LocalProtocolError):
        conns[0].append_text("x")


def test_a_closed_speech_says_so_instead_of_connection_refused(server):
    """synthesize_streaming after Speech.close() is a local error that says the Speech is closed."""
    speech = Speech(api_key=server.api_key, base_url=server.url)
    speech.close()
    with pytest.raises(LocalProtocolError, match="this Speech is closed"):
        speech.synthesize_streaming("lily")


def test_legacy_options_on_the_current_wire_name_the_fix(speech):
    """speed on the current wire: the message names the option and how to use it."""
    expected = "speed is an option of the legacy protocol only: pass protocol='legacy'"
    with pytest.raises(ConfigurationError, match=expected):
        speech.synthesize_streaming("lily", speed=1.2)


def test_closed_connection_iterates_to_a_quiet_end(speech):
    """Iterating after close() ends at once; recv raises ConnectionClosedOK."""
    conn = speech.synthesize_streaming("lily")
    conn.close()
    assert list(conn) == []
    with pytest.raises(ConnectionClosedOK):
        conn.recv(timeout=1)
