"""The lmnt-sync command, run for real as a subprocess against the local server."""
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
import wave

import pytest

from conftest import wait_until
from playkit import audio_out, pulse_sink  # noqa: F401 - fixtures

MODULE = [sys.executable, "-m", "lmnt_sync"]


@pytest.fixture
def env(server):
    """Environment pointing the command at the synthetic local server."""
    return dict(os.environ, LMNT_API_KEY=server.api_key, LMNT_BASE_URL=server.url)


def run(args, env, **kwargs):
    """Run ``python -m lmnt_sync ARGS``; return the completed process (text output)."""
    return subprocess.run(MODULE + args, env=env, capture_output=True, text=True, timeout=60, **kwargs)


def test_speak_to_mp3_through_the_console_script(env, tmp_path):
    """`lmnt-sync speak TEXT -o out.mp3` writes an mp3 that decodes to about the speech's length."""
    import av  # a [test] dependency: missing means a broken install, not a skip
    script = shutil.which("lmnt-sync")
    assert script, "the console script is not installed (pip install -e .)"
    out = tmp_path / "out.mp3"
    done = subprocess.run([script, "speak", "Hello there, command line.", "--voice", "synth", "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        frames = list(container.decode(audio=0))
    seconds = sum(frame.samples for frame in frames) / frames[0].sample_rate
    assert 1.0 < seconds < 3.0


def test_wav_output_is_pcm_in_a_wav_header(env, tmp_path):
    """A .wav file gets 16-bit PCM at the requested rate with a correct length."""
    out = tmp_path / "out.wav"
    done = run(["speak", "One two three.", "--voice", "synth", "--sample-rate", "16000", "-o", str(out)], env)
    assert done.returncode == 0, done.stderr
    with wave.open(str(out)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        assert wav.getnframes() * 2 == os.path.getsize(out) - 44


def test_stdin_is_spoken_line_by_line_as_it_arrives(env, tmp_path):
    """Each stdin line is flushed: its audio is in the file before the next line is typed."""
    out = tmp_path / "out.pcm"
    proc = subprocess.Popen(MODULE + ["speak", "--voice", "synth", "-o", str(out)], env=env,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("The first line.\n")
        proc.stdin.flush()
        assert wait_until(lambda: out.exists() and out.stat().st_size > 0, timeout=20), "no audio for line 1"
        first = out.stat().st_size
        proc.stdin.write("\nAnd the second line.\n")
        proc.stdin.close()
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert out.stat().st_size > first * 1.5


def test_stdout_gets_the_audio_when_redirected(env):
    """Without -o or --play, audio goes to a redirected stdout (mp3 by default)."""
    done = subprocess.run(MODULE + ["speak", "Hi there.", "--voice", "synth"], env=env,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout[:3] == b"ID3" or done.stdout[0] == 0xFF


def test_voices_lists_ids_and_json(env):
    """`voices` prints one voice per line; --json the full records."""
    plain = run(["voices"], env)
    assert plain.returncode == 0
    assert any(line.split()[0] == "synth" for line in plain.stdout.splitlines())
    records = json.loads(run(["voices", "--json"], env).stdout)
    assert {"synth", "synth-high"} <= {voice["id"] for voice in records}


def test_account_shows_plan_and_usage(env):
    """`account` prints dotted keys, --json the raw answer."""
    plain = run(["account"], env)
    assert plain.returncode == 0 and "plan.type: " in plain.stdout
    assert "usage" in json.loads(run(["account", "--json"], env).stdout)


@pytest.mark.parametrize("args, words", [
    (["speak", "Hello.", "--voice", "no-such-voice", "-o", "{tmp}/x.mp3"], "no-such-voice"),
    (["speak", "Hello.", "--voice", "synth", "--format", "flac", "-o", "{tmp}/x.raw"], "flac"),
    (["speak", "Hello.", "--voice", "synth", "-o", "{tmp}/x.xyz"], ".xyz"),
])
def test_errors_are_one_line_and_exit_1(env, tmp_path, server, args, words):
    """A bad voice or format exits 1 with one `lmnt-sync: error:` line naming it, and no key."""
    done = run([arg.format(tmp=tmp_path) for arg in args], env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmnt-sync: error: ") and words in lines[0]
    assert server.api_key not in done.stderr + done.stdout


def test_without_a_key_the_embedded_server_is_used_and_announced(tmp_path):
    """With LMNT_API_KEY unset, speech comes from the embedded server and stderr says so."""
    env = {k: v for k, v in os.environ.items() if k not in ("LMNT_API_KEY", "LMNT_BASE_URL")}
    out = tmp_path / "out.mp3"
    done = run(["speak", "Offline speech.", "-o", str(out)], env)
    assert done.returncode == 0, done.stderr
    assert "embedded local server" in done.stderr
    assert out.stat().st_size > 1000


def test_play_streams_to_the_audio_device(env, audio_out):
    """--play plays the speech through pyaudio (here into the recording test device)."""
    done = run(["speak", "Playing this aloud.", "--voice", "synth", "--play"], dict(env, **audio_out.env))
    assert done.returncode == 0, done.stderr
    assert len(audio_out.played().strip(b"\x00")) > 24000


def test_play_and_mp3_output_share_one_session(env, audio_out, server, tmp_path):
    """--play with -o out.mp3 opens one PCM session: heard and written, the text synthesized once."""
    import av

    text = "One session for both the speakers and the file."
    sessions_before = len(server.client_frames())
    out = tmp_path / "both.mp3"
    done = run(["speak", text, "--voice", "synth", "--play", "-o", str(out)], dict(env, **audio_out.env))
    assert done.returncode == 0, done.stderr
    new_sessions = server.client_frames()[sessions_before:]
    assert len(new_sessions) == 1 and new_sessions[0][0]["format"] == "pcm_s16le"
    played_seconds = len(audio_out.played().strip(b"\x00")) / 2 / 24000
    with av.open(str(out)) as container:
        frames = list(container.decode(audio=0))
    written_seconds = sum(frame.samples for frame in frames) / frames[0].sample_rate
    assert played_seconds > 1.0
    assert abs(written_seconds - played_seconds) < 0.15  # mp3 adds encoder padding; silence trimmed from the recording


def test_progress_is_drawn_on_a_terminal_only(env, tmp_path):
    """On a TTY stderr a progress line is drawn (and erased); on a pipe nothing is."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(MODULE + ["speak", "--voice", "synth", "-o", str(tmp_path / "o.pcm")], env=env,
                            stdin=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    seen = b""
    try:
        for line in ("One line.\n", "Two lines.\n", "Three lines.\n"):
            proc.stdin.write(line)
            proc.stdin.flush()
            time.sleep(0.7)  # longer than the display's initial delay, however slow the start
        proc.stdin.close()
        while True:
            ready, _, _ = select.select([leader], [], [], 10)
            try:
                chunk = os.read(leader, 4096) if ready else b""
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                break
            seen += chunk
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)
    assert b"line(s)" in seen and b"\r\x1b[K" in seen
    piped = run(["speak", "Quiet on a pipe.", "--voice", "synth", "-o", str(tmp_path / "p.pcm")], env)
    assert "line(s)" not in piped.stderr


def test_serve_delegates_to_the_server_command():
    """`lmnt-sync serve --help` is the local server's own help."""
    done = subprocess.run(["lmnt-sync", "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--engine" in done.stdout
