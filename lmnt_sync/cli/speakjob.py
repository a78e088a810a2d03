"""The ``speak`` job of the command line: text in, audio to a file and/or the speakers.

Every piece of text goes to the sessions opened, flushed per line when text
streams in, so speech starts while later text is still being written. The
speakers need PCM; a file gets its own format. Both at once use one PCM
session, played and written here (``PlayFileSink``), so the text is spoken,
and charged, once; a compressed file is then encoded here, which needs PyAV
(the ``[server]`` extra).

Long text is sent in pieces that fit the server's limits (64 KiB per
websocket message, 100,000 characters buffered): each piece is at most
``MAX_PIECE_CHARS`` characters, and once ``MAX_UNCONFIRMED_CHARS`` have been
sent the job waits for the server to have spoken them before sending more.
"""
from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Iterable, Iterator, List, Optional

from ..errors import MissingDependencyError
from .audiofile import AudioFileWriter, output_format
from .progress import Progress

if TYPE_CHECKING:
    from ..client import Speech

__all__ = ["speak", "open_sinks", "text_pieces", "FileSink", "PlaySink", "PlayFileSink",
           "MAX_PIECE_CHARS", "MAX_UNCONFIRMED_CHARS"]

#: characters per append_text: even at 12 bytes per character (a JSON-escaped
#: surrogate pair) one message stays under the server's 64 KiB
MAX_PIECE_CHARS = 4000
#: characters sent before waiting for their flush_complete: well under the
#: server's 100,000 buffered characters
MAX_UNCONFIRMED_CHARS = 40_000
_BREAKS = (re.compile(r"[.!?;:]\s"), re.compile(r"\s"))  # best cut first: a sentence end, then a space

_PCM_BYTES_PER_SAMPLE = {"pcm_s16le": 2, "pcm_f32le": 4}


class FileSink:
    """One session whose audio a background thread writes to a file.

    Raises (from the constructor): OSError if the file cannot be created;
    LmntError if the session cannot be opened.
    """

    def __init__(self, speech: Speech, voice: str, path: str, fmt: str, wrap_wav: bool,
                 sample_rate: int, language: Optional[str], progress: Progress) -> None:
        self._writer = AudioFileWriter(path, sample_rate if wrap_wav else None)
        try:
            self.conn = speech.synthesize_streaming(voice, format=fmt, sample_rate=sample_rate, language=language)
        except BaseException:
            self._writer.close()
            raise
        width = _PCM_BYTES_PER_SAMPLE.get(fmt)
        self._bytes_per_second = width * sample_rate if width else 0
        self._progress = progress
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._drain, name="lmnt-sync-cli-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            for message in self.conn:
                audio = message["audio"]
                self._writer.write(audio)
                seconds = len(audio) / self._bytes_per_second if self._bytes_per_second else 0.0
                self._progress.received(len(audio), seconds)
        except BaseException as exc:  # handed to the main thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Block until the session has ended and its audio is written; re-raise its error."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    def close(self, keep: bool = False) -> None:
        """Close the session, join the writer and close the file; idempotent.

        ``keep`` puts the file in place (see ``AudioFileWriter.close``);
        otherwise it is discarded.
        """
        self.conn.close()
        self._thread.join()
        self._writer.close(keep)


class PlaySink:
    """One PCM session played live by a Player.

    Raises (from the constructor): MissingDependencyError without pyaudio,
    PlaybackError if the device cannot be opened, LmntError for the session.
    """

    def __init__(self, speech: Speech, voice: str, sample_rate: int, language: Optional[str]) -> None:
        from ..playback.player import Player

        # The device first: a missing pyaudio or sound card fails before any text is spent.
        self._player = Player(sample_rate)
        try:
            self.conn = speech.synthesize_streaming(voice, format="pcm_s16le", sample_rate=sample_rate,
                                                    language=language)
        except BaseException:
            self._player.close()
            raise
        self._player.play(self._source())

    def _source(self) -> Iterable[Any]:
        return self.conn

    def wait(self) -> None:
        """Block until the last frame has been heard; re-raise a session error."""
        self._player.wait()

    def close(self, keep: bool = False) -> None:
        """Stop playing, release the device and close the session; idempotent."""
        self._player.close()
        self.conn.close()


