"""Every REST call of lmnt_sync against the real local server, plus retries and typed errors."""
import http.server
import io
import json
import threading
import wave

import av
import pytest

from lmnt_sync import Speech
from lmnt_sync.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InternalServerError,
    NotFoundError,
    ProtocolError,
)


def wav_bytes(seconds=1.0, rate=16000):
    """Return a small WAV file of a tone, as an upload."""
    import math

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(seconds * rate)):
            frames += int(8000 * math.sin(2 * math.pi * 220 * i / rate)).to_bytes(2, "little", signed=True)
        w.writeframes(bytes(frames))
    return buf.getvalue()


def decoded_seconds(data):
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return sum(f.samples for f in container.decode(stream)) / stream.rate


def test_synthesize_returns_audio_of_the_format(speech):
    """synthesize() returns a decodable file of the asked format and rate."""
    data = speech.synthesize("Hello from the local server.", "lily", format="wav", sample_rate=16000)
    with wave.open(io.BytesIO(data)) as w:
        assert w.getframerate() == 16000 and w.getnframes() > 0
    assert decoded_seconds(speech.synthesize("Hello again.", "lily")) > 0.3  # mp3 by default


def test_synthesize_detailed_returns_audio_and_timestamps(speech):
    """synthesize_detailed() decodes base64 audio and returns timings for the words."""
    result = speech.synthesize_detailed("One two three.", "lily", format="mp3")
    assert isinstance(result["audio"], bytes) and decoded_seconds(result["audio"]) > 0.3
    spoken = [t["text"] for t in result["timestamps"] if t["text"].strip()]
    assert [w.strip(".") for w in spoken if w.strip(".")] == ["One", "two", "three"]


def test_voice_lifecycle(speech):
    """create, info, update, list and delete a voice; multipart upload of two files."""
    created = speech.create_voice(
        "Test Voice", [("a.wav", wav_bytes()), ("b.wav", wav_bytes(0.5))], description="mine", gender="female"
    )
    voice_id = created["id"]
    try:
        assert created["owner"] == "me" and created["name"] == "Test Voice"
        assert speech.voice_info(voice_id)["id"] == voice_id
        updated = speech.update_voice(voice_id, name="Renamed", starred=True)
        assert updated["name"] == "Renamed" and updated["starred"] is True
        assert voice_id in [v["id"] for v in speech.list_voices(owner="me")]
        assert voice_id in [v["id"] for v in speech.list_voices(starred=True)]
        assert speech.synthesize("The new voice speaks.", voice_id, format="pcm_s16le")
    finally:
        assert speech.delete_voice(voice_id) == {"success": True}
    with pytest.raises(NotFoundError) as caught:
        speech.voice_info(voice_id)
    assert caught.value.status_code == 404 and caught.value.request_id


def test_create_voice_from_a_path(speech, tmp_path):
    """A file path is uploaded (and closed again)."""
    path = tmp_path / "sample.wav"
    path.write_bytes(wav_bytes())
    created = speech.create_voice("From Path", str(path))
    assert speech.delete_voice(created["id"]) == {"success": True}


def test_list_voices_has_system_voices(speech):
    """The voice list includes LMNT's well-known ids mapped to local voices."""
    voices = {v["id"]: v for v in speech.list_voices(owner="system")}
    assert "lily" in voices and len(voices) >= 2


def test_account_info(speech):
    """account_info() returns plan and usage."""
    account = speech.account_info()
    assert "plan" in account and "usage" in account


def test_errors_are_typed_with_status_type_message_and_request_id(speech, server):
    """Non-2xx answers raise the class for the status, carrying LMNT's error fields."""
    with pytest.raises(BadRequestError) as caught:
        speech.synthesize("x" * 5001, "lily")
    error = caught.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert "5000" in error.message and error.request_id
    with Speech(api_key="not-the-key", base_url=server.url, max_retries=0) as other:
        with pytest.raises(AuthenticationError) as caught:
            other.list_voices()
    assert caught.value.type == "authentication_error" and "not-the-key" not in str(caught.value)


def test_bad_arguments_fail_before_sending(speech):
    """Client-side validation names the argument."""
    with pytest.raises(ConfigurationError, match="owner"):
        speech.list_voices(owner="them")
    with pytest.raises(ConfigurationError, match="text"):
        speech.synthesize("", "lily")
    with pytest.raises(ConfigurationError, match="not found"):
        speech.create_voice("x", "/no/such/file.wav")


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 503 (Retry-After: 0) a set number of times, then 200."""

    failures_left = 0
    seen = []

    def do_GET(self):
        type(self).seen.append(self.path)
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            body = json.dumps({"error": {"type": "internal_server_error", "message": "try later"}}).encode()
            self.send_response(503)
            self.send_header("Retry-After", "0")
        else:
            body = json.dumps({"plan": {}, "usage": {}}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("request-id", "req_flaky")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_server():
    """A real HTTP server on loopback that fails on command (fault injection for retries)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="test-flaky")
    thread.start()
    FlakyHandler.seen = []
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_retries_5xx_then_succeeds(flaky_server):
    """503 answers are retried (honouring Retry-After) up to max_retries."""
    FlakyHandler.failures_left = 2
    url = f"http://127.0.0.1:{flaky_server.server_address[1]}"
    with Speech(api_key="k", base_url=url, max_retries=2) as speech:
        assert speech.account_info() == {"plan": {}, "usage": {}}
    assert len(FlakyHandler.seen) == 3


def test_gives_up_after_max_retries_with_a_typed_error(flaky_server):
    """When retries run out, the last answer becomes InternalServerError."""
    FlakyHandler.failures_left = 5
    url = f"http://127.0.0.1:{flaky_server.server_address[1]}"
    with Speech(api_key="k", base_url=url, max_retries=1) as speech:
        with pytest.raises(InternalServerError) as caught:
            speech.account_info()
    assert caught.value.status_code == 503 and caught.value.request_id == "req_flaky"
    assert len(FlakyHandler.seen) == 2


def test_unreachable_rest_server_is_a_connection_error():
    """A refused connection raises APIConnectionError (after retries)."""
    with Speech(api_key="k", base_url="http://127.0.0.1:9", max_retries=0) as speech:
        with pytest.raises(APIConnectionError):
            speech.account_info()


class WrongBodyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 200 with the body its path names: not JSON, or JSON of the wrong shape."""

    BODIES = {"/v1/account": b"<html>a proxy's page</html>", "/v1/ai/voice/list": b'{"voices": []}',
              "/v1/ai/voice/lily": b"[1, 2]"}

    def do_GET(self):
        body = self.BODIES[self.path.split("?")[0]]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_body_of_the_wrong_shape_is_a_protocol_error():
    """200 with a body that is not what the call returns: ProtocolError naming the request, not a crash later."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WrongBodyHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="test-wrong-body")
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with Speech(api_key="k", base_url=url, max_retries=0) as speech:
            with pytest.raises(ProtocolError, match=r"GET /v1/account answered 200 with a body that is not JSON"):
                speech.account_info()
            with pytest.raises(ProtocolError, match=r"voice/list answered a JSON dict .* not a list of voice"):
                speech.list_voices()
            with pytest.raises(ProtocolError, match=r"GET /v1/ai/voice/lily answered a JSON list .* not a JSON object"):
                speech.voice_info("lily")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
