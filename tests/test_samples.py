"""Each sample runs as it is, against the synthetic local server (or the embedded one without a key)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture
def env(server, audio_out):
    """Environment for a sample: the synthetic server, and the recording audio device."""
    return dict(os.environ, LMNT_API_KEY=server.api_key, LMNT_BASE_URL=server.url, **audio_out.env)


def run_sample(name, env, *args, **kwargs):
    """Run ``samples/NAME`` with ``args``; return the completed process (text output)."""
    return subprocess.run([sys.executable, str(SAMPLES / name), *args], env=env, capture_output=True,
                          text=True, timeout=600, **kwargs)  # a bound for a hang, not an expectation


@pytest.fixture
def xvfb():
    """A virtual X display on a free display number; yields its DISPLAY value."""
    if not shutil.which("Xvfb"):
        pytest.fail("the Tk sample test needs Xvfb: run tests/bootstrap.sh")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as chosen:
        number = chosen.readline().strip()  # Xvfb writes the display number once it is ready
    try:
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_chatbot_speaks_each_turn_on_one_connection(env, audio_out):
    """The chatbot answers every stdin line aloud, over one connection, and exits by itself."""
    done = run_sample("chatbot.py", env, input="Hello\nWhat time is it?\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("bot: ") == 2 and "It is " in done.stdout
    assert len(audio_out.played().strip(b"\x00")) > 2 * 48000  # two replies, over a second each


def test_chatbot_scripted_conversation(env):
    """--script runs the built-in conversation to its goodbye."""
    done = run_sample("chatbot.py", env, "--script", stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("bot: ") == 3 and "Goodbye" in done.stdout


def test_captions_print_words_in_spoken_order(env, audio_out):
    """The captions sample prints each word as it is heard, in order, with rising times."""
    done = run_sample("captions.py", env, "One two three four.")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("] ")[1] for line in lines] == ["One", "two", "three", "four."]
    times = [float(line[1:].split("s]")[0]) for line in lines]
    assert times == sorted(times) and times[-1] - times[0] > 0.5
    assert audio_out.played().strip(b"\x00")


def test_captions_without_a_key_use_the_embedded_server(env):
    """With LMNT_API_KEY unset, the sample speaks through the embedded offline server."""
    del env["LMNT_API_KEY"], env["LMNT_BASE_URL"]
    done = run_sample("captions.py", env, "Offline captions.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_tk_speaker_speak_then_stop_under_xvfb(env, audio_out, xvfb):
    """The Tk app clicks Speak, then Stop at the third word heard (demo mode): the sentence is cut
    short and the app exits."""
    done = run_sample("tk_speaker.py", dict(env, DISPLAY=xvfb), "--demo")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # Stop comes once speech is heard (the third word's caption), however slow the machine.
    assert lines[0] == "speak" and lines[1] == "stop (last caption: 'a')"
    played = len(audio_out.played().strip(b"\x00")) / 48000
    assert 0.3 < played < 3.0, f"{played:.2f} s played: the long sentence was not interrupted"


NOTEBOOK_RUNNER = """
import sys, nbformat, nbclient
notebook = nbformat.read(sys.argv[1], as_version=4)
# Generous bounds, not expectations: a kernel starting on a busy machine can take minutes.
nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600, startup_timeout=600,
                        resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(notebook, sys.argv[2])
"""


@pytest.mark.timeout(1800)
def test_quickstart_notebook_runs_top_to_bottom(env, tmp_path, audio_out):
    """The notebook executes in a python3 kernel; its clips render as <audio> elements."""
    import nbclient  # noqa: F401 - [test] dependencies: missing means a broken install, not a skip
    import nbformat
    executed = tmp_path / "executed.ipynb"
    # A child process runs the kernel client, so its ZeroMQ sockets never live in this process.
    done = subprocess.run([sys.executable, "-c", NOTEBOOK_RUNNER, str(SAMPLES / "quickstart.ipynb"),
                           str(executed), str(SAMPLES)], env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    notebook = nbformat.read(executed, as_version=4)
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    html = [out["data"].get("text/html", "") for out in outputs if "data" in out]
    assert sum("<audio controls" in item for item in html) == 2
    text = "".join(out.get("text", "") for out in outputs)
    assert "heard: This plays while the next cell runs." in text
    assert audio_out.played().strip(b"\x00")
