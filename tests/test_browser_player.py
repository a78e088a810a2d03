"""The browser player in a real JupyterLab page: headless Chromium plays a session from the kernel.

JupyterLab runs on loopback (token, temporary root and config dirs, no browser of its own);
tests/browser/drive_player.js drives Debian's Chromium through playwright-core: it runs the
notebook's cells, waits on conditions in the page and reports what the page and the kernel saw.
The kernel speaks through the synthetic local server of this test session.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import requests

from lmnt_sync import ConfigurationError
from lmnt_sync.playback.browser_player import BrowserPlayer

ROOT = Path(__file__).resolve().parent.parent
BROWSER = ROOT / "tests" / "browser"
RATE = 24000
WINDOW = 2.0  # the player's back-pressure window, seconds
TEXT1 = "The browser plays every word of this sentence while the kernel stays free for more work."
TEXT2 = ("This second sentence is long on purpose, so that the Stop button can cut it short well "
         "before its end, and the server is told to drop the rest of the text it still holds.")
TEXT3 = ("A third sentence, stopped from the kernel with player.stop() while the page is speaking it, "
         "which must silence the page just as the button does and reset the session as well.")

CELLS = [
    f"""import json, os
from lmnt_sync import Speech
from lmnt_sync.playback.browser_player import speak_in_browser
from lmnt_sync.notebook import play_in_browser
speech = Speech(api_key=os.environ["LMNT_API_KEY"], base_url=os.environ["LMNT_BASE_URL"])
player = play_in_browser(speech, {TEXT1!r}, "synth", window={WINDOW})
print("returned")""",
    """player.wait(timeout=120)
print("KERNEL " + json.dumps({"bytes": player.sent_bytes, "crc32": player.sent_crc32, "page": player.page_report}))""",
    f"""player2 = speak_in_browser(speech, {TEXT2!r}, "synth", window={WINDOW})
print("started")""",
    """player2.wait(timeout=120)
print("STOPPED " + json.dumps({"bytes": player2.sent_bytes, "crc32": player2.sent_crc32, "stops": player2.stops,
                              "page": player2.page_report}))""",
    f"""player3 = speak_in_browser(speech, {TEXT3!r}, "synth", window={WINDOW})
print("started")""",
    """player3.stop()  # from the kernel this time
player3.wait(timeout=120)
print("KSTOP " + json.dumps({"bytes": player3.sent_bytes, "crc32": player3.sent_crc32, "stops": player3.stops}))""",
    """player.close(); player2.close(); player3.close(); speech.close()
