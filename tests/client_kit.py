"""Run a third-party LMNT client in its own environment against a local server.

Clients that cannot share this environment (lmnt 1.x, lmnt 2.5, the LiveKit
and VideoSDK plugins, lmnt-node) are installed by tests/bootstrap.sh in their
own virtualenv (or tests/node/). Their driver scripts live in tests/clients/;
each prints one JSON object as its last stdout line, with audio as base64 so
the test decodes it here with PyAV. A missing environment is a failure, not
a skip: a compatibility claim must not go untested silently.
"""
import base64
import json
import math
import os
import struct
import subprocess
import wave
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCRIPTS = TESTS / "clients"


def venv_python(venv: str, probe: str) -> Path:
    """Return ``ROOT/venv``'s python after checking that it can run ``probe`` (an import)."""
    python = ROOT / venv / "bin" / "python"
    ok = python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0
    if not ok:
        pytest.fail(f"{venv} is missing or broken (cannot run {probe!r}); run `bash tests/bootstrap.sh`")
    return python


def run_client(command: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: float = 180) -> Dict[str, Any]:
    """Run ``command`` with ``env`` added to a copy of os.environ minus LMNT_*; return its JSON report.

    Blocks until the command exits (at most ``timeout`` seconds).

    Raises:
        AssertionError: the command failed (its stderr tail is shown).
        subprocess.TimeoutExpired: it ran longer than ``timeout``.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("LMNT_")}
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})}, cwd=str(ROOT))
    assert done.returncode == 0, f"{command[1:2]} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def audio_of(report: Dict[str, Any], key: str = "audio") -> bytes:
    """Return the base64 audio ``report[key]`` as bytes."""
    return base64.b64decode(report[key])


def sample_wav(path):
    """Write one second of a 220 Hz tone as a 16 kHz WAV (the 'voice sample'); return the path."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / 16000)))
                                 for i in range(16000)))
    return path
