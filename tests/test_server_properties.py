"""Property tests (hypothesis) of the server's decoders and of what a session speaks.

Sans I/O (lmnt_sync.server.wire, apierror.json_object):
* every valid init message and client message of the three generations
  round-trips to the configuration / commands it stands for; the client's
  own encoder (lmnt_sync.protocol) is the source of the valid messages;
* any text, JSON value, object of known keys with any values, or byte string
  decodes to a message or raises ApiError with a known slug, never anything else;
* every frame the server encodes decodes in lmnt_sync's client decoder.

Over loopback (a real local server, synthetic engine):
* any JSON, byte or form body to the REST speech and voice-update routes gets
  200 or a 4xx in LMNT's error shape for the requested API version, never a 5xx;
* nothing is lost: random texts cut into random chunks (mid-word too) with
  random flushes, then finish, come back with every word exactly once in
  order (the words of each flushed piece, ``str.split()``: punctuation stays
  on its word, as in the server's timeline), in API 1.2, 1.1 and legacy
  sessions, pcm_s16le/pcm_f32le at 8/16/24 kHz. The decoded audio matches the
  timings: in 1.2 each flush's audio lasts its last word's end plus the
  synthetic engine's 50 ms trailing gap (tolerance 2 ms); in 1.1 and legacy
  (starts per frame), placed on their frames, the last word ends one gap
  before the audio does.

Example counts: 60-500 per sans-I/O property, 60-150 per REST property,
25 per generation for "nothing lost" (about 20 s in all).
"""
import base64
import json

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lmnt_sync import protocol as client
from lmnt_sync.codecs import STREAMING_FORMATS, Encoder
from lmnt_sync.server.apierror import STATUS_BY_SLUG, ApiError, json_object
from lmnt_sync.server.wire import (
    Finish,
    Flush,
    Generation,
    Reset,
    Text,
    ack_frame,
    decode_json,
    error_frame,
    parse_command,
    parse_init,
    ready_frame,
    timings_frame,
)
from server_kit import close, connect, current_init, decode, decoded_or_api_error, legacy_init, read, send

# Text with every code point, lone surrogates included (JSON can carry them).
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)
KNOWN_KEYS = ["X-API-Key", "lmnt-version", "protocol_version", "type", "voice", "format", "sample_rate",
              "language", "return_timestamps", "send_extras", "return_extras", "speed", "text", "nonce",
              "command", "flush", "eof"]
# Objects made of the keys the decoders look at, with any values: these reach deep branches.
known_key_objects = st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=6)
rates = st.sampled_from([8000, 16000, 24000])
flags = st.sampled_from([True, False, "True", "False", "true", 1, 0])


# -- sans I/O: round trips -------------------------------------------------


@st.composite
def init_messages(draw):
    """Return (init message, expected config fields) for any generation."""
    generation = draw(st.sampled_from(list(Generation)))
    voice = draw(st.text(min_size=1, max_size=20).filter(str.strip))
    init = {"X-API-Key": draw(st.text(max_size=20)), "voice": voice}
    aliases = ("raw", "mulaw") if generation is not Generation.CURRENT else ()
    fmt = draw(st.none() | st.sampled_from(STREAMING_FORMATS + aliases))
    if fmt is not None:
        init["format"] = fmt
    rate = draw(st.none() | rates)
    if rate is not None:
        init["sample_rate"] = draw(st.sampled_from([rate, str(rate)]))
    timings = draw(flags)
    canonical = {"raw": "pcm_s16le", "mulaw": "ulaw", None: "mp3"}.get(fmt, fmt)
    expected = {"generation": generation, "voice": voice, "api_key": init["X-API-Key"], "format": canonical,
                "sample_rate": rate or (8000 if canonical == "ulaw" else 24000),
                "timings": timings in (True, "True", "true", 1)}
    if generation is Generation.CURRENT:
        version = draw(st.sampled_from(["1.1", "1.2", None]))
        init.update({"lmnt-version": version} if version else {"type": "init"})
        init["return_timestamps"] = timings
        expected["api_version"] = version or "1.2"
    else:
        init[draw(st.sampled_from(["send_extras", "return_extras"]))] = timings
        init.update(draw(st.fixed_dictionaries({}, optional={"speed": st.floats(0.25, 2.0), "language": st.just("en"),
                                                             "conversational": st.booleans()})))
        if generation is Generation.COMMAND:
            init["protocol_version"] = draw(st.sampled_from([2, "2"]))
        expected["api_version"] = None
    return init, expected


