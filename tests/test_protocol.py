"""Sans-I/O tests of the client protocol: literal frames in, events and frames out."""
import json

import pytest

from lmnt_sync import protocol as p
from lmnt_sync.errors import ConfigurationError, LocalProtocolError


def current(extras=False):
    proto = p.ClientProtocol(p.CURRENT, extras)
    proto.receive_text('{"type": "ready", "request_id": "req_1"}')
    return proto


def test_current_init_matches_the_official_sdk_field_order():
    """The current init carries the SDK's fields, in its order, leaving out unset ones."""
    proto = p.ClientProtocol(p.CURRENT, return_extras=True)
    frame = proto.init_message("k", "lily", {"format": "mp3", "sample_rate": 16000, "language": None})
    assert frame == json.dumps(
        {"X-API-Key": "k", "lmnt-version": "1.2", "voice": "lily", "format": "mp3", "return_timestamps": True,
         "sample_rate": 16000}
    )


def test_legacy_init_always_sends_send_extras():
    """The legacy init always carries send_extras, as lmnt 1.1.4 does."""
    proto = p.ClientProtocol(p.LEGACY)
    frame = json.loads(proto.init_message("k", "lily", {"format": "raw", "speed": 1.5}))
    assert list(frame) == ["X-API-Key", "voice", "format", "speed", "send_extras"]
    assert frame["send_extras"] is False


def test_current_client_messages_and_shared_nonce():
    """Flush and reset share one nonce counter starting at 1."""
    proto = current()
    assert proto.text("Hi ") == '{"type": "text", "text": "Hi "}'
    assert proto.flush() == ('{"type": "flush", "nonce": 1}', 1)
    assert proto.reset() == ('{"type": "reset", "nonce": 2}', 2)
    assert proto.finish() == '{"type": "finish"}'


def test_legacy_client_messages_match_the_legacy_sdk():
    """Legacy text, flush and eof frames are byte-identical to lmnt 1.1.4's."""
    proto = p.ClientProtocol(p.LEGACY)
    assert proto.text("Hi") == '{"text": "Hi"}'
    assert proto.flush() == ('{"flush": true}', None)
    assert proto.finish() == '{"eof": true}'


def test_legacy_has_no_reset():
    """reset() on the legacy wire is a local error, and the state is unchanged."""
    proto = p.ClientProtocol(p.LEGACY)
    with pytest.raises(LocalProtocolError, match="legacy"):
        proto.reset()
    assert proto.state == "OPEN"


@pytest.mark.parametrize("action", ["text", "flush", "reset", "finish"])
def test_nothing_can_be_sent_after_finish(action):
    """After finish every send raises LocalProtocolError."""
    proto = current()
    proto.finish()
    call = {"text": lambda: proto.text("x"), "flush": proto.flush, "reset": proto.reset, "finish": proto.finish}[action]
    with pytest.raises(LocalProtocolError, match="finishing"):
        call()


def test_text_must_be_a_string():
    """Non-string text is a ConfigurationError naming the type."""
    with pytest.raises(ConfigurationError, match="bytes"):
        current().text(b"x")


def test_typed_server_messages_decode_to_events():
    """Each typed server message becomes its event."""
    proto = p.ClientProtocol(p.CURRENT, True)
    assert proto.receive_text('{"type": "ready", "request_id": "r"}') == [p.Ready("r")]
    assert proto.receive_binary(b"\x01\x02") == [p.Audio(b"\x01\x02")]
    stamps = [{"text": "Hi", "start": 0.0, "duration": 0.2}]
    assert proto.receive_text(json.dumps({"type": "timestamps", "timestamps": stamps})) == [p.Timestamps(stamps)]
    assert proto.receive_text('{"type": "flush_complete", "nonce": 3}') == [p.FlushComplete(3)]
    assert proto.receive_text('{"type": "reset_complete", "nonce": 4}') == [p.ResetComplete(4)]
    error = '{"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}, "request_id": "r"}'
    assert proto.receive_text(error) == [p.ServerError("invalid_request_error", "bad", "r")]
    assert proto.receive_close(1000) == [p.Closed(1000)]


@pytest.mark.parametrize(
    "frame, summary",
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "JSON list"),
        ('{"type": "bogus"}', "unknown message type 'bogus'"),
        ('{"type": "flush_complete", "nonce": "1"}', "integer nonce"),
        ('{"type": "timestamps", "timestamps": [{"text": 1}]}', "malformed timestamps"),
        ('{"type": "error", "error": 5}', "malformed error"),
    ],
)
def test_malformed_server_frames_become_violations(frame, summary):
    """Bad server input never raises: it is a Violation naming the frame, and the state is FAILED."""
    proto = current()
    [event] = proto.receive_text(frame)
    assert isinstance(event, p.Violation) and summary in event.summary
    assert proto.state == "FAILED"


