"""The lmnt-sync command, run for real as a subprocess against the local server."""
import json
import os
import pty
import subprocess
import sys
import wave

import pytest

from conftest import wait_until

MODULE = [sys.executable, "-m", "lmnt_sync"]
# The console script of this interpreter's environment (.venv/bin is not on PATH unless activated).
SCRIPT = os.path.join(os.path.dirname(sys.executable), "lmnt-sync")


@pytest.fixture
def env(server):
    """Environment pointing the command at the synthetic local server."""
    return dict(os.environ, LMNT_API_KEY=server.api_key, LMNT_BASE_URL=server.url)


def run(args, env, **kwargs):
    """Run ``python -m lmnt_sync ARGS``; return the completed process (text output)."""
    return subprocess.run(MODULE + args, env=env, capture_output=True, text=True, timeout=240, **kwargs)


def test_speak_to_mp3_through_the_console_script(env, tmp_path):
    """`lmnt-sync speak TEXT -o out.mp3` writes an mp3 that decodes to about the speech's length."""
    import av  # a [test] dependency: missing means a broken install, not a skip
    script = SCRIPT
    assert os.access(script, os.X_OK), "the console script is not installed (pip install -e .)"
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
        # Until the job succeeds the audio goes to a temporary file beside out.pcm.
        assert wait_until(lambda: written(tmp_path) > 0, timeout=60), "no audio for line 1"
        first = written(tmp_path)
        proc.stdin.write("\nAnd the second line.\n")
        proc.stdin.close()
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert out.stat().st_size > first * 1.5


def written(folder):
    """Bytes in the (only) file in ``folder``, 0 if none yet."""
    files = list(folder.iterdir())
    assert len(files) <= 1, files
    try:
        return files[0].stat().st_size if files else 0
    except FileNotFoundError:  # renamed in between
        return written(folder)


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
    """`account` prints labelled lines (usage.characters is what remains), --json the raw answer."""
    plain = run(["account"], env)
    assert plain.returncode == 0 and "plan: local" in plain.stdout
    assert int(plain.stdout.split("characters remaining: ")[1].split()[0]) > 0
    assert "usage" in json.loads(run(["account", "--json"], env).stdout)