@settings(max_examples=300, deadline=None)
@given(init_messages())
def test_valid_init_messages_round_trip(case):
    """A valid init message, as JSON text, parses to exactly the configuration it asks for."""
    init, expected = case
    config = parse_init(decode_json(json.dumps(init)))
    assert {key: getattr(config, key) for key in expected} == expected


actions = st.lists(st.one_of(st.tuples(st.just("text"), st.text(max_size=40)),
                             st.sampled_from([("flush",), ("reset",), ("finish",)])), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([client.CURRENT, client.LEGACY]), actions)
def test_client_encoded_messages_round_trip(generation, steps):
    """Whatever lmnt_sync's encoder sends parses, on the server, to the same commands."""
    proto = client.ClientProtocol(generation)
    style = Generation.CURRENT if generation == client.CURRENT else Generation.LEGACY
    for step in steps:
        if step[0] == "reset" and generation == client.LEGACY:
            continue  # the legacy wire has no reset
        if step[0] == "text":
            frame, expected = proto.text(step[1]), [Text(step[1])]
        elif step[0] == "finish":
            frame, expected = proto.finish(), [Finish()]
        else:
            frame, nonce = getattr(proto, step[0])()
            expected = [(Flush if step[0] == "flush" else Reset)(nonce, style)]
        assert parse_command(decode_json(frame)) == expected
        if step[0] == "finish":
            return


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["flush", "reset"]), st.none() | st.integers(), st.text(max_size=40), st.booleans())
def test_command_ack_and_legacy_combined_messages_round_trip(kind, nonce, text, flush):
    """command/ack messages keep their nonce; a legacy {text, flush} is text then flush, in order."""
    message = {"command": kind} if nonce is None else {"command": kind, "nonce": nonce}
    assert parse_command(decode_json(json.dumps(message))) == [
        (Flush if kind == "flush" else Reset)(nonce, Generation.COMMAND)]
    expected = [Text(text)] + ([Flush(None, Generation.LEGACY)] if flush else [])
    assert parse_command(decode_json(json.dumps({"text": text, "flush": flush}))) == expected


# -- sans I/O: any input ---------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(any_char), json_values.map(json.dumps), known_key_objects.map(json.dumps)))
def test_any_text_frame_gives_a_message_or_an_api_error(raw):
    """Any text frame, as the first or a later message, decodes or raises ApiError; nothing else."""
    message = decoded_or_api_error(decode_json, raw)
    if isinstance(message, dict):
        decoded_or_api_error(parse_init, message)
        decoded_or_api_error(parse_command, message)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")))
def test_any_rest_body_bytes_give_an_object_or_an_api_error(raw):
    """The REST body decoder takes any bytes: a JSON object or ApiError."""
    assert isinstance(decoded_or_api_error(json_object, raw, "request body"), (dict, ApiError))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a": ', '{"type": ']))
@example(50_000, "[")
def test_any_nesting_depth_gives_a_message_or_an_api_error(depth, opener):
    """Deep nesting (past the json module's recursion limit) is an ApiError, not RecursionError."""
    assert isinstance(decoded_or_api_error(decode_json, opener * depth), (dict, ApiError))


# -- sans I/O: server encoders -> client decoder ---------------------------

words = st.lists(st.fixed_dictionaries({"text": st.text(max_size=10), "start": st.floats(0, 100),
                                        "duration": st.floats(0, 10)}), max_size=4)
server_steps = st.lists(st.one_of(
    st.tuples(st.just("audio"), st.binary(max_size=16), words, st.booleans()),
    st.tuples(st.just("ack"), st.sampled_from(["flush", "reset"]), st.integers()),
), max_size=10)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([("1.2", True), ("1.2", False), (None, True), (None, False)]), server_steps,
       st.none() | st.sampled_from(sorted(STATUS_BY_SLUG)))
