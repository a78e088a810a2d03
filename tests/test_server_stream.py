"""The streaming websocket of the local server, spoken raw over real sockets."""
import asyncio
import json

import aiohttp
import pytest

from lmnt_sync.server import Limits, LocalServer
from server_kit import close, connect, current_init, legacy_init, read, send, ws_url

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def srv():
    """A synthetic-engine server shared by this module."""
    with LocalServer(engine="synthetic") as server:
        yield server


@pytest.fixture(scope="module")
def tight():
    """A server with small limits: 2 sessions, 1 KiB messages, 2000 buffered characters."""
    limits = Limits(max_message_bytes=1024, max_buffered_chars=2000)
    with LocalServer(engine="synthetic", max_sessions=2, limits=limits) as server:
        yield server


def speak(server, init, *messages):
    """Open a session, send ``messages``, read to the close; return the transcript."""
    ws = connect(server, init)
    try:
        send(ws, *messages)
        return read(ws)
    finally:
        close(ws)


# -- current protocol ------------------------------------------------------


def test_ready_comes_first_with_the_upgrade_request_id(srv):
    """ready is the first message and its request_id equals the upgrade's request-id header."""
    ws = connect(srv, current_init(srv))
    header = ws.getheaders()["request-id"]
    send(ws, {"type": "text", "text": "Hi."}, {"type": "finish"})
    transcript = read(ws)
    close(ws)
    assert transcript.events[0] == ("json", {"type": "ready", "request_id": header})
    assert transcript.close_code == 1000


def test_every_word_gets_a_timestamp_after_its_audio(srv):
    """Timestamps cover every word in order, each message right after an audio frame."""
    text = "Hello there, my friend. This is a longer test! Does it work? Yes "
    pieces = [text[i:i + 7] for i in range(0, len(text), 7)]  # splits mid-word
    transcript = speak(srv, current_init(srv), *({"type": "text", "text": p} for p in pieces),
                       {"type": "finish"})
    assert transcript.words() == text.split()
    kinds = transcript.kinds()
    for i, kind in enumerate(kinds):
        if kind == "timestamps":
            assert kinds[i - 1] == "audio"


def test_flush_complete_follows_all_audio_of_its_flush(srv):
    """flush_complete(n) comes after every word flushed before it, and nothing else follows."""
    ws = connect(srv, current_init(srv))
    send(ws, {"type": "text", "text": "First part without an end"}, {"type": "flush", "nonce": 1})
    first = read(ws, until="flush_complete")
    assert first.messages("type", "flush_complete") == [{"type": "flush_complete", "nonce": 1}]
    assert first.words() == ["First", "part", "without", "an", "end"]
    send(ws, {"type": "flush", "nonce": 2})
    second = read(ws, until="flush_complete")
    assert second.kinds() == ["flush_complete"], "an empty flush is acknowledged at once"
    send(ws, {"type": "text", "text": "Second part."}, {"type": "flush", "nonce": 3}, {"type": "finish"})
    rest = read(ws)
    assert rest.words() == ["Second", "part."] and rest.kinds()[-1] == "flush_complete"
    assert rest.close_code == 1000
    close(ws)


def test_api_1_2_timestamps_are_cumulative_until_a_flush(srv):
    """1.2: starts accumulate across chunks and restart at 0.0 after each flush."""
    ws = connect(srv, current_init(srv, **{"lmnt-version": "1.2"}))
    send(ws, {"type": "text", "text": "One two. Three four."}, {"type": "flush", "nonce": 1},
         {"type": "text", "text": "Five six."}, {"type": "finish"})
    stamps = {w["text"]: w["start"] for m in read(ws).messages("type", "timestamps") for w in m["timestamps"]}
    close(ws)
    assert stamps["One"] == 0.0 and stamps["Three"] > stamps["two."] > 0
    assert stamps["Five"] == 0.0


def test_api_1_1_timestamps_restart_with_every_chunk(srv):
    """1.1: each timestamps message counts from the start of its own audio chunk."""
    transcript = speak(srv, current_init(srv, **{"lmnt-version": "1.1"}),
                       {"type": "text", "text": "One two. Three four. "}, {"type": "finish"})
    firsts = [m["timestamps"][0] for m in transcript.messages("type", "timestamps")]
    assert [(w["text"], w["start"]) for w in firsts] == [("One", 0.0), ("Three", 0.0)]


def test_reset_drops_buffered_text(srv):
    """reset discards unspoken text; reset_complete comes back and later text is spoken."""
    ws = connect(srv, current_init(srv))
    send(ws, {"type": "text", "text": "never spoken at all"}, {"type": "reset", "nonce": 1},
         {"type": "text", "text": "Spoken instead."}, {"type": "flush", "nonce": 2})
    transcript = read(ws, until="flush_complete")
    close(ws)
    assert transcript.words() == ["Spoken", "instead."]
    acks = [k for k in transcript.kinds() if k.endswith("_complete")]
    assert acks == ["reset_complete", "flush_complete"]