def test_an_unknown_voice_is_one_line_exit_1_and_points_at_the_voices_command(env, tmp_path, server):
    """An unknown voice exits 1 with one `lmnt-sync: error:` line naming it and the `voices`
    command (not an HTTP request to send), and never the key."""
    done = run(["speak", "Hello.", "--voice", "no-such-voice", "-o", str(tmp_path / "x.mp3")], env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmnt-sync: error: ")
    assert "no-such-voice" in lines[0] and "`lmnt-sync voices`" in lines[0] and "GET " not in lines[0]
    assert server.api_key not in done.stderr + done.stdout


def no_server_env():
    """The environment without a key: the command would start the embedded server."""
    return {k: v for k, v in os.environ.items() if k not in ("LMNT_API_KEY", "LMNT_BASE_URL")}


@pytest.mark.parametrize("args, words", [
    (["speak", "Hello.", "--format", "flac", "-o", "{tmp}/x.raw"], "flac"),
    (["speak", "Hello.", "--sample-rate", "44100", "-o", "{tmp}/x.mp3"], "44100"),
    (["speak", "Hello.", "-o", "{tmp}/x.xyz"], ".xyz"),
    (["speak", "Hello.", "-o", "{tmp}/no-such-folder/x.mp3"], "no-such-folder"),
    (["speak", "Hello.", "-o", "{tmp}"], "is a folder"),
    (["speak", "", "-o", "{tmp}/x.mp3"], "empty"),
    (["speak", "Hello.", "--encoding", "no-such-codec", "-o", "{tmp}/x.mp3"], "no-such-codec"),
])
def test_usage_errors_exit_2_before_anything_starts(tmp_path, args, words):
    """Bad arguments exit 2 naming what is wrong, before the embedded server is started (its
    announcement is never printed) and without creating the output file."""
    done = run([arg.format(tmp=tmp_path) for arg in args], no_server_env())
    assert done.returncode == 2, done.stderr
    assert "error: " in done.stderr.splitlines()[-1] and words in done.stderr.splitlines()[-1]
    assert "embedded local server" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_nothing_to_do_on_a_terminal_is_a_usage_error(tmp_path):
    """Without -o or --play and stdout on a terminal, the command exits 2 at once."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(MODULE + ["speak", "Hello."], env=no_server_env(), stdout=follower,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2 and "nothing to do" in done.stderr
    assert "embedded local server" not in done.stderr


def test_a_failed_run_leaves_an_existing_file_untouched(env, tmp_path):
    """A run that fails (unknown voice) neither truncates the existing output file nor leaves
    a temporary file behind; a good run then replaces it."""
    out = tmp_path / "keep.mp3"
    out.write_bytes(b"precious")
    done = run(["speak", "Hello.", "--voice", "no-such-voice", "-o", str(out)], env)
    assert done.returncode == 1
    assert out.read_bytes() == b"precious" and list(tmp_path.iterdir()) == [out]
    done = run(["speak", "Hello.", "--voice", "synth", "-o", str(out)], env)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 1000 and list(tmp_path.iterdir()) == [out]


def test_a_failed_run_leaves_no_empty_file(env, tmp_path):
    """Failing runs (unknown voice; stdin without text) create no file at all."""
    out = tmp_path / "new.wav"
    assert run(["speak", "Hello.", "--voice", "no-such-voice", "-o", str(out)], env).returncode == 1
    empty = run(["speak", "--voice", "synth", "-o", str(out)], env, input="\n  \n")
    assert empty.returncode == 1 and "no text" in empty.stderr
    assert list(tmp_path.iterdir()) == []


def test_non_utf8_stdin_names_the_line_and_the_way_through(env, tmp_path):
    """Latin-1 bytes on stdin (or in an argument): an error naming the line, the encoding and
    --encoding (no traceback, no file); with --encoding latin-1 the text is spoken."""
    text = "Hello there.\nCaf\u00e9 au lait.\n".encode("latin-1")
    out = tmp_path / "out.wav"
    for locale in ("C.UTF-8", "C"):
        done = subprocess.run(MODULE + ["speak", "--voice", "synth", "-o", str(out)], input=text,
                              env=dict(env, LC_ALL=locale), capture_output=True, timeout=60)
        error = done.stderr.decode()
        assert done.returncode == 1 and "Traceback" not in error, error
        assert "stdin line 2 is not valid utf-8" in error and "--encoding" in error
        assert not out.exists()
    done = subprocess.run(MODULE + ["speak", "--voice", "synth", "--encoding", "latin-1", "-o", str(out)],
                          input=text, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert wav_frames(out) > 24000
    out.unlink()
    argument = [arg.encode() for arg in MODULE + ["speak", "--voice", "synth", "-o", str(out)]] + [text]
    done = subprocess.run(argument, env=dict(env, LC_ALL="C.UTF-8"), capture_output=True, timeout=60)
    assert done.returncode == 1 and "the text argument line 2 is not valid utf-8" in done.stderr.decode()
    done = subprocess.run(argument + [b"--encoding", b"latin-1"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert wav_frames(out) > 24000


def wav_frames(path):
    """The number of frames in a WAV file."""
    with wave.open(str(path)) as wav:
        return wav.getnframes()


def synthetic_seconds(text):
    """Length of the synthetic engine's speech for ``text``: 60 ms + 40 ms per character and
    a 50 ms gap per word (lmnt_sync/server/engines/synthetic.py)."""
    return sum(0.060 + 0.040 * len(word) + 0.050 for word in text.split())


def test_text_over_the_servers_limits_is_spoken_whole(env, tmp_path):
    """An argument over 64 KiB (one websocket message) and piped text over 100,000 characters
    (the server's buffer) are spoken in full: every word's audio is in the output."""
    words = [f"w{i:04d}" + "x" * 40 for i in range(1500)]  # 46-character words: little audio per byte
    argument = ". ".join(words) + "."
    assert len(argument.encode()) > 64 * 1024
    done = subprocess.run(MODULE + ["speak", argument, "--voice", "synth", "--format", "ulaw",
                                    "--sample-rate", "8000", "-o", "-"], env=env, capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) > 0.98 * 8000 * synthetic_seconds(argument)
    lines = "\n".join(" ".join(words[i:i + 100]) + "." for i in range(0, 1500, 100)) * 2
    assert len(lines) > 100_000
    done = subprocess.run(MODULE + ["speak", "--voice", "synth", "--format", "ulaw", "--sample-rate", "8000",
                                    "-o", "-"], env=env, input=lines.encode(), capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) > 0.98 * 8000 * synthetic_seconds(lines)


def test_text_file_of_any_length(env, tmp_path):
    """--file reads the text from a file (for text too long for an argument)."""
    source = tmp_path / "text.txt"
    source.write_text("From a file. " * 20)
    out = tmp_path / "out.wav"
    done = run(["speak", "--file", str(source), "--voice", "synth", "-o", str(out)], env)
    assert done.returncode == 0, done.stderr
    assert wav_frames(out) / 24000 > 0.98 * synthetic_seconds(source.read_text())


@pytest.mark.parametrize("args", [["voices"], ["speak", "Hello.", "--voice", "synth", "-o", "-"]])
def test_a_closed_stdout_pipe_ends_quietly(env, args):
    """Output into a pipe whose reader is gone (`| head -1`) ends with status 141 (as SIGPIPE
    would) and nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before anything is written
    try:
        done = subprocess.run(MODULE + args, env=env, stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""


def test_a_refused_connection_names_the_server_and_the_cause(env):
    """A REST call to a server that is not there names the URL and why it failed."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run(["voices"], dict(env, LMNT_BASE_URL=f"http://127.0.0.1:{port}"))
    assert done.returncode == 1
    assert f"http://127.0.0.1:{port}/v1/ai/voice/list" in done.stderr and "Connection refused" in done.stderr


def test_without_a_key_the_embedded_server_is_used_and_announced(tmp_path):
    """With LMNT_API_KEY unset, speech comes from the embedded server and stderr says so."""
    out = tmp_path / "out.mp3"
    done = run(["speak", "Offline speech.", "-o", str(out)], no_server_env())
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
    spoken = synthetic_seconds(text)
    # Heard in full (an underrun on a busy machine only adds silence), written once.
    assert len(audio_out.played().strip(b"\x00")) / 2 / 24000 > spoken - 0.1
    with av.open(str(out)) as container:
        frames = list(container.decode(audio=0))
    written_seconds = sum(frame.samples for frame in frames) / frames[0].sample_rate
    assert spoken > 1.0 and abs(written_seconds - spoken) < 0.15  # mp3 adds encoder padding


def test_progress_is_drawn_on_a_terminal_only(env, tmp_path):
    """On a TTY stderr a progress line is drawn (and erased); on a pipe nothing is.

    The display waits half a second before its first draw, so lines are fed one at a time,
    each after the previous one's audio has arrived, until the line appears: however slow the
    machine, the job then spans that delay (no sleep, no assumption about start-up time).
    """
    leader, follower = pty.openpty()
    out = tmp_path / "o"
    out.mkdir()
    proc = subprocess.Popen(MODULE + ["speak", "--voice", "synth", "-o", str(out / "o.pcm")], env=env,
                            stdin=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    os.set_blocking(leader, False)
    seen = b""

    def read_terminal():
        nonlocal seen
        try:
            while True:
                chunk = os.read(leader, 4096)
                if not chunk:
                    return
                seen += chunk
        except BlockingIOError:  # nothing more for now
            return
        except OSError:  # the child closed the terminal
            return

    try:
        size = 0
        for number in range(1, 1001):
            proc.stdin.write(f"Line number {number}.\n")
            proc.stdin.flush()
            assert wait_until(lambda: written(out) > size, timeout=60), f"no audio for line {number}"  # noqa: B023
            size = written(out)
            read_terminal()
            if b"line(s)" in seen:
                break
        proc.stdin.close()
        assert proc.wait(60) == 0
        read_terminal()  # the rest, erasing included: all written before the child exited
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)
    assert b"line(s)" in seen and b"\r\x1b[K" in seen
    piped = run(["speak", "Quiet on a pipe.", "--voice", "synth", "-o", str(tmp_path / "p.pcm")], env)
    assert "line(s)" not in piped.stderr


def test_serve_delegates_to_the_server_command():
    """`lmnt-sync serve --help` is the local server's own help."""
    done = subprocess.run([SCRIPT, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--engine" in done.stdout
