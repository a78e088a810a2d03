"""genblaze-lmnt (genblaze's LMNT provider) generates speech with the local server.

Its README's quickstart pipeline runs unchanged in .venv-genblaze
(tests/client_kit.py); the provider builds an lmnt 2.x client, so
LMNT_BASE_URL (with LMNT_API_KEY) points it at the server.
"""
import pytest

from client_kit import SCRIPTS, audio_of, run_client, venv_python
from lmnt_sync.server import LocalServer
from server_kit import decode

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Run tests/clients/genblaze_client.py once against a synthetic server; return its report."""
    python = venv_python(".venv-genblaze", "import genblaze_lmnt")
    with LocalServer(engine="synthetic") as server:
        return run_client([python, SCRIPTS / "genblaze_client.py", tmp_path_factory.mktemp("genblaze")],
                          env={"LMNT_BASE_URL": server.url, "LMNT_API_KEY": server.api_key})


def test_pipeline_step_writes_mp3_with_word_timings(report):
    """The step succeeds with an mp3 asset whose word timings cover the text and match the audio."""
    assert report["status"] == "succeeded" and report["media_type"] == "audio/mpeg" and report["manifest"]
    words = report["words"]
    assert [w["word"] for w in words] == TEXT.split()
    assert all(w["start"] < w["end"] <= nxt["start"] for w, nxt in zip(words, words[1:]))
    rate, seconds, _ = decode(audio_of(report), "mp3", 24000)
    assert rate == 24000 and seconds == pytest.approx(report["duration"], abs=0.2)


def test_a_wrong_key_fails_the_step_as_auth_failure(report):
    """A wrong key fails the step with genblaze's auth_failure code and the server's 401 message."""
    failed = report["wrong_key"]
    assert failed["status"] == "failed" and failed["code"] == "auth_failure"
    assert "401" in failed["error"] and "invalid API key" in failed["error"]
