"""The legacy LMNT SDK (lmnt==1.1.4) runs unchanged against the local server.

lmnt 1.1.4 cannot share an environment with lmnt 2.x, so the calls run in
.venv-legacy (made by tests/bootstrap.sh) via tests/legacy_sdk_script.py, as
a subprocess against a server started here. A missing venv is a failure,
not a skip: the compatibility claim must not go untested silently.
"""
import json
import subprocess
from pathlib import Path

import pytest

from lmnt_sync.server import LocalServer

HERE = Path(__file__).resolve().parent
LEGACY_PYTHON = HERE.parent / ".venv-legacy" / "bin" / "python"
SCRIPT = HERE / "legacy_sdk_script.py"


@pytest.fixture(scope="module")
def legacy_results():
    """Run the legacy SDK script once against a synthetic server; return its JSON output."""
    probe = subprocess.run([str(LEGACY_PYTHON), "-c", "import lmnt.api"], capture_output=True) \
        if LEGACY_PYTHON.exists() else None
    if probe is None or probe.returncode != 0:
        pytest.fail(f"the legacy SDK venv is missing or broken ({LEGACY_PYTHON}); "
                    "run `bash tests/bootstrap.sh` to create it")
    with LocalServer(engine="synthetic") as server:
        done = subprocess.run([str(LEGACY_PYTHON), str(SCRIPT), server.url, server.api_key, "lily"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_streaming_with_extras_gives_audio_and_durations(legacy_results):
    """synthesize_streaming(return_extras=True): every message has audio and durations, in order."""
    messages = legacy_results["streaming"]
    assert messages and all(isinstance(m["durations"], list) for m in messages)
    assert sum(m["audio"] for m in messages) > 0
    words = [d["text"] for m in messages for d in m["durations"]]
    assert words == ["Hello", "there,", "this", "is", "the", "legacy", "SDK", "speaking.",
                     "And", "a", "final", "sentence."]
    assert messages[-1]["buffer_empty"] is True


def test_streaming_without_extras_gives_audio(legacy_results):
    """synthesize_streaming without extras yields audio-only messages until the close."""
    assert legacy_results["streaming_plain"] and all(n > 0 for n in legacy_results["streaming_plain"])


def test_synthesize_returns_audio_durations_and_seed(legacy_results):
    """synthesize (form post) returns WAV audio, word durations and an integer seed."""
    synth = legacy_results["synthesize"]
    assert synth["riff"] == "RIFF" and synth["audio"] > 44 and isinstance(synth["seed"], int)
    assert [d["text"] for d in synth["durations"]] == ["Hello", "from", "the", "legacy", "synthesize", "call."]


def test_list_voices(legacy_results):
    """list_voices (Python-style starred=False/True query) lists local and LMNT voice ids."""
    assert {"lily", "synth"} <= set(legacy_results["voices"])
    assert legacy_results["starred"] == []
