"""A script that dies while the embedded server is still warming up keeps its own exit status.

The default engine loads its model in a worker thread right after the server starts listening; a
script that raises at once used to be aborted by the native runtime at interpreter exit
("terminate called without an active exception", status 134) instead of exiting 1.
"""
import os
import subprocess
import sys

import pytest

SCRIPTS = {
    "Speech": """
from lmnt_sync import Speech
speech = Speech(local=True)
conn = speech.synthesize_streaming("lily")
conn.append_text("Hello there.")
raise RuntimeError("the script's own error")
""",
    "LocalServer": """
from lmnt_sync.server import LocalServer
LocalServer().start()
raise RuntimeError("the script's own error")
""",
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_an_unclosed_embedded_server_keeps_the_scripts_exit_status(name):
    """Several runs: each exits 1 with the script's traceback, never 134 (abort)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LMNT_API_KEY", "LMNT_BASE_URL")}
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", SCRIPTS[name]], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1, done.stderr[-2000:]
        assert done.stderr.rstrip().endswith("RuntimeError: the script's own error")
        assert "terminate called" not in done.stderr
