"""What a listener hears, and when: a private PulseAudio null sink, recorded.

Shared by the playback benchmarks (``interrupt_latency.py``,
``heard_latency.py``). The audio path is the tests' (``tests/playkit.py``):
pyaudio -> PortAudio -> ALSA's ``file`` plugin -> ALSA's pulse plugin -> a
private PulseAudio null sink that consumes audio in real time. What is
heard is what the sink plays: a recorder process (``parec`` on the sink's
monitor source, this file run as a script) timestamps every chunk it reads.

The sink plays without a break (the keep-alive stream), so sample ``n`` of
the recording is played at ``t0 + n / rate``; ``t0`` is the lower envelope
of ``arrival - samples_so_far / rate`` over the chunks of a short window
(:func:`sink_origin`). A chunk can arrive late, never early, so the envelope
is the sink's clock plus the quickest delivery. A flush of a PulseAudio
stream rewinds the sink, which can shift the count by a few ms, so each
event takes ``t0`` from the chunks just before it. PulseAudio holds monitor
data back by the sink's rewind window, so audio that a flush takes back
(rendered ahead, never played) is not in the recording. Resolution: about
one sink block (2.5 ms here).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

__all__ = ["RATE", "Recorder", "open_sink", "sink_origin", "play_time", "Sounding"]

RATE = 24000  # the sink's rate (tests/playkit.py), mono s16le


def record(prefix: str) -> None:
    """Read the monitor source through parec until stdin closes; save audio and stamps."""
    parec = subprocess.Popen(["parec", "--device=out.monitor", "--raw", "--format=s16le", f"--rate={RATE}",
                              "--channels=1", "--latency-msec=5"], stdout=subprocess.PIPE)
    threading.Thread(target=lambda: (sys.stdin.read(), parec.terminate()), daemon=True).start()
    data, stamps, fd = bytearray(), [], parec.stdout.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        stamps.append((time.monotonic(), len(data) // 2))
        if len(stamps) == 1:
            print("ready", flush=True)
    parec.wait()
    Path(prefix + ".raw").write_bytes(bytes(data[: len(data) // 2 * 2]))
    np.save(prefix + ".stamps.npy", np.array(stamps, dtype=np.float64))


class Recorder:
    """The recorder process: started by the constructor, ended by ``stop`` (returns audio, stamps)."""

    def __init__(self, env: Dict[str, str], folder: Path) -> None:
        self.prefix = str(folder / "monitor")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.prefix], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the recorder did not start")

    def stop(self) -> Tuple[np.ndarray, np.ndarray]:
        self.proc.stdin.close()
        self.proc.wait(30)
        audio = np.frombuffer(Path(self.prefix + ".raw").read_bytes(), dtype="<i2")
        return audio, np.load(self.prefix + ".stamps.npy")


def open_sink(folder: Path) -> Tuple[object, object, Dict[str, str]]:
    """Start the sink; point this process's ALSA default device at it.

    Must run before PortAudio starts in this process. Returns ``(sink,
    out, env)``: ``sink.stop()`` ends it, ``out.files()`` are the ALSA file
    plugin's recordings of every byte written to the device, ``env`` is the
    environment of a PulseAudio client (pactl, parec) of this sink.
    """
    from playkit import AudioOut, PulseSink

    sink = PulseSink(folder).start()
    out = AudioOut(sink, folder)
    os.environ.update(out.env)
    return sink, out, sink.env()


def sink_origin(stamps: np.ndarray, before: float, window: float = 0.6) -> Optional[float]:
    """``t0`` of the recording (monotonic seconds at sample 0) from the chunks of
    the ``window`` seconds before ``before``; None if the recorder stalled then."""
    chunks = stamps[(stamps[:, 0] >= before - window) & (stamps[:, 0] < before)]
    if len(chunks) < 10:
        return None
    return float((chunks[:, 0] - chunks[:, 1] / RATE).min())


def play_time(t0: float, sample: int) -> float:
    """Monotonic time at which the sink played ``sample`` of the recording."""
    return t0 + sample / RATE


class Sounding:
    """Waits until the ALSA file plugin has written to a recording since the last ``mark``.

    Every opening of the device records into a file of its own (``out.files()``),
    so the newest modification time among them says when audio was last written
    (idle streams write nothing).
    """

    def __init__(self, out: Any) -> None:
        self.out, self.stamp = out, 0

    def mark(self) -> None:
        self.stamp = self._stamp()

    def wait(self, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while self._stamp() <= self.stamp:
            if time.monotonic() > end:
                raise RuntimeError("no audio reached the device")
            time.sleep(0.002)

    def _stamp(self) -> int:
        return max((path.stat().st_mtime_ns for path in self.out.files()), default=0)


if __name__ == "__main__":
    record(sys.argv[1])  # the recorder process (see Recorder)
