"""Jupyter helpers: speech as a playable audio element, and live playback that leaves the kernel free.

``play_in_browser`` plays in the notebook's page (no sound device needed
where the kernel runs: JupyterHub, remote servers, containers);
``play_live`` plays through the speakers of the kernel's machine.

::

    from lmnt_sync import Speech
    from lmnt_sync.notebook import synthesize_clip, play_live

    speech = Speech(local=True)
    synthesize_clip(speech, "Hello from a notebook.", "lily")   # last line of a cell: an <audio> player
    player = play_live(speech, "This plays while the next cell runs.", "lily")
    player = play_in_browser(speech, "This plays in your browser.", "lily")

Everything here blocks like the rest of lmnt_sync (threads, no event loop),
so it runs in a notebook cell without touching the kernel's asyncio loop.
``AudioClip`` renders through ``_repr_html_`` and needs no IPython import;
``show()`` imports IPython lazily.
"""
from __future__ import annotations

import array
import base64
import io
import wave
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Union

from .errors import ConfigurationError, MissingDependencyError
from .messages import Message, WordTiming

if TYPE_CHECKING:  # for annotations only: importing them here would pull in what they need
    from .client import Speech
    from .playback.browser_player import BrowserPlayer
    from .playback.player import Player

__all__ = ["AudioClip", "collect_clip", "synthesize_clip", "show", "play_live", "play_in_browser", "pcm_to_wav"]

_MIME = {"mp3": "audio/mpeg", "wav": "audio/wav", "webm": "audio/webm", "ulaw": "audio/wav"}


def pcm_to_wav(pcm: bytes, sample_rate: int, sample_format: str = "pcm_s16le") -> bytes:
    """Wrap mono PCM in a WAV container (float PCM is converted to 16-bit).

    Raises:
        ConfigurationError: an unknown PCM sample format.
    """
    if sample_format == "pcm_f32le":
        # array uses the machine's byte order; LMNT's PCM is little-endian, as are the
        # machines this runs on, so no swapping is done.
        floats = array.array("f", pcm[: len(pcm) // 4 * 4])
        pcm = array.array("h", (int(max(-1.0, min(1.0, x)) * 32767) for x in floats)).tobytes()
    elif sample_format != "pcm_s16le":
        raise ConfigurationError(f"sample_format must be pcm_s16le or pcm_f32le, not {sample_format!r}")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return out.getvalue()


class AudioClip:
    """Speech audio that Jupyter displays as an ``<audio controls>`` element.

    Args:
        audio: the bytes, in ``format``.
        format: ``mp3``, ``wav``, ``webm``, ``ulaw``, or ``pcm_s16le`` /
            ``pcm_f32le`` (wrapped in WAV here, so browsers can play it).
        sample_rate: needed for PCM.
        timestamps: word timings, kept for the caller (optional).
    """

    def __init__(self, audio: bytes, format: str = "mp3", sample_rate: int = 24000,  # noqa: A002
                 timestamps: Optional[List[WordTiming]] = None) -> None:
        if format.startswith("pcm_"):
            audio, format = pcm_to_wav(audio, sample_rate, format), "wav"
        if format not in _MIME:
            raise ConfigurationError(f"cannot show {format!r} audio; use one of {', '.join(_MIME)} or PCM")
        self.audio, self.format, self.sample_rate = audio, format, sample_rate
        self.timestamps = timestamps or []

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.audio).decode("ascii")
        return f'<audio controls preload="auto" src="data:{_MIME[self.format]};base64,{data}"></audio>'

    def save(self, path: str) -> None:
        """Write the bytes to ``path`` (blocks on the file system)."""
        with open(path, "wb") as out:
            out.write(self.audio)

    def __len__(self) -> int:
        return len(self.audio)

    def __repr__(self) -> str:
        return f"<AudioClip {self.format} {len(self.audio)} bytes>"


def collect_clip(messages: Iterable[Message], format: str = "mp3",  # noqa: A002
                 sample_rate: int = 24000) -> AudioClip:
    """Iterate a session (blocks until it ends) and return its audio and timings as a clip."""
    audio = bytearray()
    words: List[WordTiming] = []
    for message in messages:
        audio += message["audio"]
        if message["type"] == "timestamps":
            words.extend(message["timestamps"])
    return AudioClip(bytes(audio), format, sample_rate, words)


def synthesize_clip(speech: Speech, text: str, voice: str, *, format: str = "mp3",  # noqa: A002
                    sample_rate: int = 24000, **options: Any) -> AudioClip:
    """Synthesize ``text`` over REST (blocks until done) and return it as a clip.

    Raises:
        LmntError: as ``Speech.synthesize``.
    """
    audio = speech.synthesize(text, voice, format=format, sample_rate=sample_rate, **options)
    return AudioClip(audio, format, sample_rate)


def show(clip: Any) -> None:
    """Display a clip (or anything IPython can display) in the current cell's output.

    Raises:
        MissingDependencyError: IPython is not installed.
    """
    try:
        from IPython.display import display
    except ImportError as exc:
        raise MissingDependencyError("show() needs IPython: pip install ipython") from exc
    display(clip)


def play_live(speech: Speech, text: Union[str, Iterable[str]], voice: str, *, sample_rate: int = 24000,
              on_word: Optional[Callable[[WordTiming], Any]] = None, **player_options: Any) -> Player:
    """Start speaking ``text`` through the speakers and return the Player at once.

    The cell finishes immediately; the audio plays from the Player's own
    thread. ``text`` is a string or an iterable of strings (sent as they
    come). The Player releases the device by itself when the speech has
    been heard; call ``player.interrupt()`` to stop early, or
    ``player.wait()`` to block until the end.

    Raises:
        MissingDependencyError: pyaudio is not installed.
        PlaybackError: no audio device could be opened.
        LmntError: the session could not be opened.
    """
    from .playback.player import Player

    player = Player(sample_rate, on_word=on_word, **player_options)
    conn = None
    try:
        conn = speech.synthesize_streaming(voice, format="pcm_s16le", sample_rate=sample_rate,
                                           return_extras=on_word is not None)
        player.play(conn, close_when_done=True)
        for piece in [text] if isinstance(text, str) else text:
            conn.append_text(piece)
        conn.finish()
    except BaseException:
        player.close()
        if conn is not None:
            conn.close()
        raise
    return player


def play_in_browser(speech: Speech, text: Union[str, Iterable[str]], voice: str, **options: Any) -> BrowserPlayer:
    """Speak ``text`` in the notebook's page; display the player widget and return it at once.

    The widget (``lmnt_sync.playback.browser_player.BrowserPlayer``) plays the audio
    as it arrives, highlights each word as it is heard and has a Stop
    button; ``player.wait()`` blocks until the page has played it all.
    ``options`` go to ``playback.browser_player.speak_in_browser`` (``sample_rate``,
    ``window``, ``read_ahead``, ``preroll``, ``display``).

    Raises:
        MissingDependencyError: anywidget (the ``[notebook]`` extra) is not installed.
        LmntError: the session could not be opened.
    """
    from .playback.browser_player import speak_in_browser

    return speak_in_browser(speech, text, voice, **options)