class PlayFileSink(PlaySink):
    """One PCM session played live and written to a file (encoded here unless 16-bit PCM).

    Raises (from the constructor): MissingDependencyError when the file's
    format needs encoding and PyAV/numpy (the ``[server]`` extra) are
    missing, before the device or the session is opened; as ``PlaySink``
    and ``FileSink`` otherwise.
    """

    def __init__(self, speech: Speech, voice: str, path: str, fmt: str, wrap_wav: bool,
                 sample_rate: int, language: Optional[str], progress: Progress) -> None:
        self._encoder: Any = None
        if fmt != "pcm_s16le":
            try:
                from ..codecs import Encoder
            except ImportError as exc:
                raise MissingDependencyError(
                    f"--play with -o {path} encodes {fmt} here, which needs PyAV and numpy: "
                    "pip install 'lmnt-sync[server]' (or write a .wav file)") from exc
            self._encoder = Encoder(fmt, sample_rate, sample_rate)
        self._rate, self._progress = sample_rate, progress
        self._writer = AudioFileWriter(path, sample_rate if wrap_wav else None)
        try:
            super().__init__(speech, voice, sample_rate, language)
        except BaseException:
            self._writer.close()
            raise

    def _source(self) -> Iterable[bytes]:
        """The session's PCM, for the player; each chunk is written to the file first."""
        for message in self.conn:
            pcm = message["audio"]
            self._writer.write(self._encoder.encode(pcm) if self._encoder is not None else pcm)
            self._progress.received(len(pcm), len(pcm) / (2 * self._rate))
            yield pcm
        if self._encoder is not None:
            self._writer.write(self._encoder.finish())

    def close(self, keep: bool = False) -> None:
        """Stop playing, release the device, close the session and the file; idempotent."""
        super().close()
        self._writer.close(keep)


def text_pieces(text: str, limit: int = MAX_PIECE_CHARS) -> Iterator[str]:
    """Yield ``text`` in pieces of at most ``limit`` characters, cut after a
    sentence end or a space when there is one, so no word is split."""
    while len(text) > limit:
        window = text[:limit]
        cut = 0
        for pattern in _BREAKS:
            ends = [match.end() for match in pattern.finditer(window)]
            if ends and ends[-1] > limit // 2:
                cut = ends[-1]
                break
        cut = cut or limit
        yield text[:cut]
        text = text[cut:]
    if text:
        yield text


def speak(sinks: List[Any], texts: Iterable[str], *, flush_each: bool, progress: Progress) -> int:
    """Send every text to every sink's session, then finish and wait for all of them.

    Blocks until all audio is written and heard. ``texts`` may block (stdin).
    Text of any length is sent in pieces within the server's limits (see
    the module doc); sending pauses while the server is far behind.

    Returns:
        The number of characters sent.

    Raises:
        LmntError: a session failed (the first error met).
    """
    sent = unconfirmed = 0
    for text in texts:
        for piece in text_pieces(text):
            unconfirmed += len(piece)
            full = unconfirmed >= MAX_UNCONFIRMED_CHARS
            for sink in sinks:
                sink.conn.append_text(piece)
                if full:  # wait until it is spoken, so the server's buffer never overflows
                    sink.conn.flush(wait=True, timeout=None)
            unconfirmed = 0 if full else unconfirmed
        if flush_each:
            for sink in sinks:
                sink.conn.flush()
        sent += len(text)
        progress.sent(text)
    for sink in sinks:
        sink.conn.finish()
    for sink in sinks:
        sink.wait()
    return sent


def open_sinks(speech: Speech, voice: str, *, output: Optional[str], fmt: Optional[str], play: bool,
               sample_rate: int, language: Optional[str], progress: Progress) -> List[Any]:
    """Open the sessions for the destinations asked for; blocks while connecting.

    On failure, the sinks already opened are closed before the error propagates.

    Raises:
        ConfigurationError: the file's format cannot be told, or is invalid.
        MissingDependencyError: --play with a compressed file and no PyAV.
        OSError: the file cannot be created.
        LmntError: a session or the audio device could not be opened.
    """
    file_format = output_format(output, fmt) if output is not None else None  # fails before connecting
    if play and output is not None and file_format is not None:
        return [PlayFileSink(speech, voice, output, *file_format, sample_rate, language, progress)]
    sinks: List[Any] = []
    try:
        if play:
            sinks.append(PlaySink(speech, voice, sample_rate, language))
        if output is not None and file_format is not None:
            session_format, wrap = file_format
            sinks.append(FileSink(speech, voice, output, session_format, wrap, sample_rate, language, progress))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
