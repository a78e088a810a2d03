"""Security: TLS is verified by default, and the API key never shows up in logs, output or errors."""
import logging
import ssl
import subprocess

import pytest

from faultproxy import FaultProxy
from lmnt_sync import Speech
from lmnt_sync.errors import APIConnectionError, AuthenticationError, SessionError


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made with openssl for this run."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_proxy(server, self_signed):
    """The real local server behind TLS with the self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, self_signed))
    proxy = FaultProxy(server.port, ssl_context=context)
    yield proxy
    proxy.close()


def test_self_signed_server_is_refused_by_default(server, tls_proxy):
    """REST and websocket refuse an unverifiable certificate unless told to trust it."""
    assert tls_proxy.url.startswith("https://")
    with Speech(api_key=server.api_key, base_url=tls_proxy.url, max_retries=0) as speech:
        with pytest.raises(APIConnectionError):
            speech.list_voices()
        with pytest.raises(APIConnectionError, match="TLS|certificate|SSL"):
            speech.synthesize_streaming("lily", connect_timeout=5)


def test_self_signed_server_is_accepted_with_its_ca_bundle(server, tls_proxy, self_signed):
    """With verify=<CA bundle>, REST and wss:// work through TLS."""
    with Speech(api_key=server.api_key, base_url=tls_proxy.url, verify=str(self_signed[0])) as speech:
        assert speech.list_voices()
        with speech.synthesize_streaming("lily", format="pcm_s16le") as conn:
            conn.append_text("Secure hello.")
            conn.finish()
            assert sum(len(m["audio"]) for m in conn) > 0


def test_api_key_never_logged_printed_or_raised(server, caplog, capfd):
    """A full session and failing calls at DEBUG logging leave the key in no log line, output or error."""
    secret = server.api_key
    caplog.set_level(logging.DEBUG)
    texts = []
    with Speech(api_key=secret, base_url=server.url) as speech:
        with speech.synthesize_streaming("lily", return_extras=True) as conn:
            conn.append_text("Nothing to hide.")
            conn.flush(wait=True, timeout=10)
            texts.append(repr(conn))
        speech.list_voices()
        with pytest.raises(Exception) as caught:
            speech.voice_info("missing-voice")
        texts += [str(caught.value), repr(caught.value), repr(speech), repr(speech.rest)]
        conn = speech.synthesize_streaming("no-such-voice")
        with pytest.raises(SessionError) as session_error:
            conn.recv(timeout=10)
        conn.close()
        texts += [str(session_error.value), repr(session_error.value)]
    wrong = "wrong-" + secret[::-1]
    with Speech(api_key=wrong, base_url=server.url, max_retries=0) as other:
        with pytest.raises(AuthenticationError) as auth_error:
            other.account_info()
    texts += [str(auth_error.value), repr(auth_error.value), repr(auth_error.value.body)]
    out, err = capfd.readouterr()
    everything = "\n".join(texts + [record.getMessage() for record in caplog.records] + [out, err])
    assert caplog.records, "DEBUG logging captured nothing: the check would be vacuous"
    assert secret not in everything and wrong not in everything