def test_server_frames_decode_in_the_client(variant, steps, slug):
    """Frames the server encodes (ready, audio+timings, acks, error) decode without a Violation."""
    version, timings = variant
    init = {"voice": "v", "return_timestamps": timings, "send_extras": timings}
    config = parse_init({**init, "lmnt-version": version} if version else init)
    proto = client.ClientProtocol(client.CURRENT if version else client.LEGACY, timings)
    events = []
    if version:
        events += proto.receive_text(ready_frame("req_1"))
    for step in steps:
        if step[0] == "audio":
            extras = timings_frame(config, step[2], step[3]) if timings else None
            if extras and config.extras_before_audio:
                events += proto.receive_text(extras)
            events += proto.receive_binary(step[1])
            if extras and not config.extras_before_audio:
                events += proto.receive_text(extras)
        elif version:  # legacy flushes have no acknowledgement
            events += proto.receive_text(ack_frame(step[1], step[2], config.generation))
    if slug:
        events += proto.receive_text(error_frame(config.generation, ApiError(slug, "boom"), "req_1"))
    assert not [e for e in events if isinstance(e, client.Violation)]
    expected = [slug if version else None] if slug else []
    assert [e.type for e in events if isinstance(e, client.ServerError)] == expected


# -- over loopback: REST parsing -------------------------------------------


@pytest.fixture(scope="module")
def rest(server):
    """(server, requests.Session, a created voice id) for the REST properties."""
    with requests.Session() as http:
        http.headers["X-API-Key"] = server.api_key
        files = {"file": ("v.wav", b"RIFF....WAVEfmt ", "audio/wav")}
        created = http.post(server.url + "/v1/ai/voice", data={"name": "props"}, files=files, timeout=30)
        assert created.status_code == 200, created.text
        yield server, http, created.json()["id"]


def assert_ok_or_lmnt_4xx(response, version):
    """The response is a success, or a 4xx whose body has the shape ``version`` expects."""
    body = response.json()
    if response.status_code == 200:
        return body
    assert 400 <= response.status_code < 500, body
    if version:
        assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
        assert STATUS_BY_SLUG[body["error"]["type"]] == response.status_code
    elif response.status_code == 401:
        assert body == {"message": body["message"], "status": 401}
    else:
        assert set(body) == {"error"} and isinstance(body["error"], str)
    assert response.headers["request-id"].startswith("req_")
    return None


short_text = st.text(any_char, min_size=1, max_size=40)
speech_fields = st.fixed_dictionaries({}, optional={
    "text": short_text | json_values, "voice": st.sampled_from(["lily", "synth", "nope"]) | json_values,
    "format": st.sampled_from(["mp3", "wav", "raw", "pcm_f32le", "flac"]) | json_values,
    "sample_rate": rates | json_values, "return_timestamps": flags | json_values,
    "return_durations": flags | json_values, "seed": st.integers() | json_values, "language": json_values,
})
versions = st.sampled_from([None, "1.1", "1.2", "2025-09-25"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(speech_fields | json_values | st.binary(max_size=60), versions, st.booleans())
def test_rest_speech_any_json_body(rest, body, version, detailed):
    """Any JSON (or byte) body to /v1/ai/speech[/bytes]: 200 with audio, or an LMNT 4xx; never 5xx."""
    server, http, _ = rest
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8", "surrogatepass")
    headers = {"Content-Type": "application/json", **({"lmnt-version": version} if version else {})}
    path = "/v1/ai/speech" if detailed else "/v1/ai/speech/bytes"
    response = http.post(server.url + path, data=data, headers=headers, timeout=30)
    if detailed:
        reply = assert_ok_or_lmnt_4xx(response, version)
        assert reply is None or base64.b64decode(reply["audio"])
    elif response.status_code != 200:
        assert_ok_or_lmnt_4xx(response, version)
    else:
        assert response.content


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["text", "voice", "format", "sample_rate", "return_durations", "seed"])
                       | st.text(max_size=8), st.text(max_size=30), max_size=6),
       versions, st.booleans())
def test_rest_speech_any_form_body(rest, fields, version, multipart):
    """Any urlencoded or multipart form to /v1/ai/speech: 200 or an LMNT 4xx; never 5xx."""
    server, http, _ = rest
    headers = {"lmnt-version": version} if version else {}
    files = {k: (None, v) for k, v in fields.items()} or {"_": (None, "")}
    sent = {"files": files} if multipart else {"data": fields}
    response = http.post(server.url + "/v1/ai/speech", headers=headers, timeout=30, **sent)
    assert_ok_or_lmnt_4xx(response, version)