def test_finish_speaks_the_rest_then_closes_normally(srv):
    """finish: the remaining audio, no flush_complete, then close code 1000."""
    transcript = speak(srv, current_init(srv), {"type": "text", "text": "No sentence end here"},
                       {"type": "finish"})
    assert transcript.words() == ["No", "sentence", "end", "here"]
    assert "flush_complete" not in transcript.kinds()
    assert transcript.close_code == 1000 and transcript.audio


def test_text_after_finish_is_an_error(srv):
    """A message after finish gets an invalid_request_error, then a normal close."""
    transcript = speak(srv, current_init(srv), {"type": "text", "text": SENTENCE * 3},
                       {"type": "finish"}, {"type": "text", "text": "late"})
    errors = transcript.messages("type", "error")
    assert errors and errors[0]["error"]["type"] == "invalid_request_error"
    assert "finish" in errors[0]["error"]["message"] and transcript.close_code == 1000


def test_text_split_mid_word_is_joined_without_separator(srv):
    """Text chunks are concatenated as sent, so words split across chunks survive."""
    transcript = speak(srv, current_init(srv), {"type": "text", "text": "Sup"},
                       {"type": "text", "text": "ercalifragilistic is a wo"}, {"type": "text", "text": "rd."},
                       {"type": "finish"})
    assert transcript.words() == ["Supercalifragilistic", "is", "a", "word."]


# -- legacy and command/ack ------------------------------------------------