print("closed")""",
]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, what, timeout=120.0):
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def lab(server, tmp_path):
    """JupyterLab on loopback serving a notebook of CELLS; yields the notebook's URL (with token)."""
    if not shutil.which("chromium") or not (BROWSER / "node_modules" / "playwright-core").is_dir():
        pytest.fail("the browser test needs chromium and tests/browser/node_modules: run tests/bootstrap.sh")
    root = tmp_path / "root"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "player.ipynb")
    token, port = os.urandom(16).hex(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), LMNT_API_KEY=server.api_key, LMNT_BASE_URL=server.url,
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               IPYTHONDIR=str(tmp_path / "ipython"),
               # A venv made with --system-site-packages (tests/bootstrap.sh) reuses the base
               # Python's packages, whose front-end extensions (anywidget's) live under the base
               # prefix, which Jupyter does not search from inside the venv.
               JUPYTER_PATH=os.pathsep.join(filter(None, [os.environ.get("JUPYTER_PATH"),
                                                          os.path.join(sys.base_prefix, "share", "jupyter")])))
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115 - jupyter's output until it is stopped
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
         "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    base = f"http://127.0.0.1:{port}"

    def answering():
        assert proc.poll() is None, (tmp_path / "jupyter.log").read_text()
        try:
            return requests.get(f"{base}/api/status", params={"token": token}, timeout=5).ok
        except requests.ConnectionError:
            return False

    try:
        wait_for(answering, "JupyterLab answering")
        yield f"{base}/lab/tree/player.ipynb?token={token}"
    finally:
        proc.terminate()  # jupyter shuts its kernels down on SIGTERM
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_notebook_cell_plays_in_the_page_highlights_words_and_stop_resets(lab, server, speech, tmp_path):
    shots = {"playing": str(tmp_path / "player_playing.png"), "stopped": str(tmp_path / "player_stopped.png"),
             "failure": str(tmp_path / "page_at_failure.png")}
    config = tmp_path / "drive.json"
    config.write_text(json.dumps({"url": lab, "userDataDir": str(tmp_path / "chromium"), "screenshots": shots}))
    done = subprocess.run(["node", str(BROWSER / "drive_player.js"), str(config)], cwd=BROWSER, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{done.stderr[-4000:]}\n(page: {shots['failure']})"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    kept = Path(os.environ.get("LMNT_SYNC_ARTIFACTS", tmp_path.parent)) / "browser_player_screenshots"
    kept.mkdir(parents=True, exist_ok=True)
    for shot in (shots["playing"], shots["stopped"]):
        assert Path(shot).stat().st_size > 1000
        shutil.copy(shot, kept)
    print(f"widget screenshots: {kept}")

    # The cell returned at once: the page had not played the sentence yet.
    first, kernel1 = report["player1"], report["kernel1"]
    assert report["atReturn"]["state"] != "ended" and report["atReturn"]["heardFrame"] * 2 < kernel1["bytes"]

    # Every byte the kernel sent arrived in order (length and CRC checked in the page and here).
    assert first["inOrder"] and first["verified"] is True
    assert first["received"] == kernel1["bytes"] == kernel1["page"]["bytes"] > 2 * RATE * 2
    assert first["crc"] == kernel1["crc32"] == kernel1["page"]["crc32"]
    assert first["heardFrame"] * 2 == first["received"]  # and all of it was played

    # Bounded memory in the page: never more than the window (plus the chunk that crossed it) held.
    assert first["maxBufferedBytes"] <= (WINDOW * RATE) * 2 + first["maxChunk"]
    assert first["soundWhilePlaying"] > 0  # the output was not silent

    # The audio clock advanced about in real time while it played.
    audio = first["lastHeard"]["ctx"] - first["firstAudio"]["ctx"]
    wall = (first["lastHeard"]["wall"] - first["firstAudio"]["wall"]) / 1000
    assert audio > 2.0 and 0.75 < audio / wall < 1.33, f"{audio:.2f} s of audio clock in {wall:.2f} s"

    # Words lit up in spoken order, each once its first frame had been heard and its timing had
    # arrived, and the page lit them on its next ticks (the median lag is checked, as one late timer
    # on a loaded machine says nothing about the player). A timing may arrive a little after its
    # word began to sound: a busy page can start the audio before it reads the timings frame.
    words = first["highlighted"]
    assert [w["text"] for w in words] == TEXT1.split()
    assert all(w["at"] <= w["heardAt"] and w["arrivedAt"] <= w["heardAt"] for w in words), words
    assert [w["at"] for w in words] == sorted(w["at"] for w in words)
    lags = sorted(w["heardAt"] - w["at"] for w in words)
    assert lags[len(lags) // 2] < 0.25 * RATE, f"highlight lags (frames): {lags}"

    # Stop: silence at once and for good, and the server was told to drop the rest.
    stop, second, kernel2 = report["atStop"], report["player2"], report["kernel2"]
    assert stop["stops"] == 1 and stop["stoppedAt"] is not None and kernel2["stops"] == 1
    assert second["soundAfterStop"] == 0
    assert second["heardFrame"] == stop["heardFrame"] == second["heardAtStop"]
    assert len(second["highlighted"]) == len(stop["highlighted"]) < len(TEXT2.split())
    assert second["received"] == kernel2["bytes"] and second["crc"] == kernel2["crc32"] and second["verified"]
    whole = len(speech.synthesize(TEXT2, "synth", format="pcm_s16le", sample_rate=RATE))
    assert kernel2["bytes"] < whole / 2, "the stopped session kept sending"
    sessions = [frames for frames in server.client_frames()
                if any(frame.get("text") == TEXT2 for frame in frames if isinstance(frame, dict))]
    assert len(sessions) == 1 and any(frame.get("type") == "reset" for frame in sessions[0])

    # player.stop() in the kernel: the page falls silent the same way, and the session is reset.
    third, kernel3 = report["player3"], report["kernel3"]
    assert third["stops"] == 1 and kernel3["stops"] == 1 and third["soundAfterStop"] == 0
    assert third["heardFrame"] == third["heardAtStop"] < kernel3["bytes"] // 2
    assert third["received"] == kernel3["bytes"] and third["crc"] == kernel3["crc32"] and third["verified"]
    sessions = [frames for frames in server.client_frames()
                if any(frame.get("text") == TEXT3 for frame in frames if isinstance(frame, dict))]
    assert len(sessions) == 1 and any(frame.get("type") == "reset" for frame in sessions[0])


@pytest.mark.parametrize("options, named", [
    ({"sample_rate": 1000}, "sample_rate"),
    ({"sample_format": "mp3"}, "sample_format"),
    ({"preroll": 3.0, "window": 2.0}, "preroll"),
    ({"read_ahead": 0}, "read_ahead"),
])
def test_bad_options_are_named(options, named):
    with pytest.raises(ConfigurationError, match=named):
        BrowserPlayer(**options)


def test_wait_before_play_is_an_error():
    player = BrowserPlayer()
    try:
        with pytest.raises(ConfigurationError, match="before play"):
            player.wait(timeout=1)
    finally:
        player.close()
