"""lmnt-node (the official TypeScript SDK, npm) runs unchanged against the local server.

tests/node holds it (package.json + package-lock.json; `npm ci` in
tests/bootstrap_clients.sh) and the driver lmnt_node_client.mjs, which is
configured only as lmnt-node documents: LMNT_BASE_URL / LMNT_API_KEY in the
environment, and the constructor's baseURL / apiKey options.
"""
import base64
import shutil

import pytest

from client_kit import TESTS, audio_of, run_client, sample_wav
from lmnt_sync.server import LocalServer
from server_kit import decode

NODE_DIR = TESTS / "node"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Run the lmnt-node driver once against a synthetic server; return its report."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "lmnt-node" / "package.json").exists():
        pytest.fail("node or tests/node/node_modules/lmnt-node is missing; run `bash tests/bootstrap.sh`")
    sample = sample_wav(tmp_path_factory.mktemp("node") / "sample.wav")
    with LocalServer(engine="synthetic") as server:
        return run_client([node, NODE_DIR / "lmnt_node_client.mjs", sample],
                          env={"LMNT_BASE_URL": server.url, "LMNT_API_KEY": server.api_key})


def test_session_streams_audio_timestamps_and_acks(report):
    """sessions.create via LMNT_BASE_URL: ready first, every word timed, flush/reset acked, mp3 decodes."""
    session = report["session"]
    events = session["events"]
    assert events[0]["type"] == "ready" and events[0]["request_id"].startswith("req_")
    assert not [e for e in events if e["type"] == "error"]
    words = [t["text"] for e in events if e["type"] == "timestamps" for t in e["timestamps"]]
    assert words == ["Hello", "from", "lmnt", "node.", "This", "part", "is", "flushed", "Goodbye."]
    acks = [(e["type"], e["nonce"]) for e in events if e["type"].endswith("_complete")]
    assert acks == [("flush_complete", session["flush"]), ("reset_complete", session["reset"])]
    rate, seconds, _ = decode(audio_of(session), "mp3", 24000)
    assert rate == 24000 and seconds > 2


def test_rest_generate_detailed_voices_and_account(report):
    """speech.generate (wav), generateDetailed (timestamps), voices.create/delete and accounts work."""
    rest = report["rest"]
    rate, seconds, _ = decode(audio_of(rest, "wav"), "wav", 24000)
    assert rate == 24000 and seconds > 0.5
    detailed = rest["detailed"]
    assert [t["text"] for t in detailed["timestamps"]] == ["Details", "from", "node."]
    assert decode(base64.b64decode(detailed["audio"]), "mp3", 24000)[1] > 0.5
    assert rest["voice"]["name"] == "Node voice" and rest["voice"]["tags"] == ["node"]
    assert rest["deleted"] == {"success": True}
    assert rest["account"]["plan"]["type"] == "local"


def test_constructor_options_and_a_wrong_key(report):
    """new Lmnt({baseURL, apiKey}) reaches the server; a wrong key raises AuthenticationError (401)."""
    assert report["wrong_key"] == {"class": "AuthenticationError", "status": 401,
                                   "error": {"error": {"type": "authentication_error", "message": "invalid API key"}}}
