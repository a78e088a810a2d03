"""Live speech in the notebook's browser: a widget that plays a session's PCM as it arrives.

::

    from lmnt_sync import Speech
    from lmnt_sync.playback.browser_player import speak_in_browser

    speech = Speech()
    player = speak_in_browser(speech, "Heard where you are.", "lily")   # displays itself, returns at once
    player.wait()                                                        # until the page has played it all

The kernel's machine needs no sound device: the audio plays in the page
(Web Audio API), so it works on JupyterHub, remote servers and containers.
An anywidget front end (``browser_player.js``) keeps a small jitter buffer,
shows progress, highlights each word as it is heard and has a Stop button
(barge-in: silence at once, and the session's buffer is reset).

Wire between kernel and page (widget custom messages, PCM as binary buffers):

* kernel → page: ``{"type": "audio", "offset": n}`` + one buffer (at most
  0.1 s of whole frames; ``offset`` counts every byte read from the
  sources), ``{"type": "words", "words": [{"text", "at"}]}`` (``at``: the
  word's first frame, in the same count), ``{"type": "stopped", "offset":
  n}`` (everything before ``n`` is void; audio resumes at ``n``),
  ``{"type": "end", "bytes": n, "crc32": c}`` (of all bytes sent).
* page → kernel: ``ready``, ``{"type": "ack", "bytes": n}`` (bytes played
  or dropped), ``stop`` (the button), ``{"type": "done", "bytes": n,
  "crc32": c}`` (after ``end``: the last sample has been played).

Two threads per source: the *reader* takes the session's messages into a
queue (at most ``read_ahead`` seconds) and sends word positions at once;
the *sender* sends queued audio at most ``window`` seconds beyond what the
page has acknowledged. So memory stays bounded on both sides, and the
session's own flow control reaches the server. The page's messages are
handled on a kernel subshell's thread (ipykernel 7), so a busy cell does
not hold them back: see ``_answer_off_main_thread``.
"""
from __future__ import annotations

import collections
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ..deadline import Deadline
from ..errors import ConfigurationError, ConnectionClosedOK, LmntError, MissingDependencyError
from ..messages import Message
from .playsource import Chunk, is_connection, parse_item, session_messages
from .wordclock import WordSchedule

if TYPE_CHECKING:
    from ..client import Speech
    from ..session import StreamingConnection

try:
    import anywidget
    import traitlets
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("the browser player needs anywidget: pip install 'lmnt-sync[notebook]'") from _exc

__all__ = ["BrowserPlayer", "speak_in_browser"]

_HERE = Path(__file__).resolve().parent
_FRAME_BYTES = {"pcm_s16le": 2, "pcm_f32le": 4}
_SLICE = 0.1  # seconds of audio per message to the page (the unit of back-pressure)
_POLL = 0.1  # how often a blocked feed re-checks for close/stop, seconds


