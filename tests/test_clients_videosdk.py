"""videosdk-plugins-lmnt (VideoSDK agents' LMNT TTS) streams from the local server.

The plugin has only a streaming path: LMNT's websocket in the legacy protocol
(it sends ``"lmnt-version": "1.0"``, plain ``text``/``flush``/``eof``
messages, no extras, so no word timings). It is pointed at the server by its
documented ``ws_url`` constructor argument, with LMNT_API_KEY in the
environment, and runs in .venv-videosdk (tests/client_kit.py).
"""
import pytest

from client_kit import SCRIPTS, audio_of, run_client, venv_python
from lmnt_sync.server import LocalServer
from server_kit import decode, onsets, synthetic_seconds, ws_url


@pytest.fixture(scope="module")
def report():
    """Run tests/clients/videosdk_client.py once against a synthetic server; return its report."""
    python = venv_python(".venv-videosdk", "import videosdk.plugins.lmnt")
    with LocalServer(engine="synthetic") as server:
        return run_client([python, SCRIPTS / "videosdk_client.py", ws_url(server)],
                          env={"LMNT_API_KEY": server.api_key})


def test_default_options_stream_the_whole_text_as_pcm(report):
    """Defaults (voice ava, pcm_s16le at 24 kHz): exactly the audio of every word, no error."""
    text = "Hello from the VideoSDK plugin."
    result = report["string"]
    assert result["errors"] == []
    audio = audio_of(result)
    assert len(audio) == round(synthetic_seconds(text) * 24000) * 2
    rate, seconds, _ = decode(audio, "pcm_s16le", 24000)
    assert rate == 24000 and seconds == pytest.approx(synthetic_seconds(text), abs=0.01)


def test_flush_markers_and_mp3_at_16k(report):
    """Text pieces with a FlushMarker between them, mp3 at 16 kHz: every word of both is spoken."""
    text = "First part of the turn, and the second part."
    result = report["flushed"]
    assert result["errors"] == []
    rate, seconds, pcm = decode(audio_of(result), "mp3", 16000)
    assert rate == 16000 and seconds >= synthetic_seconds(text, 16000)
    assert len(onsets(pcm, rate)) == len(text.split())  # one tone burst per word


def test_a_wrong_key_is_reported_through_the_error_event(report):
    """A wrong key: no audio, and the plugin emits the server's error message."""
    result = report["wrong_key"]
    assert audio_of(result) == b"" and result["errors"] == ["LMNT server error: invalid API key"]
