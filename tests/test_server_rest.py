"""The local server's REST API, spoken raw with requests over real sockets."""
import base64
import json
import os

import pytest
import requests

from lmnt_sync.server import LocalServer
from server_kit import decode, synthetic_seconds

V12 = {"lmnt-version": "1.2"}


@pytest.fixture(scope="module")
def srv():
    """A synthetic-engine server shared by this module."""
    with LocalServer(engine="synthetic") as server:
        yield server


def call(server, method, path, *, version=V12, key=True, **kwargs):
    """Send one request with the server's key (unless key=False) and the version headers."""
    headers = dict(version)
    if key is True:
        headers["X-API-Key"] = server.api_key
    elif key:
        headers["X-API-Key"] = key
    headers.update(kwargs.pop("headers", {}))
    return requests.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


# -- speech ----------------------------------------------------------------


@pytest.mark.parametrize("fmt, ctype", [("mp3", "audio/mpeg"), ("wav", "audio/wav"), ("aac", "audio/aac"),
                                        ("webm", "audio/webm"), ("ulaw", "audio/wav")])
def test_bytes_returns_decodable_audio_of_the_format(srv, fmt, ctype):
    """POST /speech/bytes answers with audio of the format, its content type and a request-id."""
    text = "Bytes for every format."
    response = call(srv, "POST", "/v1/ai/speech/bytes", json={"text": text, "voice": "synth", "format": fmt})
    assert response.status_code == 200 and response.headers["content-type"] == ctype
    assert response.headers["request-id"].startswith("req_")
    rate, seconds, _ = decode(response.content, fmt, 0)
    assert rate == (8000 if fmt == "ulaw" else 24000)
    assert abs(seconds - synthetic_seconds(text)) < 0.3


@pytest.mark.parametrize("body_kind", ["json", "multipart", "urlencoded"])
def test_speech_accepts_json_multipart_and_urlencoded_bodies(srv, body_kind):
    """The same fields give the same audio whatever the body encoding (form values coerced)."""
    fields = {"text": "Three body kinds.", "voice": "synth", "format": "pcm_s16le", "sample_rate": "16000"}
    kwargs = {"json": {**fields, "sample_rate": 16000}} if body_kind == "json" else (
        {"files": {k: (None, v) for k, v in fields.items()}} if body_kind == "multipart" else {"data": fields})
    response = call(srv, "POST", "/v1/ai/speech/bytes", **kwargs)
    assert response.status_code == 200
    assert len(response.content) == 2 * round(synthetic_seconds(fields["text"], 16000) * 16000)


def test_detailed_current_shape_has_timestamps_and_no_seed(srv):
    """lmnt-version 1.2: base64 audio plus one timestamp per word, no seed."""
    text = "Detailed speech, with timestamps."
    body = call(srv, "POST", "/v1/ai/speech", json={"text": text, "voice": "synth", "format": "wav",
                                                  "return_timestamps": True}).json()
    assert set(body) == {"audio", "timestamps"}
    assert base64.b64decode(body["audio"])[:4] == b"RIFF"
    assert [t["text"] for t in body["timestamps"]] == text.split()
    starts = [t["start"] for t in body["timestamps"]]
    assert starts == sorted(starts) and starts[0] == 0.0


def test_detailed_legacy_shape_has_durations_and_seed(srv):
    """Without lmnt-version (legacy form post): durations and the seed given."""
    fields = {"text": "Legacy detail.", "voice": "lily", "return_durations": "true", "seed": "42"}
    body = call(srv, "POST", "/v1/ai/speech", version={}, data=fields).json()
    assert set(body) == {"audio", "durations", "seed"} and body["seed"] == 42
    assert [d["text"] for d in body["durations"]] == ["Legacy", "detail."]


def test_text_over_5000_characters_is_refused(srv):
    """More than 5000 characters gets 400 invalid_request_error; 5000 exactly is spoken."""
    too_long = call(srv, "POST", "/v1/ai/speech/bytes", json={"text": "a" * 5001, "voice": "synth"})
    assert too_long.status_code == 400
    assert too_long.json()["error"]["type"] == "invalid_request_error" and "5000" in too_long.text
    exact = call(srv, "POST", "/v1/ai/speech/bytes",
                 json={"text": ("word " * 1000)[:5000], "voice": "synth", "format": "pcm_s16le"})
    assert exact.status_code == 200 and exact.content