class BrowserPlayer(anywidget.AnyWidget):
    """A widget that plays PCM sessions in the browser showing it.

    Args:
        sample_rate: frames per second of the PCM (ask the session for the same).
        sample_format: ``"pcm_s16le"`` or ``"pcm_f32le"`` (mono).
        window: seconds of audio sent beyond what the page has played
            (back-pressure; bounds the page's memory).
        read_ahead: seconds of audio read from the session but not yet sent
            (bounds the kernel's memory; the session's own flow control then
            reaches the server). Reading ahead lets word timings, which
            follow their audio, reach the page before the words are heard.
        preroll: seconds the page buffers before it starts (and after an
            underrun), absorbing network jitter.

    Raises:
        ConfigurationError: an invalid argument (the message names it).

    ``play()`` returns at once; a background thread feeds the page. Call
    ``close()`` when done (or let the kernel end).
    """

    _esm = _HERE / "browser_player.js"
    _css = _HERE / "browser_player.css"
    sample_rate = traitlets.Int(24000).tag(sync=True)
    sample_format = traitlets.Unicode("pcm_s16le").tag(sync=True)
    preroll = traitlets.Float(0.2).tag(sync=True)
    player_id = traitlets.Unicode("").tag(sync=True)  # finds the page's playback state from each view

    def __init__(self, sample_rate: int = 24000, *, sample_format: str = "pcm_s16le", window: float = 2.0,
                 read_ahead: float = 10.0, preroll: float = 0.2) -> None:
        if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 48000:
            raise ConfigurationError(f"sample_rate must be an int from 8000 to 48000, not {sample_rate!r}")
        if sample_format not in _FRAME_BYTES:
            raise ConfigurationError(f"sample_format must be pcm_s16le or pcm_f32le, not {sample_format!r}")
        if not 0.0 <= preroll < window:
            raise ConfigurationError(f"need 0 <= preroll < window, not preroll={preroll!r}, window={window!r}")
        if not read_ahead > 0:
            raise ConfigurationError(f"read_ahead must be a positive number of seconds, not {read_ahead!r}")
        super().__init__(sample_rate=sample_rate, sample_format=sample_format, preroll=float(preroll),
                         player_id=uuid.uuid4().hex)
        self._frame_bytes = _FRAME_BYTES[sample_format]
        self._window_bytes = int(window * sample_rate) * self._frame_bytes
        self._slice_bytes = max(1, int(_SLICE * sample_rate)) * self._frame_bytes
        self._read_ahead_bytes = int(read_ahead * sample_rate) * self._frame_bytes
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()  # audio and "stopped" leave in the order they were decided
        self._ready = self._closing = False
        self._threads: List[threading.Thread] = []
        self._current: Any = None  # the source being played, until the page has played it
        self._close_when_done = False
        self._words = WordSchedule(sample_rate)
        self._queue: Deque[Tuple[int, bytes]] = collections.deque()  # (offset, slice) read, not yet sent
        self._queued = 0  # bytes in _queue
        self._accepted = 0  # offset after the last byte read: offsets and word positions count these
        self._next = 0  # offset after the last byte sent
        self._acked = 0  # offset the page has played (or dropped) up to
        self._sent = self._crc = 0  # bytes sent and their CRC-32
        self._epoch = 0  # bumped by each stop; what was read before it is dropped
        self._reset_barrier = 0.0  # session messages returned before this instant are stale
        self._reading = False  # the reader thread is still taking from the source
        self._ended = False  # "end" has been sent
        self._done: Optional[Dict[str, Any]] = None  # the page's "done" report
        self._error: Optional[BaseException] = None
        self.stops = 0  # Stop presses handled (button or stop())
        self.on_msg(self._on_page_message)
        self._routed = _answer_off_main_thread(self.comm)

    # -- what the kernel sent ------------------------------------------------

    @property
    def sent_bytes(self) -> int:
        """PCM bytes sent to the page so far (whole frames)."""
        return self._sent

    @property
    def sent_crc32(self) -> int:
        """CRC-32 of every PCM byte sent to the page, in order."""
        return self._crc

    @property
    def page_report(self) -> Optional[Dict[str, Any]]:
        """The page's ``done`` message (``bytes``, ``crc32`` it received), once it came."""
        return self._done

    # -- playing ----------------------------------------------------------------

    def play(self, source: Iterable[Any], *, close_when_done: bool = False) -> None:
        """Start sending ``source`` to the page; returns at once.

        ``source`` is a StreamingConnection (PCM in this player's format;
        ``return_extras=True`` for word highlighting) or an iterable of PCM
        bytes / session message dicts. One source at a time.
        ``close_when_done`` closes the source once the page has played it
        (or on close()).

        Raises:
            ConfigurationError: a source is already playing, or the player is closed.
        """
        with self._cond:
            if self._closing:
                raise ConfigurationError("this BrowserPlayer is closed")
            if any(thread.is_alive() for thread in self._threads):
                raise ConfigurationError("this BrowserPlayer is already playing a source; wait() for it first")
            self._ended, self._done, self._error, self._reading = False, None, None, True
            self._current, self._close_when_done = source, close_when_done
            self._threads = [
                threading.Thread(target=self._run_reader, args=(source,),
                                 name="lmnt-sync-browser-reader", daemon=True),
                threading.Thread(target=self._run_sender, name="lmnt-sync-browser-sender", daemon=True),
            ]
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        """Barge-in from the kernel: the page goes silent and the session's buffer is reset.

        The same as the page's Stop button; returns once the reset has been sent.
        """
        self._handle_stop()

    def wait(self, timeout: Optional[float] = None) -> None:
        """Block until the page reports it has played the source's last sample.

        Inside a notebook cell this works because the page's messages are
        handled on a kernel subshell's thread, not the (busy) main one.

        Raises:
            TimeoutError: not done within ``timeout`` seconds.
            LmntError: the session failed (the error it raised).
            ConfigurationError: nothing was played, or called in a cell of a
                kernel without subshells (ipykernel < 7), where the page's
                reply could only arrive after the cell.
        """
        if not self._threads:
            raise ConfigurationError("wait() before play(): nothing is playing")
        if not self._routed and _on_kernel_main_thread():
            # The page's "done" would queue behind this very cell: waiting could only time out.
            raise ConfigurationError("wait() inside a cell needs a kernel with subshells (ipykernel>=7); "
                                     "here the page's messages are read only between cells")
        deadline = Deadline(timeout)

        def finished() -> bool:
            return self._done is not None or self._closing

        with self._cond:
            while not finished() and not deadline.expired():
                self._cond.wait(_min_wait(deadline, _POLL))
        if self._error is not None:
            raise self._error
        if not finished():
            raise deadline.error("BrowserPlayer.wait()")

    def close(self, timeout: float = 2.0) -> None:
        """Stop feeding and close the widget; joins its threads (at most ``timeout`` s each). Idempotent."""
        if not hasattr(self, "_cond"):  # __init__ rejected its arguments; ipywidgets' __del__ still calls us
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._release_source()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        super().close()

    # -- the reader thread: session -> queue, words -> page -----------------------

    def _run_reader(self, source: Any) -> None:
        carry = b""
        try:
            with self._cond:  # words sent before the page has loaded would be lost
                self._cond.wait_for(lambda: self._ready or self._closing)
            for item, epoch in self._items(source):
                chunk = parse_item(item)
                pcm = carry + chunk.audio
                cut = len(pcm) - len(pcm) % self._frame_bytes
                carry = pcm[cut:]
                if not self._accept(chunk, pcm[:cut], epoch):
                    carry = b""
        except BaseException as exc:  # reported by wait(); the page is told the stream ended
            self._error = exc if isinstance(exc, LmntError) else LmntError(f"the browser player's feed failed: {exc!r}")
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()

    def _items(self, source: Any) -> Any:
        """Yield (item, epoch) pairs; for a session, drop what was returned before the last reset."""
        if not is_connection(source):
            for item in source:
                if self._closing:
                    return
                yield item, self._epoch
            return
        for item, returned in session_messages(source, _POLL, lambda: self._closing):
            with self._cond:
                epoch = self._epoch
                fresh = returned >= self._reset_barrier
            if fresh:
                yield item, epoch

    def _accept(self, chunk: Chunk, pcm: bytes, epoch: int) -> bool:
        """Queue a chunk's audio (waiting while ``read_ahead`` is full) and send the words it places.

        Words go to the page at once, ahead of their audio: LMNT sends a
        segment's timings after its audio, so waiting for the audio to be
        sent would light them up late. Returns False once the chunk is stale.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._queued < self._read_ahead_bytes or self._epoch != epoch
                                or self._closing)
            if self._epoch != epoch or self._closing:
                return False
            if chunk.durations:
                self._words.durations(chunk.durations, self._accepted // self._frame_bytes)
            for start in range(0, len(pcm), self._slice_bytes):
                piece = pcm[start:start + self._slice_bytes]
                self._queue.append((self._accepted, piece))
                self._queued += len(piece)
                self._accepted += len(piece)
            frames = self._accepted // self._frame_bytes
            if chunk.timestamps:
                self._words.timestamps(chunk.timestamps, frames)
            if chunk.restart:
                self._words.restart(frames)
            words = self._words.take_all()
            self._cond.notify_all()
        if words:
            self._to_page({"type": "words", "words": [dict(word, at=at) for at, word in words]})
        return True

    # -- the sender thread: queue -> page, within the window ----------------------

    def _run_sender(self) -> None:
        """Send queued slices while the page's window has room; then "end"."""
        def can_send() -> bool:
            return bool(self._queue) and self._next - self._acked < self._window_bytes

        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._ready and (can_send() or not (self._reading or self._queue))
                                        or self._closing)
                    if self._closing or (not self._queue and not self._reading):
                        return
                with self._send_lock:
                    with self._cond:
                        if not can_send():
                            continue  # a stop emptied the queue meanwhile
                        offset, piece = self._queue.popleft()
                        self._queued -= len(piece)
                        self._next = offset + len(piece)
                        self._sent += len(piece)
                        self._crc = zlib.crc32(piece, self._crc)
                        self._cond.notify_all()
                    self._to_page({"type": "audio", "offset": offset}, [piece])
        finally:
            with self._cond:
                self._ended = True
                sent, crc = self._sent, self._crc
                self._cond.notify_all()
            self._to_page({"type": "end", "bytes": sent, "crc32": crc})

    # -- the page's messages (on the kernel's main thread) -------------------------

    def _on_page_message(self, _widget: Any, content: Dict[str, Any], _buffers: List[Any]) -> None:
        kind = content.get("type")
        if kind == "stop":
            self._handle_stop()
            return
        with self._cond:
            if kind == "ready":
                self._ready = True
            elif kind == "ack":
                self._acked = max(self._acked, int(content.get("bytes", 0)))
            elif kind == "done" and self._ended:
                self._done = dict(content)
            self._cond.notify_all()
        if kind == "done" and self._done is not None:
            self._release_source()

    def _release_source(self) -> None:
        """Forget the source (and close it if play() was told to): it has been heard, or we close.

        A session is kept until the page has played it, not just read it,
        so that Stop can still reset it.
        """
        with self._cond:
            source, self._current = self._current, None
        if source is not None and self._close_when_done and callable(getattr(source, "close", None)):
            source.close()

    def _handle_stop(self) -> None:
        with self._send_lock:
            with self._cond:
                self._epoch += 1
                self.stops += 1
                self._queue.clear()
                self._queued = 0
                self._next = self._acked = self._accepted  # the page drops what is in flight
                self._words.clear(self._accepted // self._frame_bytes)
                conn = self._current if is_connection(self._current) else None
                if conn is not None:
                    self._reset_barrier = float("inf")  # until the reset has gone out, all is stale
                offset = self._accepted
                self._cond.notify_all()
            self._to_page({"type": "stopped", "offset": offset})
        if conn is not None:
            try:
                conn.reset()
            except LmntError:
                pass  # the session has ended or is finishing: nothing is left to drop
            finally:
                with self._cond:
                    self._reset_barrier = time.monotonic()

    def _to_page(self, content: Dict[str, Any], buffers: Optional[List[bytes]] = None) -> None:
        if self.comm is not None:  # None once the widget is closed
            self.send(content, buffers=buffers)


def speak_in_browser(speech: Speech, text: Union[str, Iterable[str]], voice: str, *, sample_rate: int = 24000,
                     display: bool = True, **player_options: Any) -> BrowserPlayer:
    """Speak ``text`` in the notebook's browser; returns the (displayed) player at once.

    ``text`` is a string or an iterable of strings (sent as they come, then
    flushed). The session asks for word timings, so the page highlights
    each word; it stays open until its flush (or a Stop's reset) completes,
    so Stop can still reset it, and is closed then.

    Raises:
        LmntError: the session could not be opened.
        ConfigurationError: a bad player option.
    """
    player = BrowserPlayer(sample_rate, **player_options)
    conn = speech.synthesize_streaming(voice, format=player.sample_format, sample_rate=sample_rate,
                                       return_extras=True)
    try:
        player.play(_OneTurn(conn), close_when_done=True)
        for piece in [text] if isinstance(text, str) else text:
            conn.append_text(piece)
        conn.flush()
    except BaseException:
        player.close()
        conn.close()
        raise
    if display:
        from IPython.display import display as show

        show(player)
    return player


class _OneTurn:
    """A session seen as ending at its first ``flush_complete`` / ``reset_complete``.

    ``finish()`` would forbid the reset a Stop sends, so a one-shot session
    is flushed instead, and its end is the flush's (or the reset's) marker.
    """

    def __init__(self, conn: StreamingConnection) -> None:
        self._conn = conn
        self._over = False

    def recv(self, timeout: Optional[float] = None) -> Message:
        if self._over:
            raise ConnectionClosedOK("the turn is over", 1000)
        message = self._conn.recv(timeout)
        self._over = message["type"] in ("flush_complete", "reset_complete")
        return message

    def reset(self) -> int:
        return self._conn.reset()

    def __iter__(self) -> Iterator[Message]:
        """The turn's messages (blocks; the player reads with ``recv`` instead, to stay stoppable)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def close(self) -> None:
        self._conn.close()


_subshell: Dict[Any, str] = {}  # kernel -> the subshell that handles every player's page messages
_subshell_lock = threading.Lock()


def _answer_off_main_thread(comm: Any) -> bool:
    """Have the kernel handle this comm's messages on a subshell thread of its own.

    A cell blocked in ``wait()`` (or in any long computation) holds the
    kernel's main thread, which would queue the page's acks and its
    ``done`` until the cell ends: playback would stall at the window and
    ``wait()`` would never return. ipykernel 7 runs *subshells* (JEP 91),
    each a thread with its own loop, and routes a comm's messages to the
    subshell its ``_reply_subshell_for`` names. One subshell per kernel is
    created (on ipykernel's shell-channel thread, where subshells are made)
    and kept for the kernel's life. Returns False (and does nothing)
    without subshells.
    """
    kernel = getattr(comm, "kernel", None)
    channel = getattr(kernel, "shell_channel_thread", None)
    if channel is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    with _subshell_lock:
        if kernel not in _subshell:
            made: Dict[str, str] = {}
            ready = threading.Event()

            def create() -> None:
                try:
                    made["id"] = channel.manager._create_subshell()
                finally:
                    ready.set()

            channel.io_loop.add_callback(create)
            if not ready.wait(10) or "id" not in made:
                return False
            _subshell[kernel] = made["id"]
        subshell_id = _subshell[kernel]
    comm._reply_subshell_for = lambda _data, _default: subshell_id
    return True


def _on_kernel_main_thread() -> bool:
    """True on the main thread of an IPython kernel (which runs the cells)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return getattr(shell, "kernel", None) is not None


def _min_wait(deadline: Deadline, step: float) -> float:
    remaining = deadline.remaining()
    return step if remaining is None else max(0.0, min(step, remaining))