def test_legacy_extras_come_before_every_audio_frame(srv):
    """Legacy with extras: one extras frame (durations, buffer_empty) before each audio frame."""
    transcript = speak(srv, legacy_init(srv), {"text": "Hello legacy world. And more "}, {"flush": True},
                       {"text": "Last words."}, {"eof": True})
    kinds = transcript.kinds()
    assert kinds[0::2] == ["buffer_empty,durations"] * (len(kinds) // 2)
    assert kinds[1::2] == ["audio"] * (len(kinds) // 2) and len(kinds) % 2 == 0
    assert transcript.words("durations") == ["Hello", "legacy", "world.", "And", "more", "Last", "words."]
    assert transcript.messages("buffer_empty")[-1]["buffer_empty"] is True
    assert transcript.close_code == 1000


def test_legacy_string_flags_from_the_v2_sdk(srv):
    """return_extras="True" and sample_rate="24000" (v2.0 SDK style) turn extras on."""
    init = legacy_init(srv, send_extras=None, return_extras="True", sample_rate="24000", format="raw")
    transcript = speak(srv, init, {"text": "String flags."}, {"eof": True})
    assert transcript.words("durations") == ["String", "flags."]


def test_legacy_without_extras_sends_only_binary_frames(srv):
    """Legacy without extras: every server frame is binary audio."""
    transcript = speak(srv, legacy_init(srv, send_extras=False), {"text": "Only audio."}, {"eof": True})
    assert set(transcript.kinds()) == {"audio"} and transcript.close_code == 1000


def test_command_ack_generation(srv):
    """protocol_version 2: command flush/reset are acknowledged with complete + nonce."""
    init = legacy_init(srv, protocol_version=2)
    transcript = speak(srv, init, {"text": "Acked text."}, {"command": "flush", "nonce": 1},
                       {"command": "reset", "nonce": 2}, {"text": "Kept."}, {"command": "eof"})
    acks = transcript.messages("complete")
    assert acks == [{"complete": "flush", "nonce": 1}, {"complete": "reset", "nonce": 2}]
    # The reset may drop the flushed sentence if it was not spoken yet (a barge-in).
    assert transcript.words("durations") in (["Kept."], ["Acked", "text.", "Kept."])
    assert transcript.close_code == 1000


# -- errors ----------------------------------------------------------------

AUTH_CASES = [
    pytest.param(lambda s: current_init(s, **{"X-API-Key": "wrong"}), "current", id="current-wrong-key"),
    pytest.param(lambda s: current_init(s, **{"X-API-Key": None}), "current", id="current-missing-key"),
    pytest.param(lambda s: legacy_init(s, **{"X-API-Key": "wrong"}), "legacy", id="legacy-wrong-key"),
    pytest.param(lambda s: legacy_init(s, **{"X-API-Key": "wrong"}, protocol_version=2), "legacy",
                 id="command-wrong-key"),
]


@pytest.mark.parametrize("make_init, shape", AUTH_CASES)
def test_auth_failure_gets_the_generations_error_then_close(srv, make_init, shape):
    """A wrong or missing key gets that generation's error message, then close 1000."""
    transcript = speak(srv, make_init(srv), {"type": "text", "text": "hi"})
    assert transcript.close_code == 1000
    (_, message), = transcript.events
    if shape == "current":
        assert message["type"] == "error" and message["error"]["type"] == "authentication_error"
        assert message["request_id"].startswith("req_")
    else:
        assert list(message) == ["error"] and "key" in message["error"].lower()
    assert srv.api_key not in json.dumps(message)


BAD_INPUT_CASES = [
    pytest.param(lambda s: current_init(s, voice="no-such-voice"), None, "not_found_error", id="unknown-voice"),
    pytest.param(lambda s: current_init(s, format="flac"), None, "invalid_request_error", id="bad-format"),
    pytest.param(lambda s: current_init(s, sample_rate=44100), None, "invalid_request_error", id="bad-rate"),
    pytest.param(lambda s: {"type": "text", "text": "too early"}, None, "invalid_request_error", id="text-before-init"),
    pytest.param(current_init, "not json", "invalid_request_error", id="invalid-json"),
    pytest.param(current_init, b"\x00\x01", "invalid_request_error", id="binary-frame"),
    pytest.param(current_init, {"type": "sing"}, "invalid_request_error", id="unknown-type"),
]


@pytest.mark.parametrize("make_init, follow_up, slug", BAD_INPUT_CASES)
def test_bad_input_gets_an_error_then_a_clean_close(srv, make_init, follow_up, slug):
    """Invalid voice/format/rate/JSON/text-before-init/binary frames: error shape, close 1000."""
    ws = connect(srv, make_init(srv))
    if isinstance(follow_up, bytes):
        ws.send_binary(follow_up)
    elif isinstance(follow_up, str):
        ws.send(follow_up)
    elif follow_up is not None:
        send(ws, follow_up)
    transcript = read(ws)
    close(ws)
    errors = transcript.messages("type", "error")
    assert [e["error"]["type"] for e in errors] == [slug]
    assert transcript.close_code == 1000


# -- limits ----------------------------------------------------------------


def test_oversized_message_is_refused_and_others_carry_on(tight):
    """A message over the size limit gets an error naming the limit; a new session still works."""
    transcript = speak(tight, current_init(tight), {"type": "text", "text": "x" * 2000})
    error = transcript.messages("type", "error")[0]["error"]
    assert error["type"] == "invalid_request_error" and "1024" in error["message"]
    assert speak(tight, current_init(tight), {"type": "text", "text": "Fine."}, {"type": "finish"}).audio


def test_a_one_mebibyte_message_gets_the_error_frame_at_default_limits(srv):
    """A 1 MiB message (over the 64 KiB default) gets the error frame and a clean close."""
    transcript = speak(srv, current_init(srv), {"type": "text", "text": "x" * (1 << 20)})
    error = transcript.messages("type", "error")[0]["error"]
    assert "65536" in error["message"] and transcript.close_code == 1000


def test_too_much_buffered_text_is_refused(tight):
    """Buffered text beyond max_buffered_chars gets an error instead of growing memory."""
    words = "word " * 190  # 950 characters per message, no sentence end
    transcript = speak(tight, current_init(tight), *({"type": "text", "text": words} for _ in range(3)))
    error = transcript.messages("type", "error")[0]["error"]
    assert "too much text" in error["message"] and "2000" in error["message"]


def test_too_many_sessions_are_refused_while_others_are_served(tight):
    """Beyond max_sessions a session gets rate_limit_error; open ones keep working."""
    first, second = connect(tight, current_init(tight)), connect(tight, current_init(tight))
    try:
        read(first, until="ready")
        read(second, until="ready")
        refused = speak(tight, current_init(tight))
        assert refused.messages("type", "error")[0]["error"]["type"] == "rate_limit_error"
        send(first, {"type": "text", "text": "Still served."}, {"type": "finish"})
        assert read(first).words() == ["Still", "served."]
    finally:
        close(first)
        close(second)


def test_a_hundred_concurrent_sessions(srv):
    """100 concurrent sessions on the synthetic engine all get their audio and a clean close."""

    async def one(http, i):
        async with http.ws_connect(ws_url(srv)) as ws:
            await ws.send_json(current_init(srv, format="mp3"))
            await ws.send_json({"type": "text", "text": f"Session {i} says hello. "})
            await ws.send_json({"type": "finish"})
            audio = 0
            async for msg in ws:
                audio += len(msg.data) if msg.type == aiohttp.WSMsgType.BINARY else 0
            return audio, ws.close_code

    async def main():
        async with aiohttp.ClientSession() as http:
            return await asyncio.gather(*(one(http, i) for i in range(100)))

    results = asyncio.run(main())
    assert all(audio > 0 and code == 1000 for audio, code in results)