def test_audio_before_ready_is_a_violation():
    """On the current wire the server must say ready before audio."""
    proto = p.ClientProtocol(p.CURRENT)
    [event] = proto.receive_binary(b"\x00" * 10)
    assert isinstance(event, p.Violation) and "before 'ready'" in event.summary


def test_legacy_extras_attach_to_the_following_audio():
    """With extras, each JSON frame describes the binary frame after it."""
    proto = p.ClientProtocol(p.LEGACY, return_extras=True)
    extras = {"durations": [{"text": "Hi", "start": 0, "duration": 0.3}], "buffer_empty": True}
    assert proto.receive_text(json.dumps(extras)) == []
    [audio] = proto.receive_binary(b"abc")
    assert audio == p.Audio(b"abc", extras)


def test_legacy_without_extras_treats_text_as_error_or_violation():
    """Without extras, a legacy text frame is either an error or off-protocol."""
    proto = p.ClientProtocol(p.LEGACY)
    assert proto.receive_text('{"error": "Invalid voice"}') == [p.ServerError(None, "Invalid voice", None)]
    [event] = p.ClientProtocol(p.LEGACY).receive_text('{"durations": []}')
    assert isinstance(event, p.Violation)


def test_legacy_audio_without_its_extras_frame_is_a_violation():
    """With extras on, a binary frame must be preceded by its JSON frame."""
    [event] = p.ClientProtocol(p.LEGACY, True).receive_binary(b"x")
    assert isinstance(event, p.Violation) and "extras" in event.summary


def test_long_frames_are_summarised_not_echoed_whole():
    """Violation summaries cut long frames short."""
    [event] = current().receive_text('{"type": "' + "x" * 5000 + '"}')
    assert len(event.summary) < 400


# -- bookkeeping: what the session knows about the conversation, from literal frames --


def test_ready_records_the_request_id():
    """'ready' sets ready and request_id; nothing before it."""
    proto = p.ClientProtocol(p.CURRENT)
    assert not proto.ready and proto.request_id is None
    proto.receive_text('{"type": "ready", "request_id": "req_9"}')
    assert proto.ready and proto.request_id == "req_9"


def test_between_turns_follows_text_flush_and_its_acknowledgement():
    """Between turns only once every text was flushed and the flush acknowledged."""
    proto = current()
    assert proto.between_turns
    proto.text("Hi")
    assert proto.text_unflushed and not proto.between_turns
    _, nonce = proto.flush()
    assert not proto.text_unflushed and proto.last_flush == nonce and not proto.between_turns
    proto.receive_text(json.dumps({"type": "flush_complete", "nonce": nonce}))
    assert proto.flushes_done == nonce and proto.between_turns


def test_reset_moves_the_epoch_until_acknowledged():
    """A reset counts as sent at once and done at its reset_complete; between turns after it."""
    proto = current()
    proto.text("Drop me")
    _, nonce = proto.reset()
    assert (proto.resets_sent, proto.resets_done) == (1, 0) and not proto.between_turns
    events = proto.receive_text(json.dumps({"type": "reset_complete", "nonce": nonce}))
    assert events == [p.ResetComplete(nonce)]
    assert (proto.resets_sent, proto.resets_done) == (1, 1) and proto.between_turns


def test_finish_ends_the_turns_for_good():
    """After finish, never between turns, and nothing more can be sent."""
    proto = current()
    proto.finish()
    assert proto.finish_sent and not proto.between_turns
    with pytest.raises(LocalProtocolError, match="cannot send text on a session that is finishing"):
        proto.text("late")


def test_a_reopened_session_continues_the_nonces():
    """first_nonce: flushes and resets continue after the lost session's last nonce, and count as done."""
    proto = p.ClientProtocol(p.CURRENT, first_nonce=7)
    proto.receive_text('{"type": "ready"}')
    assert proto.between_turns
    assert proto.flush()[1] == 8


def test_legacy_buffer_empty_is_counted():
    """Legacy extras with buffer_empty count the acknowledgements flush(wait=True) waits for."""
    proto = p.ClientProtocol(p.LEGACY, return_extras=True)
    proto.receive_text('{"durations": [], "buffer_empty": false}')
    proto.receive_binary(b"\x00\x00")
    proto.receive_text('{"durations": [], "buffer_empty": true}')
    proto.receive_binary(b"\x00\x00")
    assert proto.buffer_empty_count == 1
    assert not proto.between_turns  # the legacy wire has no acknowledgements to resume on