PART = b'--b\r\nContent-Disposition: form-data; name="%s"%s\r\n%s\r\n%s\r\n'
form_bytes = st.one_of(
    st.binary(max_size=120),
    st.builds(lambda parts, end: b"".join(PART % p for p in parts) + end,
              st.lists(st.tuples(st.sampled_from([b"text", b"name", b"file", b"metadata", b"\x01", b""])
                                 | st.binary(max_size=6),
                                 st.sampled_from([b"", b'; filename="a.wav"', b"; filename*=UTF-8''%2E%2E%2Fx"]),
                                 st.sampled_from([b"", b"Content-Type: text/plain; charset=nope\r\n",
                                                  b"Content-Transfer-Encoding: base64\r\n",
                                                  b"Content-Type: multipart/mixed; boundary=c\r\n"]),
                                 st.binary(max_size=20)), max_size=3),
              st.sampled_from([b"--b--\r\n", b"", b"--b"])),
)
form_types = st.sampled_from(["multipart/form-data; boundary=b", "multipart/form-data",
                              "multipart/form-data; boundary=", "application/x-www-form-urlencoded",
                              "application/x-www-form-urlencoded; charset=nope"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([("POST", "/v1/ai/speech"), ("POST", "/v1/ai/speech/bytes"), ("POST", "/v1/ai/voice"),
                        ("PUT", "/v1/ai/voice/lily")]), form_types, form_bytes, versions)
def test_rest_malformed_form_bodies(rest, route, ctype, body, version):
    """Any bytes as a multipart or urlencoded body: 200 or an LMNT 4xx; never 5xx.

    Regression: aiohttp's ValueError / LookupError / InvalidHeader for a
    malformed body used to become 500 internal_server_error.
    """
    server, http, _ = rest
    headers = {"Content-Type": ctype, **({"lmnt-version": version} if version else {})}
    response = http.request(route[0], server.url + route[1], data=body, headers=headers, timeout=30)
    if response.headers["Content-Type"].startswith("application/json"):
        assert_ok_or_lmnt_4xx(response, version)
    else:
        assert response.status_code == 200


update_fields = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(("name", "description", "gender", "starred", "tags", "unfreeze"), json_values)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(update_fields | json_values, versions)
def test_rest_voice_update_any_json_body(rest, body, version):
    """Any JSON body to PUT /v1/ai/voice/{id}: the updated voice, or an LMNT 4xx; never 5xx."""
    server, http, voice_id = rest
    headers = {"Content-Type": "application/json", **({"lmnt-version": version} if version else {})}
    data = json.dumps(body).encode("utf-8", "surrogatepass")
    response = http.put(f"{server.url}/v1/ai/voice/{voice_id}", data=data, headers=headers, timeout=30)
    reply = assert_ok_or_lmnt_4xx(response, version)
    assert reply is None or reply["voice"]["id"] == voice_id


# -- over loopback: nothing lost -------------------------------------------

GAP = 0.050  # the synthetic engine's silence after every word
TOLERANCE = 0.002  # timings are rounded to 0.1 ms; each drain of the resampler may round by a sample
word_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")).filter(
    lambda c: not c.isspace())
spoken_words = st.text(word_chars, min_size=1, max_size=10)
punctuation = st.sampled_from(["", "", "", ".", ",", "!", "?", ";", ":", "\u2026", '."', ")", " -"])
spaces = st.sampled_from([" ", " ", " ", "  ", "\n", "\t", " \u00a0", "\u3000"])


