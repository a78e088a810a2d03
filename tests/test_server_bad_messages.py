"""Bad client input gets LMNT's error shape and a clean close; other sessions are unaffected.

Every case runs on a real local server (synthetic engine) while a healthy
neighbour session, opened once for the module, has a sentence in flight: after
each bad session is closed the neighbour must still get exactly its words and
the right amount of audio. Error shapes (PROTOCOL.md §1.3, §1.5): current
sessions (and any error before the generation is known) get
``{"type": "error", "error": {"type", "message"}, "request_id"}``; legacy and
command/ack sessions get ``{"error": "<text>"}``; then a close with 1000.

Unknown fields: a message made only of unknown fields is refused, but an
unknown field beside known ones is ignored (forward compatibility, as the
server ignores ``speed`` or ``model``; see the last test).
"""
import json

import pytest
import requests

from lmnt_sync.server import LocalServer
from server_kit import Neighbour, current_init, legacy_init, run_session

DEEP = "[" * 50_000  # deeper than Python's json decoder can recurse, within the size limit


@pytest.fixture(scope="module")
def srv():
    """A synthetic-engine server with default limits, for this module."""
    with LocalServer(engine="synthetic") as server:
        yield server


@pytest.fixture(scope="module")
def neighbour(srv):
    """The module's neighbour session; finished cleanly at the end."""
    peer = Neighbour(srv)
    yield peer
    peer.finish()


def command_init(server, **fields):
    """Return a command/ack (protocol_version 2) init message."""
    return legacy_init(server, protocol_version=2, **fields)


INITS = {"current": current_init, "legacy": legacy_init, "command": command_init}


def assert_error_then_close(transcript, shape, slug):
    """Exactly one error, the last message, in ``shape``; then close 1000."""
    errors = [m for kind, m in transcript.events if kind == "json" and "error" in m]
    assert len(errors) == 1, transcript.events
    assert transcript.events[-1] == ("json", errors[0]), "the error must be the last message"
    message = errors[0]
    if shape == "current":
        assert set(message) == {"type", "error", "request_id"} and message["type"] == "error"
        assert set(message["error"]) == {"type", "message"} and message["error"]["type"] == slug
        assert isinstance(message["error"]["message"], str) and message["error"]["message"]
        assert message["request_id"].startswith("req_")
    else:
        assert list(message) == ["error"] and isinstance(message["error"], str) and message["error"]
    assert transcript.close_code == 1000


# (id, shape of the error, frames as a function of the server, slug)
BEFORE_INIT = [
    ("invalid-json", "current", lambda s: ["{not json"], "invalid_request_error"),
    ("json-array", "current", lambda s: ["[1, 2]"], "invalid_request_error"),
    ("json-string", "current", lambda s: ['"voice"'], "invalid_request_error"),
    ("empty-frame", "current", lambda s: [""], "invalid_request_error"),
    ("binary-frame", "current", lambda s: [b"\x00\x01"], "invalid_request_error"),
    ("deep-nesting", "current", lambda s: [DEEP], "invalid_request_error"),  # was: close without error
    ("typed-text-before-init", "current", lambda s: [{"type": "text", "text": "hi"}], "invalid_request_error"),
    ("typed-finish-before-init", "current", lambda s: [{"type": "finish"}], "invalid_request_error"),
    ("legacy-text-before-init", "legacy", lambda s: [{"text": "hi"}], "invalid_request_error"),
    ("legacy-eof-before-init", "legacy", lambda s: [{"eof": True}], "invalid_request_error"),
    ("command-before-init", "legacy", lambda s: [{"command": "flush", "nonce": 1}], "invalid_request_error"),
]

# Init messages with a wrong value or type, in every generation.
BAD_INIT_FIELDS = [
    ("unknown-voice", {"voice": "no-such-voice"}, "not_found_error"),
    ("voice-number", {"voice": 5}, "invalid_request_error"),
    ("voice-list", {"voice": ["lily"]}, "invalid_request_error"),
    ("voice-blank", {"voice": "  "}, "invalid_request_error"),
    ("voice-missing", {"voice": None}, "invalid_request_error"),
    ("format-unknown", {"format": "flac"}, "invalid_request_error"),
    ("format-rest-only", {"format": "wav"}, "invalid_request_error"),
    ("format-number", {"format": 5}, "invalid_request_error"),
    ("rate-unsupported", {"sample_rate": 44100}, "invalid_request_error"),
    ("rate-word", {"sample_rate": "fast"}, "invalid_request_error"),
    ("rate-bool", {"sample_rate": True}, "invalid_request_error"),
    ("rate-negative", {"sample_rate": -1}, "invalid_request_error"),
    ("rate-float", {"sample_rate": 16000.0}, "invalid_request_error"),  # was: int()'s own message
    ("key-wrong", {"X-API-Key": "wrong"}, "authentication_error"),
    ("key-missing", {"X-API-Key": None}, "authentication_error"),
    ("key-number", {"X-API-Key": 12345}, "authentication_error"),
    ("key-lone-surrogate", {"X-API-Key": "\ud800"}, "authentication_error"),  # was: close without error
]

