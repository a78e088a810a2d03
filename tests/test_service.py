"""Running the server as a service: TLS (issue 13, "Running it as a service").

Real processes and sockets: the server with a certificate made at test
time, and our client verifying it against that certificate.
"""
import json
import subprocess

import pytest

from lmnt_sync import Speech
from lmnt_sync.errors import APIConnectionError
from server_kit import close, decode, synthetic_seconds


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_server(certificate, no_leaks_after_suite):
    from lmnt_sync.server import LocalServer

    cert, key = certificate
    with LocalServer(engine="synthetic", certfile=cert, keyfile=key) as srv:
        yield srv


def test_https_and_wss_with_a_given_certificate(tls_server, certificate):
    """REST over https and a streaming session over wss, verified against the certificate."""
    assert tls_server.url.startswith("https://")
    text = "Secure words arrive."
    with Speech(api_key=tls_server.api_key, base_url=tls_server.url, verify=str(certificate[0])) as speech:
        rest_audio = speech.synthesize(text, "lily", format="pcm_s16le", sample_rate=24000)
        with speech.synthesize_streaming("lily", format="pcm_s16le") as conn:
            conn.append_text(text)
            conn.finish()
            stream_audio = b"".join(message["audio"] for message in conn)
    for audio in (rest_audio, stream_audio):
        _, seconds, _ = decode(audio, "pcm_s16le", 24000)
        assert seconds == pytest.approx(synthetic_seconds(text), abs=0.05)


def test_an_unverified_certificate_is_refused(tls_server):
    """Without the certificate as CA the client refuses the server (no silent downgrade)."""
    with Speech(api_key=tls_server.api_key, base_url=tls_server.url, max_retries=0) as speech:
        with pytest.raises(APIConnectionError) as caught:
            speech.list_voices()
    assert "certificate" in str(caught.value).lower() or "ssl" in str(caught.value).lower()


def test_serve_command_takes_certfile_and_keyfile(certificate, tmp_path):
    """``python -m lmnt_sync.server --certfile --keyfile`` (what ``lmnt-sync serve`` runs) serves https."""
    import requests

    from service_kit import ServerProcess

    cert, key = certificate
    with ServerProcess(["--engine", "synthetic", "--data-dir", str(tmp_path), "--api-key", "k",
                        "--certfile", str(cert), "--keyfile", str(key)]) as server:
        assert server.url.startswith("https://")
        response = requests.get(server.url + "/v1/ai/voice/list", headers={"X-API-Key": "k"},
                                verify=str(cert), timeout=30)
        assert response.status_code == 200 and any(v["id"] == "lily" for v in response.json())


# -- several processes ----------------------------------------------------------


def _speak_over(ws, text):
    """Run one session on an open websocket (init already sent); return (words, audio)."""
    from server_kit import read, send

    send(ws, {"type": "text", "text": text}, {"type": "finish"})
    transcript = read(ws)
    assert transcript.close_code == 1000
    return transcript.words(), transcript.audio


def test_two_workers_share_voices_and_both_serve_sessions(tmp_path):
    """``serve --workers 2``: a voice created through the port is spoken by both worker processes."""
    import requests
    import websocket

    from server_kit import WS_PATH
    from service_kit import ServerProcess, serving_pid

    with ServerProcess(["--workers", "2", "--engine", "synthetic", "--data-dir", str(tmp_path),
                        "--api-key", "k"]) as server:
        created = requests.post(server.url + "/v1/ai/voice", headers={"X-API-Key": "k"}, timeout=60,
                                files=[("name", (None, "Shared")), ("file", ("a.wav", b"RIFF", "audio/wav"))])
        assert created.status_code == 200, created.text
        # Both workers up (a worker still booting would not see gunicorn's SIGTERM at the end).
        assert server.wait_for_count("listening on", 2, timeout=120)
        init = {"X-API-Key": "k", "lmnt-version": "1.2", "voice": created.json()["id"],
                "format": "pcm_s16le", "return_timestamps": True}
        by_worker = {}
        opened = []
        try:
            for _ in range(40):  # the kernel hands each connection to whichever worker accepts first
                ws = websocket.create_connection(server.url.replace("http", "ws") + WS_PATH, timeout=60)
                opened.append(ws)
                ws.send(json.dumps(init))
                assert read_until_ready(ws)
                by_worker.setdefault(serving_pid(server, ws.sock), ws)
                if len(by_worker) == 2:
                    break
            assert None not in by_worker and len(by_worker) == 2, by_worker
            for ws in by_worker.values():
                words, audio = _speak_over(ws, "Shared voice here.")
                assert words == ["Shared", "voice", "here."]
                _, seconds, _ = decode(audio, "pcm_s16le", 24000)
                assert seconds == pytest.approx(synthetic_seconds("Shared voice here."), abs=0.05)
        finally:
            for ws in opened:
                close(ws)
        assert server.stop() == 0


def read_until_ready(ws):
    """Read to the session's ready message; return True once it came."""
    from server_kit import read

    return read(ws, until="ready").kinds() == ["ready"]
