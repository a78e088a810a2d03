"""Audio output files for the command line: the format from the extension, and the writer.

``.wav`` asks the server for 16-bit PCM and wraps it in a WAV header here
(patched with the final length when the file is closed), so any player
opens it; the other extensions hold the session's bytes unchanged.

A file is written under a temporary name beside its destination and renamed
over it only when the job succeeds, so a failed run never truncates an
existing file nor leaves an empty one behind.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
import wave
from typing import IO, Any, Optional, Tuple

from ..errors import ConfigurationError

__all__ = ["EXTENSION_FORMATS", "output_format", "AudioFileWriter"]

#: file extension -> the session format that fills it
EXTENSION_FORMATS = {
    ".mp3": "mp3",
    ".wav": "pcm_s16le",
    ".webm": "webm",
    ".pcm": "pcm_s16le",
    ".raw": "pcm_s16le",
    ".ulaw": "ulaw",
}


def output_format(path: str, explicit: Optional[str]) -> Tuple[str, bool]:
    """Return ``(session_format, wrap_in_wav)`` for writing ``path``.

    ``explicit`` (``--format``) wins for raw files; ``-`` (stdout) defaults
    to mp3.

    Raises:
        ConfigurationError: the extension is unknown and no format was
            given, or ``.wav`` was asked to hold something other than
            16-bit PCM.
    """
    if path == "-":
        return explicit or "mp3", False
    ext = os.path.splitext(path)[1].lower()
    if ext == ".wav":
        if explicit not in (None, "pcm_s16le"):
            raise ConfigurationError(f"{path}: a .wav file holds 16-bit PCM, not {explicit!r}; "
                                     "drop --format or use another extension")
        return "pcm_s16le", True
    if explicit:
        return explicit, False
    if ext not in EXTENSION_FORMATS:
        known = " ".join(sorted(EXTENSION_FORMATS))
        raise ConfigurationError(f"cannot tell the audio format of {path!r} from its extension "
                                 f"(known: {known}); add --format")
    return EXTENSION_FORMATS[ext], False


class AudioFileWriter:
    """Writes session audio to a file (or stdout for ``-``), flushing every chunk.

    Flushing per chunk lets another program follow the output (stdout, or
    the temporary file) while speech streams in. A regular file is written as ``.NAME.XXXX.part`` in the same
    folder and renamed to ``path`` by ``close(keep=True)``; ``close()``
    without ``keep`` removes it. Devices and pipes (``/dev/null``, a FIFO)
    are written directly. Not thread-safe: one thread writes.

    Raises:
        OSError: the file cannot be created or written.
    """

    def __init__(self, path: str, wav_rate: Optional[int] = None) -> None:
        self.path = path
        self.bytes_written = 0
        self._owned = path != "-"
        self._temp: Optional[str] = _temp_name(path) if self._owned and _is_regular_or_absent(path) else None
        self._file: IO[bytes] = sys.stdout.buffer
        if self._owned:
            target = self._temp or path
            flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if self._temp else os.O_TRUNC)
            self._file = os.fdopen(os.open(target, flags, 0o666), "wb")
        self._wav: Any = None
        if wav_rate is not None:
            self._wav = wave.open(self._file, "wb")  # noqa: SIM115 - open across writes; close() closes it
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(wav_rate)

    def write(self, audio: bytes) -> None:
        """Append ``audio`` and flush it to the OS."""
        if not audio:
            return
        if self._wav is not None:
            self._wav.writeframes(audio)  # also rewrites the header's lengths
        else:
            self._file.write(audio)
        self._file.flush()
        self.bytes_written += len(audio)

    def close(self, keep: bool = False) -> None:
        """Finish the WAV header (if any) and close the file; idempotent.

        ``keep=True`` renames the temporary file over ``path``; otherwise
        it is removed and ``path`` is left as it was. The first call decides.

        Raises:
            OSError: the file could not be completed or renamed (it is removed).
        """
        try:
            if self._wav is not None:
                wav, self._wav = self._wav, None
                wav.close()  # patches the header's lengths (of a file about to go, if not kept)
            if self._owned and not self._file.closed:
                self._file.close()
                if self._temp is not None and keep:
                    os.replace(self._temp, self.path)
                    self._temp = None
        finally:
            if self._owned and not self._file.closed:
                self._file.close()
            if self._temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._temp)
                self._temp = None


def _is_regular_or_absent(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True


def _temp_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{secrets.token_hex(4)}.part")
