"""Voice conversion answers 501, and lmnt 2.5.1 (the last SDK with speech.convert) says so.

The server has no offline voice-conversion model (its engines turn text into
speech), so POST /v1/ai/speech/convert answers 501 Not Implemented in LMNT's
error shape, with ``x-should-retry: false`` so the SDKs raise at once instead
of retrying. lmnt 2.5.1 runs in .venv-lmnt25 (tests/client_kit.py),
configured only by LMNT_BASE_URL and LMNT_API_KEY.
"""
import pytest
import requests

from client_kit import SCRIPTS, audio_of, run_client, sample_wav, venv_python
from lmnt_sync.server import LocalServer
from lmnt_sync.server.rest import CONVERT_UNSUPPORTED
from server_kit import decode

CONVERT = "/v1/ai/speech/convert"


@pytest.fixture(scope="module")
def srv():
    """A synthetic-engine server for this module."""
    with LocalServer(engine="synthetic") as server:
        yield server


@pytest.fixture(scope="module")
def report(srv, tmp_path_factory):
    """Run tests/clients/lmnt25.py once against ``srv``; return its report."""
    python = venv_python(".venv-lmnt25", "import lmnt; assert lmnt.__version__ == '2.5.1'")
    sample = sample_wav(tmp_path_factory.mktemp("lmnt25") / "sample.wav")
    return run_client([python, SCRIPTS / "lmnt25.py", sample],
                      env={"LMNT_BASE_URL": srv.url, "LMNT_API_KEY": srv.api_key})


def test_sdk_convert_raises_a_501_that_says_unsupported_without_retrying(report):
    """speech.convert raises InternalServerError (501) with the server's message, on the first try."""
    error = report["convert"]
    assert error["class"] == "InternalServerError" and error["status"] == 501
    assert error["body"] == {"error": CONVERT_UNSUPPORTED}  # 2.5.1 sends no lmnt-version: legacy shape
    assert "not supported by this server" in error["message"]
    assert error["retries"] == "0"


def test_sdk_rest_calls_work_through_lmnt_base_url(report):
    """speech.generate and voices.create/delete reach the server through LMNT_BASE_URL."""
    assert report["version"] == "2.5.1"
    rate, seconds, _ = decode(audio_of(report), "mp3", 24000)
    assert rate == 24000 and seconds > 1
    assert report["voice"] == "Mid era" and report["deleted"] is True


@pytest.mark.parametrize("version, expected", [
    ({"lmnt-version": "1.2"}, {"error": {"type": "invalid_request_error", "message": CONVERT_UNSUPPORTED}}),
    ({}, {"error": CONVERT_UNSUPPORTED}),
])
def test_convert_answers_501_in_the_clients_error_shape(srv, tmp_path, version, expected):
    """Current and legacy clients both get 501, their error shape, a request id and no-retry."""
    with open(sample_wav(tmp_path / "s.wav"), "rb") as audio:
        response = requests.post(srv.url + CONVERT, files={"audio": audio}, data={"voice": "lily"},
                                 headers={"X-API-Key": srv.api_key, **version}, timeout=30)
    assert response.status_code == 501 and response.json() == expected
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["request-id"].startswith("req_")


def test_convert_checks_the_key_first(srv):
    """Without a valid key the answer is 401, as for every REST route."""
    response = requests.post(srv.url + CONVERT, data={"voice": "lily"}, timeout=30,
                             headers={"X-API-Key": "wrong", "lmnt-version": "1.2"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
