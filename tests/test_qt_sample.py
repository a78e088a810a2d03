"""The Qt sample, offscreen: Speak plays through the recording ALSA device, captions arrive on the
GUI thread, Stop cuts the sentence short; and lmnt_sync.qt.qt_executor on its own."""
import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt creates its application
from PySide6.QtCore import QEventLoop, QThread, QTimer  # noqa: E402 - after the platform is chosen
from PySide6.QtWidgets import QApplication  # noqa: E402

from lmnt_sync import ConfigurationError  # noqa: E402
from lmnt_sync.qt import qt_executor  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "qt_speaker.py"


def load_sample():
    spec = importlib.util.spec_from_file_location("qt_speaker", SAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication([])


def run_until(app, done, timeout=30.0):
    """Run the Qt event loop until ``done()`` is true (checked on each event batch) or ``timeout``."""
    loop = QEventLoop()
    check = QTimer()
    check.setInterval(5)
    check.timeout.connect(lambda: loop.quit() if done() else None)
    limit = QTimer()
    limit.setSingleShot(True)
    limit.timeout.connect(loop.quit)
    check.start()
    limit.start(int(timeout * 1000))
    if not done():
        loop.exec()
    check.stop()
    limit.stop()
    return done()


def test_qt_executor_runs_calls_on_the_gui_thread_in_order(app):
    """Calls submitted from another thread run later, on the GUI thread, in submission order."""
    ran = []
    executor = qt_executor()
    worker = threading.Thread(target=lambda: [executor.submit(lambda i=i: ran.append((i, QThread.currentThread())))
                                              for i in range(50)])
    worker.start()
    worker.join()
    assert run_until(app, lambda: len(ran) == 50)
    assert [i for i, _ in ran] == list(range(50))
    assert all(thread is app.thread() for _, thread in ran)


def test_qt_executor_logs_a_failing_call_and_goes_on(app, caplog):
    ran = []
    executor = qt_executor()
    executor.submit(lambda: 1 / 0)
    executor.submit(ran.append, "after")
    assert run_until(app, lambda: ran == ["after"])
    assert "ZeroDivisionError" in caplog.text


def test_qt_executor_needs_an_application():
    """Without a QApplication the executor cannot know the GUI thread: a clear error (in a fresh process)."""
    code = ("from lmnt_sync.qt import qt_executor\n"
            "try:\n    qt_executor()\nexcept Exception as e:\n    print(type(e).__name__, e)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith(ConfigurationError.__name__) and "QApplication" in done.stdout, done.stderr


def test_speak_then_stop_offscreen(app, speech, audio_out):
    """Clicking Speak plays the sentence with captions on the GUI thread; Stop silences it mid-way."""
    sample = load_sample()
    window = sample.SpeakerWindow(speech, voice="synth")
    try:
        window.show()
        window.speak_button.click()
        assert run_until(app, lambda: len(window.captions) >= 3), "no captions were shown"
        window.stop_button.click()  # blocks until the device has stopped
        stopped_at = len(audio_out.played())
        shown = len(window.captions)
        window.player.wait_idle(timeout=30)
        # After Stop, nothing new is heard: what was queued and what the server still had is dropped.
        app.processEvents()
        assert len(window.captions) == shown
        assert not audio_out.played()[stopped_at:].strip(b"\x00")
    finally:
        window.close()
    words = [text for text, _ in window.captions]
    full = sample.TEXT.split()
    assert words == full[:len(words)] and 3 <= len(words) < len(full) - 3
    assert {thread for _, thread in window.captions} == {threading.get_ident()}  # the GUI thread: this one
    assert window.caption.text() == words[-1]
    whole = len(speech.synthesize(sample.TEXT, "synth", format="pcm_s16le", sample_rate=24000))
    played = len(audio_out.played().strip(b"\x00"))
    assert 0 < played < whole / 2, f"{played} of {whole} bytes played: Stop did not cut it short"


def test_demo_runs_offscreen(env_for_samples):
    """``--demo`` (a separate process, offscreen) speaks, stops after three words and exits."""
    done = subprocess.run([sys.executable, str(SAMPLE), "--demo"], env=env_for_samples, capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "speak" and lines[1].startswith("stop (last caption: ")


@pytest.fixture
def env_for_samples(server, audio_out):
    return dict(os.environ, LMNT_API_KEY=server.api_key, LMNT_BASE_URL=server.url, QT_QPA_PLATFORM="offscreen",
                **audio_out.env)