BAD_REQUESTS = [
    pytest.param({"voice": "synth"}, 400, "invalid_request_error", id="missing-text"),
    pytest.param({"text": "hi", "voice": "nobody"}, 404, "not_found_error", id="unknown-voice"),
    pytest.param({"text": "hi", "voice": "synth", "format": "flac"}, 400, "invalid_request_error", id="bad-format"),
    pytest.param({"text": "hi", "voice": "synth", "sample_rate": 44100}, 400, "invalid_request_error", id="bad-rate"),
]


@pytest.mark.parametrize("body, status, slug", BAD_REQUESTS)
def test_bad_speech_requests_get_typed_errors(srv, body, status, slug):
    """Invalid speech requests get the status and error slug of LMNT's current shape."""
    response = call(srv, "POST", "/v1/ai/speech/bytes", json=body)
    assert response.status_code == status and response.json()["error"]["type"] == slug
    assert response.headers["request-id"].startswith("req_")


def test_invalid_json_unknown_route_and_wrong_method(srv):
    """Invalid JSON is 400, unknown paths 404, wrong methods 405, all in the error shape."""
    bad_json = call(srv, "POST", "/v1/ai/speech", data="{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"
    assert call(srv, "GET", "/v1/nowhere").json()["error"]["type"] == "not_found_error"
    assert call(srv, "DELETE", "/v1/account").status_code == 405


# -- auth ------------------------------------------------------------------


def test_auth_failures_current_and_legacy_shapes(srv):
    """A missing or wrong key is 401: typed body for >=1.1, {message, status} for legacy."""
    missing = call(srv, "GET", "/v1/account", key=None)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    wrong = call(srv, "GET", "/v1/ai/voice/list", key="not-the-key", version={})
    assert wrong.status_code == 401 and wrong.json() == {"message": "invalid API key", "status": 401}
    assert srv.api_key not in missing.text + wrong.text


# -- voices ----------------------------------------------------------------


def test_voice_list_has_local_voices_and_mapped_lmnt_ids(srv):
    """The list holds >=2 local voices and LMNT's ids, whose descriptions name the local voice."""
    voices = {v["id"]: v for v in call(srv, "GET", "/v1/ai/voice/list").json()}
    local = [v for v in voices.values() if "local" in v["tags"]]
    assert len(local) >= 2
    for lmnt_id in ("lily", "leah", "elowen", "ava", "morgan", "zeke"):
        assert voices[lmnt_id]["owner"] == "system"
        assert "LMNT system voice id" in voices[lmnt_id]["description"]
        assert "spoken by the local voice" in voices[lmnt_id]["description"]
    assert call(srv, "GET", "/v1/ai/voice/list", params={"owner": "me"}).json() == []
    assert call(srv, "GET", "/v1/ai/voice/list", params={"owner": "nobody"}).status_code == 400


def test_voice_create_current_layout_update_and_delete(srv):
    """Create (file + tags[]), retrieve, update only given keys, star, delete, then 404."""
    created = call(srv, "POST", "/v1/ai/voice", files=[
        ("file", ("sample.wav", b"RIFF fake audio", "audio/wav")), ("name", (None, "Mine")),
        ("description", (None, "my voice")), ("tags[]", (None, "a")), ("tags[]", (None, "b"))]).json()
    assert created["owner"] == "me" and created["tags"] == ["a", "b"]
    assert "no cloning" in created["description"] and "built-in voice" in created["description"]
    voice_path = f"/v1/ai/voice/{created['id']}"
    updated = call(srv, "PUT", voice_path, json={"name": "Renamed", "starred": True}).json()["voice"]
    assert (updated["name"], updated["starred"], updated["tags"]) == ("Renamed", True, ["a", "b"])
    assert updated["description"] == created["description"]
    starred = call(srv, "GET", "/v1/ai/voice/list", params={"starred": "True"}).json()
    assert [v["id"] for v in starred] == [created["id"]]
    spoken = call(srv, "POST", "/v1/ai/speech/bytes", json={"text": "Mine speaks.", "voice": created["id"]})
    assert spoken.status_code == 200
    assert call(srv, "DELETE", voice_path).json() == {"success": True}
    assert call(srv, "GET", voice_path).status_code == 404


def test_voice_create_legacy_and_v2_layouts(srv):
    """The legacy metadata+file_field layout and the v2 files[]+enhance layout both create voices."""
    legacy = call(srv, "POST", "/v1/ai/voice", version={}, files=[
        ("metadata", (None, json.dumps({"name": "Old", "enhance": False, "type": "instant",
                                        "gender": "male", "description": None}), "application/json")),
        ("file_field", ("a.mp3", b"ID3 fake", "audio/mpeg")), ("file_field", ("b.mp3", b"ID3 fake", "audio/mpeg"))])
    v2 = call(srv, "POST", "/v1/ai/voice", files=[
        ("name", (None, "Mid")), ("enhance", (None, "false")), ("files[]", ("c.wav", b"RIFF", "audio/wav"))])
    assert legacy.status_code == 200 and legacy.json()["name"] == "Old" and legacy.json()["gender"] == "male"
    assert v2.status_code == 200 and v2.json()["name"] == "Mid"
    for voice in (legacy.json(), v2.json()):
        call(srv, "DELETE", f"/v1/ai/voice/{voice['id']}")


def test_uploaded_file_names_cannot_escape_the_data_folder(srv):
    """A hostile upload file name is replaced by a generated one inside uploads/."""
    response = call(srv, "POST", "/v1/ai/voice", files=[
        ("name", (None, "Evil")), ("file", ("../../../../tmp/evil.sh", b"#!/bin/sh", "audio/wav"))])
    assert response.status_code == 200
    uploads = srv.data_dir / "uploads"
    names = os.listdir(uploads)
    assert names and all(n.endswith(".bin") and "evil" not in n for n in names)
    assert not os.path.exists("/tmp/evil.sh")
    call(srv, "DELETE", f"/v1/ai/voice/{response.json()['id']}")


def test_voice_create_errors_and_system_voice_rules(srv):
    """No file or no name is 400; system voices may only be starred and cannot be deleted."""
    no_file = call(srv, "POST", "/v1/ai/voice", files=[("name", (None, "Nameless file"))])
    assert no_file.status_code == 400
    no_name = call(srv, "POST", "/v1/ai/voice", files=[("file", ("a.wav", b"RIFF", "audio/wav"))])
    assert no_name.status_code == 400
    assert call(srv, "PUT", "/v1/ai/voice/lily", json={"name": "Mine now"}).status_code == 403
    assert call(srv, "PUT", "/v1/ai/voice/lily", json={"starred": True}).json()["voice"]["starred"] is True
    call(srv, "PUT", "/v1/ai/voice/lily", json={"starred": False})
    assert call(srv, "DELETE", "/v1/ai/voice/lily").status_code == 403
    assert os.listdir(srv.data_dir / "uploads") == []


def test_created_voices_persist_across_a_restart(tmp_path):
    """Voices created on one server are back, unchanged, on a new one with the same data_dir."""
    with LocalServer(engine="synthetic", data_dir=tmp_path) as first:
        created = call(first, "POST", "/v1/ai/voice", files=[
            ("file", ("s.wav", b"RIFF", "audio/wav")), ("name", (None, "Keeper")), ("gender", (None, "female"))]).json()
        call(first, "PUT", f"/v1/ai/voice/{created['id']}", json={"starred": True, "tags": ["kept"]})
        call(first, "PUT", "/v1/ai/voice/ava", json={"starred": True})
    with LocalServer(engine="synthetic", data_dir=tmp_path) as second:
        again = call(second, "GET", f"/v1/ai/voice/{created['id']}").json()
        assert again == {**created, "starred": True, "tags": ["kept"]}
        assert call(second, "GET", "/v1/ai/voice/ava").json()["starred"] is True
        spoken = call(second, "POST", "/v1/ai/speech/bytes", json={"text": "Still here.", "voice": created["id"]})
        assert spoken.status_code == 200
    assert (tmp_path / "voices.sqlite3").exists()


# -- account ---------------------------------------------------------------


def test_account_current_and_legacy_shapes(srv):
    """1.2: characters remaining; legacy: characters used plus voice counts."""
    current = call(srv, "GET", "/v1/account").json()
    assert current["plan"]["type"] == "local" and set(current["usage"]) == {"characters"}
    legacy = call(srv, "GET", "/v1/account", version={}).json()
    assert {"characters", "instant_voices", "professional_voices"} <= set(legacy["usage"])
    assert current["usage"]["characters"] + legacy["usage"]["characters"] == current["plan"]["character_limit"]