# Messages after a successful init: (id, frames, slug); every generation.
AFTER_INIT = [
    ("invalid-json", ["{not json"], "invalid_request_error"),
    ("json-array", ["[]"], "invalid_request_error"),
    ("binary-frame", [b"\xff" * 10], "invalid_request_error"),
    ("deep-nesting", [DEEP], "invalid_request_error"),  # was: close without error
    ("text-number", [{"type": "text", "text": 5}], "invalid_request_error"),
    ("text-missing", [{"type": "text"}], "invalid_request_error"),
    ("legacy-text-null", [{"text": None}], "invalid_request_error"),
    ("nonce-string", [{"type": "flush", "nonce": "1"}], "invalid_request_error"),
    ("nonce-bool", [{"type": "reset", "nonce": True}], "invalid_request_error"),
    ("nonce-float", [{"command": "flush", "nonce": 1.5}], "invalid_request_error"),
    ("type-number", [{"type": 5}], "invalid_request_error"),
    ("type-unknown", [{"type": "sing"}], "invalid_request_error"),
    ("command-unknown", [{"command": "jump"}], "invalid_request_error"),
    ("only-unknown-fields", [{"hello": 1}], "invalid_request_error"),
    ("empty-object", [{}], "invalid_request_error"),
    ("second-init", [{"type": "init", "voice": "lily"}], "invalid_request_error"),
    ("oversized-text", [{"type": "text", "text": "x" * 70_000}], "invalid_request_error"),
]


def shape_of(generation):
    return "current" if generation == "current" else "legacy"


@pytest.mark.parametrize("frames, shape, slug", [pytest.param(f, shape, slug, id=name)
                                                 for name, shape, f, slug in BEFORE_INIT])
def test_bad_first_frame(srv, neighbour, frames, shape, slug):
    """No usable init message: error in the shape the frame implies, then close 1000."""
    neighbour.ask("Before init check.")
    assert_error_then_close(run_session(srv, frames(srv)), shape, slug)
    neighbour.check("Before init check.")


@pytest.mark.parametrize("generation", INITS)
@pytest.mark.parametrize("fields, slug", [pytest.param(f, slug, id=name) for name, f, slug in BAD_INIT_FIELDS])
def test_bad_init_field(srv, neighbour, generation, fields, slug):
    """A wrong value or type in the init message: the generation's error, then close 1000."""
    neighbour.ask("Init field check.")
    init = INITS[generation](srv, **fields)
    transcript = run_session(srv, [init, {"text": "Never spoken."}])
    assert_error_then_close(transcript, shape_of(generation), slug)
    said = json.dumps(transcript.events)
    assert srv.api_key not in said
    (field,) = fields
    assert {"X-API-Key": "API key"}.get(field, field) in said  # the error names what was wrong
    neighbour.check("Init field check.")


@pytest.mark.parametrize("generation", INITS)
@pytest.mark.parametrize("frames, slug", [pytest.param(f, slug, id=name) for name, f, slug in AFTER_INIT])
def test_bad_message_after_init(srv, neighbour, generation, frames, slug):
    """A bad message in a running session: the generation's error, then close 1000."""
    neighbour.ask("After init check.")
    transcript = run_session(srv, [INITS[generation](srv)] + frames)
    assert_error_then_close(transcript, shape_of(generation), slug)
    neighbour.check("After init check.")


def test_unknown_fields_beside_known_ones_are_ignored(srv, neighbour):
    """Extra fields in the init and in messages do not stop a session (forward compatibility)."""
    neighbour.ask("Unknown field check.")
    init = current_init(srv, future_option={"x": 1})
    transcript = run_session(srv, [init, {"type": "text", "text": "Still spoken.", "emotion": "glad"},
                                   {"type": "finish", "reason": None}])
    assert transcript.words() == ["Still", "spoken."] and transcript.close_code == 1000
    assert not transcript.messages("type", "error")
    neighbour.check("Unknown field check.")


REST_CASES = [
    ("deep-json", {"Content-Type": "application/json"}, DEEP.encode(), 400, "invalid_request_error"),
    ("lone-surrogate-text", {"Content-Type": "application/json"},
     b'{"text": "a \\ud800 b", "voice": "lily"}', 400, "invalid_request_error"),
    ("key-bad-bytes", {"Content-Type": "application/json", "X-API-Key": b"\xff\xfe"},
     b'{"text": "hi", "voice": "lily"}', 401, "authentication_error"),
]


@pytest.mark.parametrize("path", ["/v1/ai/speech", "/v1/ai/speech/bytes"])
@pytest.mark.parametrize("headers, body, status, slug", [pytest.param(*c[1:], id=c[0]) for c in REST_CASES])
def test_bad_rest_bodies_get_a_4xx_in_lmnts_shape(srv, neighbour, path, headers, body, status, slug):
    """Regressions: deep JSON, unpaired surrogates and undecodable keys were 500 internal errors."""
    neighbour.ask("Rest check.")
    sent = {"X-API-Key": srv.api_key, "lmnt-version": "1.2", **headers}
    response = requests.post(srv.url + path, data=body, headers=sent, timeout=30)
    reply = response.json()  # read first: an unread body would hold the connection open
    assert (response.status_code, reply["error"]["type"]) == (status, slug)
    neighbour.check("Rest check.")
