"""A real, headless audio output for tests that play sound through pyaudio.

PortAudio opens ALSA's ``default`` device. Tests point ALSA (through the
``ALSA_CONFIG_PATH`` variable, read whenever PortAudio starts) at a config
whose default device is ALSA's ``file`` plugin: it records every byte the
player writes into a raw file and passes the audio on to a slave device.
With ``truncate false`` the plugin never overwrites a recording: each opening of the
device (a Player reopens it after an idle pause) records into a new file, ``played.raw``
then ``played.raw.0001``, ``.0002``, ...; ``AudioOut.played()`` joins them in order.
The slave is a PulseAudio *null sink* in a private daemon, because it
consumes audio in real time like a sound card: ALSA's own ``null`` device
swallows everything at once, so playback would take no time and word
callbacks could not be checked against the clock. A silent ``pacat``
stream keeps the sink running at low latency (an idle null sink starts a
new stream only at its next 2-second tick).

Fixtures, registered once in conftest.py: ``pulse_sink`` (one daemon for the
whole run) and ``audio_out`` (per test: a fresh recording file, the
environment set for this process, and ``.env`` for subprocesses).
"""
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["PulseSink", "AudioOut", "pulse_sink", "audio_out", "RATE", "assert_played_exactly", "noise"]

RATE = 24000


class PulseSink:
    """A private PulseAudio daemon with a real-time null sink, on a socket in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "native"
        self.client_conf = folder / "client.conf"
        self._procs = []

    def start(self) -> "PulseSink":
        """Start the daemon and the keep-alive stream; blocks until the socket answers."""
        if not shutil.which("pulseaudio") or not shutil.which("pacat"):
            pytest.fail("playback tests need pulseaudio and pacat: run tests/bootstrap.sh")
        script = self.folder / "default.pa"
        script.write_text(
            f"load-module module-null-sink sink_name=out rate={RATE} channels=1\n"
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            "set-default-sink out\n"
        )
        # No autospawn: a client that cannot reach our daemon must fail, not start a stray one.
        self.client_conf.write_text("autospawn = no\n")
        env = self.env()
        self._spawn(["pulseaudio", "-n", "-F", str(script), "--exit-idle-time=-1", "--daemonize=no",
                     "--use-pid-file=false", "--log-target=stderr"], env)
        self._wait_for(lambda: self.socket.exists() and self._pactl(env, "info"), "pulseaudio")
        self._spawn(["pacat", "--playback", "--raw", f"--rate={RATE}", "--channels=1",
                     "--latency-msec=10", "/dev/zero"], env)
        self._wait_for(lambda: self._sink_latency_us(env) < 100_000, "the keep-alive stream")
        return self

    def env(self) -> dict:
        """The environment for a PulseAudio client of this daemon (pactl, pacat, parec)."""
        return dict(os.environ, HOME=str(self.folder), PULSE_RUNTIME_PATH=str(self.folder / "run"),
                    PULSE_CLIENTCONFIG=str(self.client_conf), PULSE_SERVER=f"unix:{self.socket}")

    def clients_of(self, pid: int) -> int:
        """How many connections process ``pid`` has open to the daemon (one per open ALSA stream)."""
        return self._pactl(self.env(), "list", "clients").count(f'application.process.id = "{pid}"')

    def _sink_latency_us(self, env) -> float:
        """The sink's current latency; it stays near 2 s until its first long render period ends."""
        match = re.search(r"Latency: (\d+) usec", self._pactl(env, "list", "sinks"))
        return float(match.group(1)) if match else float("inf")

    @staticmethod
    def _pactl(env, *args) -> str:
        result = subprocess.run(["pactl", *args], env=env, capture_output=True, text=True)
        return result.stdout if result.returncode == 0 else ""

    def _spawn(self, argv, env) -> None:
        log = open(self.folder / f"{Path(argv[0]).name}.log", "wb")  # noqa: SIM115 - closed below, once the child has its copy
        self._procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL))
        log.close()

    def _wait_for(self, ready, what) -> None:
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"{what} did not start; see the logs in {self.folder}")

    def stop(self) -> None:
        """Stop the processes this sink started (by pid), newest first."""
        for proc in reversed(self._procs):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


class AudioOut:
    """An ALSA default device that records to ``path`` and plays into the pulse sink."""

    def __init__(self, sink: PulseSink, folder: Path) -> None:
        self.path = folder / "played.raw"
        self.config = folder / "asoundrc"
        self.config.write_text(
            "pcm.!default {\n"
            "  type file\n"
            '  slave.pcm "lmntsink"\n'
            f'  file "{self.path}"\n'
            '  format "raw"\n'
            "  truncate false\n"  # a reopened device records into a new file (see the module docstring)
            "}\n"
            f'pcm.lmntsink {{ type pulse; server "unix:{sink.socket}" }}\n'
            f'ctl.!default {{ type pulse; server "unix:{sink.socket}" }}\n'
        )
        self.env = {
            # Our file alone, not after the system's alsa.conf: its hooks make a reachable
            # PulseAudio the default device, overriding ours; alone, the devices are ours only.
            "ALSA_CONFIG_PATH": str(self.config),
            "PULSE_CLIENTCONFIG": str(sink.client_conf),
            "JACK_NO_START_SERVER": "1",  # PortAudio probes JACK too; never start one
        }

    def files(self) -> list:
        """The recordings so far, one per opening of the device, oldest first."""
        return sorted(self.path.parent.glob(self.path.name + "*"))  # "played.raw" sorts before "played.raw.0001"

    def played(self) -> bytes:
        """Return every byte written to the device so far, across its openings."""
        return b"".join(path.read_bytes() for path in self.files())

    def size(self) -> int:
        """Bytes written to the device so far (a cheaper ``len(played())``)."""
        return sum(path.stat().st_size for path in self.files())


def assert_played_exactly(played: bytes, pcm: bytes) -> None:
    """Assert ``played`` is ``pcm`` with only silence (zero bytes) before and after it."""
    at = played.find(pcm)
    assert pcm and at >= 0, f"the {len(pcm)} bytes received were not played ({len(played)} bytes played)"
    assert not played[:at].strip(b"\x00"), "non-silence before the audio"
    assert not played[at + len(pcm):].strip(b"\x00"), "non-silence after the audio"


@pytest.fixture(scope="session")
def pulse_sink(tmp_path_factory):
    """A private real-time PulseAudio null sink for the whole run."""
    sink = PulseSink(tmp_path_factory.mktemp("pulse")).start()
    yield sink
    sink.stop()


@pytest.fixture
def audio_out(pulse_sink, tmp_path, monkeypatch):
    """A recording default ALSA device for this test (this process and subprocesses)."""
    out = AudioOut(pulse_sink, tmp_path)
    for name, value in out.env.items():
        monkeypatch.setenv(name, value)
    return out


def noise(stderr: str) -> list:
    """The lines of ``stderr``: a player prints none, not even ALSA's report of an underrun (on a
    busy machine the device can run dry; the player logs that at DEBUG instead)."""
    return stderr.splitlines()
