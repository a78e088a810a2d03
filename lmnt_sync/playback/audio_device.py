"""One pyaudio output stream, and the one place where pyaudio's errors are translated.

pyaudio (the ``[play]`` extra, over the PortAudio C library) is imported
lazily, so ``import lmnt_sync`` never needs it. Every call here blocks the
calling thread; the player calls them from its own thread only.

While PortAudio starts and opens the device, the C libraries under it
(ALSA, JACK) print a line for every device they probe and cannot open,
dozens of them on an ordinary machine; that output (file descriptor 2) is
discarded for that moment. What ALSA reports later, while playing (an
underrun), goes to the log (``alsa_errors``). Our own errors are raised, not
printed.

The stream can be closed while idle (``release``) and is reopened by the
next ``start``: an open stream costs even when silent (PulseAudio's ALSA
plugin keeps a thread that wakes ~80 times a minute), a reopen about a
millisecond. A reopen is not silenced: the probing happened in
``PyAudio()``, and what ALSA says while opening one stream goes to the log.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, Iterator, Optional

from ..errors import ConfigurationError, MissingDependencyError, PlaybackError
from . import alsa_errors

__all__ = ["OutputDevice", "load_pyaudio", "native_stderr_silenced", "SAMPLE_FORMATS"]

# LMNT PCM format name -> (bytes per sample, pyaudio format constant name)
SAMPLE_FORMATS = {"pcm_s16le": (2, "paInt16"), "pcm_f32le": (4, "paFloat32")}
DRAIN_MARGIN = 0.05  # seconds of silence beyond the reported latency before a drain stops the stream

_INSTALL_HINT = (
    "live playback needs pyaudio: pip install 'lmnt-sync[play]' "
    "(building it needs the PortAudio headers: apt-get install portaudio19-dev)"
)


def load_pyaudio() -> Any:
    """Import and return the pyaudio module.

    Raises:
        MissingDependencyError: pyaudio is not installed (names the extra and
            the system package).
    """
    try:
        import pyaudio
    except ImportError as exc:
        raise MissingDependencyError(_INSTALL_HINT) from exc
    return pyaudio


class OutputDevice:
    """A PortAudio output stream for PCM, open (not yet started) once constructed.

    Args:
        sample_rate: frames per second.
        channels: interleaved channels per frame.
        sample_format: ``"pcm_s16le"`` or ``"pcm_f32le"``.
        frames_per_block: PortAudio buffer size; small keeps latency low.
        device_index: PortAudio output device index; None for the default.

    Raises:
        MissingDependencyError: pyaudio is not installed.
        ConfigurationError: an unsupported sample format.
        PlaybackError: the device could not be opened.
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        sample_format: str,
        frames_per_block: int,
        device_index: Optional[int] = None,
    ) -> None:
        if sample_format not in SAMPLE_FORMATS:
            raise ConfigurationError(f"sample_format must be one of {', '.join(SAMPLE_FORMATS)}, not {sample_format!r}")
        pyaudio = load_pyaudio()
        self.frame_bytes = SAMPLE_FORMATS[sample_format][0] * channels
        self._pyaudio = pyaudio
        self._sample_rate = sample_rate
        self._stream_args = {  # for pa.open(), at construction and on every reopen
            "format": getattr(pyaudio, SAMPLE_FORMATS[sample_format][1]), "channels": channels,
            "rate": sample_rate, "output": True, "frames_per_buffer": frames_per_block,
            "output_device_index": device_index, "start": False,
        }
        self._stream: Any = None
        self._started = False
        alsa_errors.route_to_log()  # underruns while playing would print a line each
        with native_stderr_silenced():
            self._pa = pyaudio.PyAudio()
            try:
                self._open()
            except PlaybackError:
                self._pa.terminate()
                raise

    def _open(self) -> None:
        try:
            self._stream = self._pa.open(**self._stream_args)
        except (OSError, ValueError) as exc:
            raise PlaybackError(f"could not open the audio output device ({_describe(exc)})") from exc
        self.latency_frames = int(round(self._stream.get_output_latency() * self._sample_rate))
        # Silence to write after the last audio before stopping: PortAudio's latency
        # leaves out buffers below ALSA (a sound server holds 20-30 ms more through
        # ALSA's pulse plugin, and Pa_StopStream does not wait for those).
        self.drain_frames = self.latency_frames + int(self._sample_rate * DRAIN_MARGIN)

    @property
    def is_open(self) -> bool:
        """True while the stream is open (from construction until ``release`` or ``close``)."""
        return self._stream is not None

    def start(self) -> None:
        """Start the stream (idempotent), reopening it first if ``release`` closed it; blocks briefly.

        Raises:
            PlaybackError: the device could not be reopened or refused to start.
        """
        if self._stream is None:
            self._open()
        if not self._started:
            self._call("start", self._stream.start_stream)
            self._started = True

    def release(self) -> None:
        """Close the stream while idle (PortAudio stays ready); the next ``start`` reopens it.

        Drops what a started stream still holds; idempotent; blocks briefly.

        Raises:
            PlaybackError: the device failed while closing.
        """
        if self._stream is not None:
            self.abort()
            stream, self._stream = self._stream, None
            self._call("close", stream.close)

    def write(self, block: bytes) -> None:
        """Write whole frames; blocks while the device buffer is full (about one block).

        Raises:
            PlaybackError: the device failed.
        """
        # Underflows are expected after a pause; the player fills gaps with silence itself.
        self._call("write to", self._stream.write, block, exception_on_underflow=False)

    def drain(self) -> None:
        """Stop after the device has played everything written; blocks up to its latency."""
        if self._started:
            self._started = False
            self._call("stop", self._stream.stop_stream)

    def abort(self) -> None:
        """Stop now, dropping what the device still holds (barge-in); blocks briefly."""
        if self._started:
            self._started = False
            self._call("abort", self._abort_stream)

    def close(self) -> None:
        """Abort, close the stream and release PortAudio; idempotent, never raises."""
        if self._pa is None:
            return
        try:
            if self._started:
                self._abort_stream()
            if self._stream is not None:
                self._stream.close()
        except OSError:
            pass  # the device is already gone; releasing PortAudio below is what matters
        finally:
            self._stream, self._started = None, False
            self._pa.terminate()
            self._pa = None

    def _abort_stream(self) -> None:
        # PyAudio's Stream offers only stop_stream (Pa_StopStream: plays out the buffer);
        # Pa_AbortStream, which drops it, is only in its C module, so call that one.
        abort = getattr(self._pyaudio.pa, "abort_stream", None)
        if abort is None:
            self._stream.stop_stream()
            return
        abort(self._stream._stream)
        self._stream._is_running = False

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            raise PlaybackError(f"could not {what} the audio output device ({_describe(exc)})") from exc


_silence_lock = threading.Lock()  # fd 2 is process-wide: one redirection at a time


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Discard what C code writes to file descriptor 2 inside the block; blocks on
    another thread's block. Python's own ``sys.stderr`` is flushed first, and
    anything another thread writes there meanwhile is lost, so keep the block short.
    """
    with _silence_lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no fd 2 (pythonw, closed): nothing to silence
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _describe(exc: BaseException) -> str:
    """PortAudio errors arrive as OSError(code, text) or ValueError(text)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"PortAudio error {exc.errno}: {exc.strerror}"
    return str(exc) or type(exc).__name__
