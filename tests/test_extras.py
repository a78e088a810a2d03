"""The package without its optional extras: one MissingDependencyError naming the extra, everywhere.

Each case runs in a child process started through ``tests/without_modules.py``, which makes the
extra's packages look uninstalled (``No module named 'numpy'``), as in an environment where only
``pip install lmnt-sync`` or ``lmnt-sync[play]`` was run.
"""
import os
import subprocess
import sys
from pathlib import Path

from playkit import noise

WITHOUT = str(Path(__file__).resolve().parent / "without_modules.py")
SERVER_PACKAGES = "aiohttp,av,numpy,soxr"


def run_without(packages, args, env=None, **kwargs):
    """Run ``python without_modules.py PACKAGES ARGS``; return the completed process (text)."""
    return subprocess.run([sys.executable, WITHOUT, packages, *args], env=env, capture_output=True,
                          text=True, timeout=120, **kwargs)


def no_key_env():
    return {k: v for k, v in os.environ.items() if k not in ("LMNT_API_KEY", "LMNT_BASE_URL")}


LIBRARY_CASES = """
from lmnt_sync import MissingDependencyError, Speech
try:
    from lmnt_sync.server import LocalServer
except MissingDependencyError as exc:
    print("import:", exc)
try:
    Speech(local=True)
except MissingDependencyError as exc:
    print("Speech:", exc)
"""


def test_the_library_raises_missing_dependency_error_naming_the_extra():
    """`from lmnt_sync.server import LocalServer` and `Speech(local=True)` raise
    MissingDependencyError naming [server] and the missing package."""
    done = run_without(SERVER_PACKAGES, ["-c", LIBRARY_CASES], no_key_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["import", "Speech"]
    for line in lines:
        assert "pip install 'lmnt-sync[server]'" in line and "is not installed" in line


def test_the_commands_print_one_line_naming_the_extra(tmp_path):
    """`python -m lmnt_sync.server`, `lmnt-sync serve` and `lmnt-sync speak` without a key print
    one error line naming [server] (no traceback, no bare `No module named`) and exit 1."""
    commands = [["-m", "lmnt_sync.server", "--port", "0"], ["-m", "lmnt_sync", "serve"],
                ["-m", "lmnt_sync", "speak", "Hello.", "-o", str(tmp_path / "x.mp3")]]
    for args in commands:
        done = run_without(SERVER_PACKAGES, args, no_key_env())
        assert done.returncode == 1, (args, done.stderr)
        error = [line for line in done.stderr.splitlines() if "error:" in line]
        assert len(error) == 1 and "pip install 'lmnt-sync[server]'" in error[0], (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_play_with_a_wav_file_needs_no_pyav_and_one_session(server, audio_out, tmp_path):
    """With [play] but not [server], --play -o out.wav plays and writes from one PCM session."""
    import wave

    env = dict(os.environ, LMNT_API_KEY=server.api_key, LMNT_BASE_URL=server.url, **audio_out.env)
    before = len(server.client_frames())
    out = tmp_path / "both.wav"
    done = run_without(SERVER_PACKAGES, ["-m", "lmnt_sync", "speak", "Heard and written once.", "--voice",
                                         "synth", "--play", "-o", str(out)], env)
    assert done.returncode == 0, done.stderr
    assert noise(done.stderr) == []
    assert len(server.client_frames()[before:]) == 1
    with wave.open(str(out)) as wav:
        written = wav.readframes(wav.getnframes())
    # The same samples were heard; an underrun on a busy machine only adds silence between them.
    assert len(written) > 24000 and written.replace(b"\x00", b"") == audio_out.played().replace(b"\x00", b"")


def test_play_with_an_mp3_file_without_pyav_names_the_extra_and_opens_nothing(server, audio_out, tmp_path):
    """With [play] but not [server], --play -o out.mp3 would need a second session (billed twice):
    it stops before connecting, with a visible error naming [server] and the .wav way out."""
    env = dict(os.environ, LMNT_API_KEY=server.api_key, LMNT_BASE_URL=server.url, **audio_out.env)
    before = len(server.client_frames())
    folder = tmp_path / "out"
    folder.mkdir()
    done = run_without(SERVER_PACKAGES, ["-m", "lmnt_sync", "speak", "Hello.", "--voice", "synth", "--play",
                                         "-o", str(folder / "x.mp3")], env)
    assert done.returncode == 1
    assert "lmnt-sync[server]" in done.stderr and ".wav" in done.stderr
    assert len(server.client_frames()) == before
    assert list(folder.iterdir()) == []
