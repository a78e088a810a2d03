"""livekit-plugins-lmnt (LiveKit agents' LMNT TTS) speaks through the local server.

The plugin has one path, REST ``/v1/ai/speech/bytes`` (it declares no
streaming), at a hard-coded https://api.lmnt.com URL with no base-URL
setting. Its documented ``http_session`` argument is how an application
points it elsewhere: tests/clients/livekit_client.py passes an aiohttp
session whose client middleware sends the requests to the server. The key
comes from LMNT_API_KEY. It runs in .venv-livekit (tests/client_kit.py).
"""
import base64

import pytest

from client_kit import SCRIPTS, run_client, venv_python
from lmnt_sync.server import LocalServer
from server_kit import decode, onsets, synthetic_seconds


@pytest.fixture(scope="module")
def report():
    """Run tests/clients/livekit_client.py once against a synthetic server; return its report."""
    python = venv_python(".venv-livekit", "import livekit.plugins.lmnt")
    with LocalServer(engine="synthetic") as server:
        return run_client([python, SCRIPTS / "livekit_client.py", server.url],
                          env={"LMNT_API_KEY": server.api_key})


@pytest.mark.parametrize("case, text, rate", [
    ("default", "Hello from the LiveKit plugin.", 24000),  # voice leah, mp3, 24 kHz
    ("wav", "Sixteen kilohertz wave audio.", 16000),
])
def test_synthesize_gives_every_word_at_the_requested_rate(report, case, text, rate):
    """LiveKit decodes the server's audio into frames at the rate asked for, one tone burst per word."""
    result = report[case]
    assert result["error"] is None and result["rates"] == [rate]
    got_rate, seconds, pcm = decode(base64.b64decode(result["pcm"]), "pcm_s16le", rate)
    assert got_rate == rate and seconds >= synthetic_seconds(text, rate) - 0.05
    assert len(onsets(pcm, rate)) == len(text.split())


def test_a_wrong_key_raises_livekits_api_status_error_401(report):
    """A wrong key: no audio, and LiveKit's APIStatusError carries the 401."""
    result = report["wrong_key"]
    assert result["pcm"] == "" and result["error"] == {"class": "APIStatusError", "status": 401}
