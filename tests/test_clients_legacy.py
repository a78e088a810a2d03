"""The legacy LMNT SDKs (lmnt 1.1.4 and 1.2.0) create voices on the local server.

Their create_voice posts aiohttp's default multipart/mixed body (a metadata
JSON part plus file_field parts); LMNT's API accepted that, so the server
reads any multipart/* subtype. lmnt 1.2.0 also has convert, which gets the
server's 501 (voice conversion is not supported). The SDKs run in
.venv-legacy and .venv-legacy12 (tests/client_kit.py); the direct tests
below pin the content types down.
"""
import json

import pytest
import requests

from client_kit import SCRIPTS, audio_of, run_client, sample_wav, venv_python
from lmnt_sync.server import LocalServer
from lmnt_sync.server.rest import CONVERT_UNSUPPORTED
from server_kit import decode


@pytest.fixture(scope="module")
def srv():
    """A synthetic-engine server for this module."""
    with LocalServer(engine="synthetic") as server:
        yield server


@pytest.mark.parametrize("venv, version", [(".venv-legacy", "1.1.4"), (".venv-legacy12", "1.2.0")])
def test_legacy_sdk_creates_uses_and_deletes_a_voice(srv, tmp_path, venv, version):
    """create_voice (multipart/mixed) makes a voice that synthesize speaks; delete_voice removes it."""
    python = venv_python(venv, f"import lmnt.api, importlib.metadata as m; assert m.version('lmnt') == {version!r}")
    report = run_client([python, SCRIPTS / "legacy_voice.py", srv.url, srv.api_key,
                         sample_wav(tmp_path / "me.wav")])
    created = report["created"]
    assert created["name"] == "Legacy clone" and created["owner"] == "me" and created["gender"] == "female"
    assert report["mine"] == [created["id"]]
    rate, seconds, _ = decode(audio_of(report), "wav", 24000)
    assert rate == 24000 and seconds > 1
    assert [d["text"] for d in report["durations"]] == ["The", "legacy", "voice", "speaks."]
    assert report["deleted"] == {"success": True} and report["after"] == []
    if version == "1.2.0":  # convert arrived in 1.2.0: the server's 501 in the legacy shape
        assert report["convert"] == {"status": 501, "message": f"[Speech.convert]: {CONVERT_UNSUPPORTED}"}
    else:
        assert report["convert"] is None


def _multipart(subtype, boundary="b"):
    """A legacy-layout body (metadata part + one file part) under ``multipart/<subtype>``."""
    metadata = json.dumps({"name": f"Via {subtype}", "enhance": False, "type": "instant"})
    body = (f'--{boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            f'{metadata}\r\n--{boundary}\r\nContent-Type: audio/wav\r\n'
            f'Content-Disposition: form-data; name="file_field"; filename="a.wav"\r\n\r\nRIFF\r\n'
            f'--{boundary}--\r\n').encode()
    return body, f"multipart/{subtype}; boundary={boundary}"


@pytest.mark.parametrize("subtype", ["mixed", "form-data", "related"])
def test_voice_create_accepts_any_multipart_subtype(srv, subtype):
    """POST /v1/ai/voice reads multipart/mixed, form-data and related bodies alike."""
    body, ctype = _multipart(subtype)
    response = requests.post(srv.url + "/v1/ai/voice", data=body, timeout=30,
                             headers={"X-API-Key": srv.api_key, "Content-Type": ctype})
    assert response.status_code == 200, response.text
    voice = response.json()
    assert voice["name"] == f"Via {subtype}" and voice["owner"] == "me"
    assert requests.delete(f"{srv.url}/v1/ai/voice/{voice['id']}", headers={"X-API-Key": srv.api_key},
                           timeout=30).json() == {"success": True}


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "multipartx/mixed"])
def test_voice_create_refuses_bodies_that_are_not_multipart(srv, ctype):
    """A non-multipart body is a 400 invalid_request_error naming what is needed."""
    response = requests.post(srv.url + "/v1/ai/voice", data=b'{"name": "x"}', timeout=30,
                             headers={"X-API-Key": srv.api_key, "Content-Type": ctype, "lmnt-version": "1.2"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "multipart" in error["message"]
