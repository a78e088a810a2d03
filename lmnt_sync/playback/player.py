"""Player: live PCM playback in a thread of its own, interruptible, with word callbacks.

::

    with Speech() as speech, Player(24000, on_word=print) as player:
        conn = speech.synthesize_streaming("lily", format="pcm_s16le", sample_rate=24000,
                                           return_extras=True)
        player.play(conn)                 # returns at once; plays as audio arrives
        conn.append_text("Hello there. ")
        conn.finish()
        player.wait()                     # until the last frame has been heard

Two threads, both named ``lmnt-sync-player*``: the *feed* thread iterates
the sources given to ``play()`` into a jitter buffer; the *output* thread
moves the buffer to the device in small blocks (so ``interrupt()`` is heard
within about one block), pads gaps with silence, and fires word callbacks
when the device reaches them. One lock guards the shared state and is never
held while blocking on the device or a source. Two conditions share it:
``_room``, which the output thread signals after every block for writers
waiting for space, and ``_cond`` for everything else, so a thread blocked
in ``wait()`` is woken by what it waits for, not 100 times a second.

Idle, the player costs (almost) nothing: its threads wait without timeouts,
and ``close_device_after`` seconds after the last audio was heard the output
thread closes the PortAudio stream (an open one keeps the sound system's
client thread waking ~80 times a minute, silent or not). The next audio
reopens it before it starts; that takes about a millisecond here.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any, Callable, Deque, Iterable, List, Optional

from ..deadline import Deadline
from ..errors import ConfigurationError, ConnectionClosedOK, LmntError, LocalProtocolError
from ..errors import TimeoutError as LmntTimeoutError
from ..messages import WordTiming
from .audio_device import SAMPLE_FORMATS, OutputDevice
from .callbacks import dispatch
from .playbuffer import JitterBuffer
from .playsource import Chunk, is_connection, parse_item
from .wordclock import PlayClock, WordSchedule

__all__ = ["Player"]

# How often a feed blocked on a connection-like source without ``wake()``
# re-checks for close, seconds. A StreamingConnection is woken instead: no polling.
_POLL = 0.1
_WRITE, _START, _ABORT, _RELEASE, _CLOSE = "write", "start", "abort", "release", "close"


class Player:
    """Plays PCM as it arrives, from sessions, iterables or ``write()`` calls.

    Args:
        sample_rate: frames per second of the PCM (ask the session for the same).
        sample_format: ``"pcm_s16le"`` (default) or ``"pcm_f32le"``.
        channels: interleaved channels (LMNT speech is mono).
        on_word: called with each word dict (``text``, ``start``, ``duration``)
            when its first frame is heard; needs ``return_extras=True`` on the session.
        callback_executor: object with ``submit(fn, *args)`` that runs
            ``on_word`` (e.g. ``callbacks.tk_executor(root)`` for Tk); None
            calls it on the player's output thread, which must not block.
        preroll: seconds of audio buffered before playback starts (and again
            after an underrun), so a slow network does not stutter; a source
            that is silent that long gets what it has played anyway.
        max_buffer: seconds of audio held before ``play``'s feed and
            ``write()`` wait (back-pressure up to the server).
        block: seconds per device write; bounds how fast ``interrupt()`` is heard.
        device_index: PortAudio output device index; None for the default.
        close_device_after: seconds the output stream stays open once
            everything has been heard and nothing is buffered; then it is
            closed until audio comes again (reopening costs about a
            millisecond before that audio starts). The default outlasts the
            pauses inside a reply; 0 closes it as soon as the device has
            drained; None keeps it open until ``close()``.

    Raises:
        MissingDependencyError: pyaudio (the ``[play]`` extra) is not installed.
        ConfigurationError: an invalid argument (the message names it).
        PlaybackError: the output device could not be opened.

    Always ``close()`` it (or use ``with``): that stops the threads and
    releases the device.
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        *,
        sample_format: str = "pcm_s16le",
        channels: int = 1,
        on_word: Optional[Callable[[WordTiming], Any]] = None,
        callback_executor: Any = None,
        preroll: float = 0.2,
        max_buffer: float = 30.0,
        block: float = 0.01,
        device_index: Optional[int] = None,
        close_device_after: Optional[float] = 5.0,
    ) -> None:
        _check_args(sample_rate, channels, preroll, max_buffer, block, close_device_after)
        self.sample_rate = sample_rate
        self._block_frames = max(1, int(sample_rate * block))
        self._preroll_s = preroll
        self._preroll_frames = int(sample_rate * preroll)
        self._max_frames = max(int(sample_rate * max_buffer), self._preroll_frames + self._block_frames)
        self._on_word, self._executor = on_word, callback_executor
        self._close_device_after = close_device_after
        self._device = OutputDevice(sample_rate, channels, sample_format, self._block_frames, device_index)
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # state changes (see the module docstring)
        self._room = threading.Condition(lock)  # the buffer has room again
        self._buffer = JitterBuffer(SAMPLE_FORMATS[sample_format][0] * channels)
        self._words = WordSchedule(sample_rate)
        self._clock = PlayClock()
        self._sources: Deque[Any] = collections.deque()
        self._current: Any = None  # the source the feed is consuming
        self._detach = False  # interrupt(): stop consuming a plain iterable
        self._epoch = 0  # bumped by interrupt(); items read before it are dropped
        self._reset_barrier = 0.0  # session messages returned before this instant are stale
        self._last_push = self._device_idle_since = time.monotonic()
        self._ended = True  # no source left: what is buffered is all there is
        self._running = self._starving = self._abort_pending = False
        self._aborts_done = self._waiters = 0
        self._closing = self._close_when_done = self._output_done = False
        self._source_error: Optional[BaseException] = None
        self._device_error: Optional[BaseException] = None
        # Threads start last, once every attribute exists.
        self._output = threading.Thread(target=self._run_output, name="lmnt-sync-player", daemon=True)
        self._feed = threading.Thread(target=self._run_feed, name="lmnt-sync-player-feed", daemon=True)
        self._output.start()
        self._feed.start()

    # -- giving audio -----------------------------------------------------

    def play(self, source: Iterable[Any], *, close_when_done: bool = False) -> None:
        """Start playing ``source`` in the background; returns at once.

        ``source`` yields PCM bytes or session message dicts (``"audio"``,
        and ``"timestamps"``/``"durations"`` for word callbacks); a
        StreamingConnection is read with ``recv`` so ``interrupt()`` can reset
        it. Sources given while one plays are queued after it.

        Args:
            close_when_done: close the player (release the device, end its
                threads) once every source has ended and been heard.

        Raises:
            LocalProtocolError: the player is closed.
        """
        with self._cond:
            self._raise_if_closed()
            self._sources.append(source)
            self._close_when_done = self._close_when_done or close_when_done
            self._last_push, self._ended = time.monotonic(), False
            self._cond.notify_all()

    def write(self, chunk: Any, timeout: Optional[float] = None) -> None:
        """Queue PCM bytes (or a message dict) for playback, push style.

        Blocks only while ``max_buffer`` seconds are already queued, at most
        ``timeout`` seconds (None: no limit).

        Raises:
            LocalProtocolError: the player is closed.
            TimeoutError: the buffer stayed full for ``timeout`` seconds.
            ConfigurationError: ``chunk`` is neither bytes nor a message dict.
        """
        deadline = Deadline(timeout)
        with self._cond:
            self._raise_if_closed()
            if not self._push(parse_item(chunk), lambda: not self._closing, deadline):
                self._raise_if_closed()
                raise deadline.error("Player.write()")

    # -- waiting and stopping ---------------------------------------------

    def wait(self, timeout: Optional[float] = None) -> None:
        """Block until every source has ended and its last frame has been heard.

        In push style (no source), waits until everything written has been
        heard. Returns after the device has drained, not just been written to.

        Raises:
            TimeoutError: not done within ``timeout`` seconds (None: no limit).
            LmntError: a source failed (e.g. SessionError), raised once; or
                PlaybackError: the device failed.
        """
        self._wait_until(lambda now: not self._sources and self._current is None, timeout, "Player.wait()")

    def wait_idle(self, timeout: Optional[float] = None) -> None:
        """Block until everything received so far has been heard.

        A source that keeps running (one session for a whole conversation)
        counts as paused once it has given nothing for ``preroll`` seconds;
        call ``conn.flush(wait=True)`` first so a turn's audio has all arrived.

        Raises:
            TimeoutError, LmntError: as ``wait()``.
        """
        deadline = Deadline(timeout)
        with self._cond:
            conn = self._current
        wait_taken = getattr(conn, "wait_taken", None)
        if callable(wait_taken):
            # flush(wait=True) returns once the audio has arrived; the feed
            # thread may not have taken it from the session yet, and the
            # player, having heard nothing new for ``preroll``, would look done.
            try:
                wait_taken(deadline.remaining())
            except LmntTimeoutError:
                raise deadline.error("Player.wait_idle()") from None
        self._wait_until(lambda now: self._quiet(now), deadline.remaining(), "Player.wait_idle()")

    def interrupt(self, timeout: float = 1.0) -> None:
        """Barge-in: silence now, drop queued audio, reset the session's buffer.

        Aborts the device (what it still holds is dropped, so the sound stops
        within about one ``block``), drops the jitter buffer and pending word
        callbacks and queued sources; a StreamingConnection being played gets
        ``reset()`` (its text not yet spoken is dropped, and it keeps playing
        what is sent after), any other source is abandoned. Blocks until the
        device has stopped, at most ``timeout`` seconds. Idempotent.
        """
        with self._cond:
            self._epoch += 1
            self._buffer.clear()
            self._words.clear(self._buffer.tail)
            self._sources.clear()
            self._starving = False
            conn = self._current if is_connection(self._current) else None
            self._detach = self._current is not None and conn is None
            if conn is not None:
                self._reset_barrier = float("inf")  # until the reset has gone out, all is stale
            target = self._aborts_done + 1 if self._running else self._aborts_done
            self._abort_pending = self._running
            self._notify_everyone()
        if conn is not None:
            self._reset(conn)
        with self._cond:
            self._cond.wait_for(lambda: self._aborts_done >= target or self._output_done, timeout)

    def _reset(self, conn: Any) -> None:
        try:
            conn.reset()
        except LmntError:
            pass  # the session has ended or is finishing: there is nothing left to drop
        finally:
            with self._cond:
                self._reset_barrier = time.monotonic()
                self._notify_everyone()

    def close(self, timeout: float = 2.0) -> None:
        """Stop playing now and release the device; joins both threads.

        Idempotent and thread-safe; queued audio is dropped (call ``wait()``
        first to hear it). Blocks at most about ``timeout`` seconds per
        thread; a plain-iterable source blocked inside its own ``next()``
        cannot be cut short, so the feed thread then ends when it returns.
        """
        with self._cond:
            self._closing = True
            self._notify_everyone()
            current = self._current
        if callable(getattr(current, "wake", None)):
            current.wake()  # the feed waits in its recv(): let it see the close
        for thread in (self._output, self._feed):
            if thread is not threading.current_thread():
                thread.join(timeout)

    @property
    def closed(self) -> bool:
        """True once the output thread has ended and the device is released."""
        return self._output_done

    def __enter__(self) -> Player:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Wait for the audio to be heard (unless the block raised), then close."""
        try:
            if exc_type is None:
                self.wait()
        finally:
            self.close()

    # -- shared-state helpers (lock held) ----------------------------------

    def _raise_if_closed(self) -> None:
        if self._closing or self._output_done:
            raise LocalProtocolError("the player is closed")

    def _quiet(self, now: float) -> bool:
        """Nothing more is expected soon: no source, or it has been silent for ``preroll``."""
        return self._ended or now - self._last_push >= self._preroll_s

    def _more_coming(self, now: float) -> bool:
        no_source = self._current is None and not self._sources
        return not self._quiet(now) and not (no_source and self._waiters)

    def _idle(self) -> bool:
        return not self._running and not self._abort_pending and self._buffer.frames == 0

    def _wait_until(self, done: Callable[[float], bool], timeout: Optional[float], what: str) -> None:
        deadline = Deadline(timeout)
        with self._cond:
            self._waiters += 1
            self._cond.notify_all()
            try:
                while True:
                    self._raise_errors()
                    now = time.monotonic()
                    if self._output_done or (self._idle() and done(now)):
                        return
                    if deadline.expired():
                        raise deadline.error(what)
                    self._cond.wait(_min(deadline.remaining(), self._wake_in(now)))
            finally:
                self._waiters -= 1

    def _notify_everyone(self) -> None:
        """Wake every waiter, those waiting for room too (lock held)."""
        self._cond.notify_all()
        self._room.notify_all()

    def _raise_errors(self) -> None:
        if self._device_error is not None:
            raise self._device_error
        error, self._source_error = self._source_error, None
        if error is not None:
            raise error

    def _wake_in(self, now: float) -> Optional[float]:
        """Seconds until the source counts as quiet, if that is still ahead (None: no timed wake).

        Once quiet, it stays quiet until a push, which notifies: no polling.
        """
        left = self._last_push + self._preroll_s - now
        return None if self._ended or left <= 0 else left

    def _push(self, chunk: Chunk, fresh: Callable[[], bool], deadline: Optional[Deadline] = None) -> bool:
        """Add a chunk once there is room; False if it went stale or the wait timed out."""
        while self._buffer.frames >= self._max_frames and fresh() and not self._closing:
            if deadline is not None and deadline.expired():
                return False
            # Woken by the output thread taking audio, interrupt(), the reset going out, close().
            self._room.wait(deadline.remaining() if deadline else None)
        if not fresh() or self._closing:
            return False
        if chunk.durations:
            self._words.durations(chunk.durations, self._buffer.tail)
        self._buffer.push(chunk.audio)
        if chunk.timestamps:
            self._words.timestamps(chunk.timestamps, self._buffer.tail)
        if chunk.restart:
            self._words.restart(self._buffer.tail)
        self._last_push, self._ended = time.monotonic(), False
        self._cond.notify_all()
        return True

    # -- the feed thread ----------------------------------------------------

    def _run_feed(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._sources or self._closing)
                if self._closing:
                    return
                source = self._current = self._sources.popleft()
                self._detach = False
                self._words.restart(self._buffer.tail)
            try:
                self._consume(source)
            except BaseException as exc:  # a failing source must not kill the thread silently
                with self._cond:
                    if self._source_error is None and not self._closing:
                        self._source_error = exc
            finally:
                with self._cond:
                    self._current = None
                    self._ended = not self._sources
                    self._cond.notify_all()

    def _consume(self, source: Any) -> None:
        if is_connection(source):
            self._consume_connection(source)
        else:
            self._consume_iterable(iter(source))

    def _consume_connection(self, conn: Any) -> None:
        wakeable = callable(getattr(conn, "wake", None))
        while not self._closing:
            try:
                item = conn.recv(None, cancelled=lambda: self._closing) if wakeable else conn.recv(_POLL)
            except LmntTimeoutError:
                continue
            except ConnectionClosedOK:
                return
            returned = time.monotonic()
            with self._cond:
                self._push(parse_item(item), lambda: returned >= self._reset_barrier)  # noqa: B023 - called within

    def _consume_iterable(self, items: Any) -> None:
        while True:
            with self._cond:
                if self._closing or self._detach:
                    return
                epoch = self._epoch
            try:
                item = next(items)
            except StopIteration:
                return
            chunk = parse_item(item)
            with self._cond:
                if not self._push(chunk, lambda: self._epoch == epoch):  # noqa: B023 - called within
                    return  # interrupted: this source is abandoned

    # -- the output thread --------------------------------------------------

    def _run_output(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:
            with self._cond:
                self._device_error = exc
        finally:
            self._device.close()
            with self._cond:
                self._closing = self._output_done = True
                self._running = self._abort_pending = False
                self._notify_everyone()

    def _step(self) -> bool:
        """Do one thing on the device; return False to stop the thread."""
        with self._cond:
            action = self._choose()
        if action == _CLOSE:
            self._device.abort()
            return False
        if action == _RELEASE:
            self._device.release()
            return True
        if action == _ABORT:
            self._device.abort()
            with self._cond:
                self._running = False
                self._aborts_done += 1
                self._device_idle_since = time.monotonic()
                self._cond.notify_all()
            return True
        if action == _START:
            self._device.start()  # reopens the stream if it was closed while idle
            with self._cond:
                self._running, self._starving = True, False
                self._clock.start()
        self._write_block()
        return True

    def _choose(self) -> str:
        """Wait until there is something to do and say what (lock held)."""
        while True:
            now = time.monotonic()
            if self._closing:
                return _CLOSE
            if self._abort_pending:
                self._abort_pending = False
                return _ABORT
            if self._running:
                return _WRITE
            frames = self._buffer.frames
            if frames and (frames >= self._preroll_frames or not self._more_coming(now)):
                return _START
            if self._close_when_done and not frames and self._current is None and not self._sources:
                self._closing = True
                return _CLOSE
            if frames:
                self._cond.wait(self._wake_in(now))
                continue
            release_in = self._release_in(now)
            if release_in == 0.0:
                return _RELEASE
            self._cond.wait(release_in)

    def _release_in(self, now: float) -> Optional[float]:
        """Seconds until the idle device's stream is to be closed: 0.0 now, None never
        (it is closed already, or kept open). Called only by the output thread, which owns the device."""
        if self._close_device_after is None or not self._device.is_open:
            return None
        return max(0.0, self._device_idle_since + self._close_device_after - now)

    def _write_block(self) -> None:
        """Write one block (audio, or silence while starving); drain when all is heard."""
        with self._cond:
            block, start, audio = self._next_block(time.monotonic())
        if block is None:
            self._device.drain()
            with self._cond:
                words = self._words.due(self._clock.drained())
                self._running = False
                self._device_idle_since = time.monotonic()
                self._cond.notify_all()
        else:
            self._device.write(block)
            with self._cond:
                self._clock.wrote(self._block_frames, start, audio)
                words = self._words.due(self._clock.heard(self._device.latency_frames))
        for word in words:
            dispatch(self._executor, self._on_word, word)

    def _next_block(self, now: float) -> Any:
        """Return ``(block, source_start, audio_frames)``, or Nones to drain (lock held)."""
        buffer = self._buffer
        more = self._more_coming(now)
        if self._starving and (buffer.frames >= self._preroll_frames or not more):
            self._starving = False
        if not self._starving and buffer.frames:
            block, start, audio = buffer.take(self._block_frames)
            self._starving = audio < self._block_frames and more  # underrun: rebuffer before resuming
            self._room.notify_all()  # for the feed or write(), if one waits
            return block, start, audio
        if not more and self._clock.silence_written() >= self._device.drain_frames:
            return None, None, None  # everything written has been heard
        self._starving = self._starving or more
        return bytes(self._block_frames * buffer.frame_bytes), buffer.head, 0


def _check_args(sample_rate: Any, channels: Any, preroll: Any, max_buffer: Any, block: Any,
                close_device_after: Any) -> None:
    """Raise ConfigurationError naming the first invalid Player argument."""
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise ConfigurationError(f"sample_rate must be a positive int, not {sample_rate!r}")
    if not isinstance(channels, int) or channels < 1:
        raise ConfigurationError(f"channels must be a positive int, not {channels!r}")
    for name, value in (("preroll", preroll), ("max_buffer", max_buffer), ("block", block)):
        if not isinstance(value, (int, float)) or value < 0 or (name != "preroll" and value == 0):
            raise ConfigurationError(f"{name} must be a non-negative number of seconds, not {value!r}")
    after = close_device_after
    if after is not None and (not isinstance(after, (int, float)) or isinstance(after, bool)
                              or not 0 <= after < math.inf):
        raise ConfigurationError(f"close_device_after must be None or a finite number of seconds >= 0, not {after!r}")


def _min(a: Optional[float], b: Optional[float]) -> Optional[float]:
    values: List[float] = [x for x in (a, b) if x is not None]
    return min(values) if values else None