@st.composite
def chunked_turns(draw):
    """Return the text messages (with None for a flush) of a random session."""
    pieces = draw(st.lists(st.tuples(spoken_words, punctuation, spaces), min_size=1, max_size=25))
    text = draw(spaces | st.just("")) + "".join(w + p + s for w, p, s in pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    chunks = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    messages = []
    for chunk in chunks:
        messages.append(chunk)
        if draw(st.booleans()) and draw(st.booleans()):
            messages.append(None)  # a flush, possibly mid-word
    return messages


def expected_words(messages):
    """The words of each flushed turn: a flush speaks what it has, even half a word."""
    turns, current = [], ""
    for message in messages:
        if message is None:
            turns.append(current)
            current = ""
        else:
            current += message
    return [word for turn in turns + [current] for word in turn.split()]


def turns_of(transcript):
    """Split a 1.2 transcript at flush_complete: [(audio bytes, timings)] per turn."""
    turns, audio, stamps = [], b"", []
    for kind, data in transcript.events:
        if kind == "audio":
            audio += data
        elif data.get("type") == "timestamps":
            stamps += data["timestamps"]
        elif data.get("type") == "flush_complete":
            turns.append((audio, stamps))
            audio, stamps = b"", []
    return turns + [(audio, stamps)]


@pytest.mark.parametrize("generation", ["1.2", "1.1", "legacy"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=chunked_turns(), fmt=st.sampled_from(["pcm_s16le", "pcm_f32le"]), rate=rates)
def test_nothing_lost(server, generation, messages, fmt, rate):
    """Every word exactly once, in order; each flush's audio lasts as long as its timings say."""
    if generation == "legacy":
        init = legacy_init(server, format=fmt, sample_rate=rate)
    else:
        init = current_init(server, format=fmt, sample_rate=rate, **{"lmnt-version": generation})
    legacy = generation == "legacy"
    ws = connect(server, init)
    try:
        for nonce, message in enumerate(messages):
            if message is not None:
                send(ws, {"text": message} if legacy else {"type": "text", "text": message})
            else:
                send(ws, {"flush": True} if legacy else {"type": "flush", "nonce": nonce})
        send(ws, {"eof": True} if legacy else {"type": "finish"})
        transcript = read(ws)
    finally:
        close(ws)
    assert transcript.close_code == 1000 and not transcript.messages("error")
    key = "durations" if generation == "legacy" else "timestamps"
    assert transcript.words(key) == expected_words(messages)
    if generation == "1.2":
        check_turn_durations(transcript, fmt, rate)
    else:
        check_frame_durations(transcript, key, fmt, rate)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([8000, 16000]), st.lists(st.integers(0, 3000) | st.none(), max_size=12))
def test_resampled_pcm_after_each_drain_is_exactly_the_input(rate, steps):
    """Engine PCM (24 kHz) resampled to pcm_s16le: after every drain the output holds exactly
    the input's length at the new rate, however drains and pushes interleave.

    Regression: a second drain before soxr had released the first drain's
    padding let that padding out (an empty flush sent ~10-17 ms of audio,
    and the timings of what followed ran late by as much).
    """
    encoder = Encoder("pcm_s16le", rate, 24000)
    fed = out = 0
    for samples in steps + [None]:
        if samples is None:
            out += len(encoder.drain()) // 2
            assert abs(out - round(fed * rate / 24000)) <= 1, (out, fed)
        else:
            fed += samples
            out += len(encoder.encode(bytes(2 * samples))) // 2


def check_turn_durations(transcript, fmt, rate):
    """1.2: starts run on within a flush; its audio ends one gap after its last word."""
    for audio, stamps in turns_of(transcript):
        seconds = decode(audio, fmt, rate)[1] if audio else 0.0
        if all(s["duration"] == 0 for s in stamps):
            assert seconds == 0.0  # nothing speakable (no words, or only emoji)
            continue
        assert [s["start"] for s in stamps] == sorted(s["start"] for s in stamps)
        end = max(s["start"] + s["duration"] for s in stamps if s["duration"])
        assert abs(seconds - end - GAP) <= TOLERANCE, (seconds, end)


def check_frame_durations(transcript, key, fmt, rate):
    """1.1 and legacy: starts count from the audio frame the timings go with (1.1:
    the frame before them; legacy extras: the frame after). Placed there, every
    word lies inside the audio and the last one ends one gap before its end.
    Tolerance: 2 ms.
    """
    width = 2 if fmt == "pcm_s16le" else 4
    ends, audio, before_last = [], 0, 0
    for kind, data in transcript.events:
        if kind == "audio":
            before_last, audio = audio, audio + len(data)
        elif data.get(key):
            base = (audio if key == "durations" else before_last) / width / rate
            # Words with nothing to speak (emoji) take no time: not the last sound.
            ends += [base + w["start"] + w["duration"] for w in data[key] if w["duration"]]
    seconds = audio / width / rate
    assert all(end <= seconds + TOLERANCE for end in ends), (seconds, ends)
    if ends:
        assert abs(seconds - max(ends) - GAP) <= TOLERANCE, (seconds, max(ends))
    else:
        assert seconds == 0.0
