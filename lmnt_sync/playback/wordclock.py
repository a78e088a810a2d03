"""When each word is heard: word timings placed on the stream, and the device clock.

Pure and clock-free. Positions are *source frames*: frame N is the N-th
audio frame the player was ever given (``JitterBuffer`` counts them).

``WordSchedule`` turns LMNT timing messages into source positions:

* current wire (API 1.2) ``timestamps`` messages arrive *after* the audio
  they describe, and their ``start`` counts from the beginning of the audio
  since the last flush or reset. A session's ``flush_complete`` /
  ``reset_complete`` message marks that point exactly (``restart``); for
  sources without such markers the schedule also detects the restart: a
  message whose first start is earlier than the last start seen begins a new
  segment, which began with the first audio received after the previous
  timing message (the server sends a segment's last timings before any audio
  of the next one).
* legacy ``durations`` ride on an audio message and count from that
  message's first frame.

``PlayClock`` maps the device's position (frames written minus the frames
still in the device buffer) back to source frames, through the silence the
player inserted on underruns.
"""
from __future__ import annotations

import bisect
import collections
from typing import Deque, List, Optional, Tuple

from ..messages import WordTiming

__all__ = ["WordSchedule", "PlayClock"]

Word = WordTiming


class WordSchedule:
    """Word timings waiting to be heard, ordered by source position.

    Args:
        sample_rate: frames per second of the audio the timings describe.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pending: List[Tuple[int, int, Word]] = []  # (position, arrival order, word)
        self._count = 0
        self.restart(0)

    def restart(self, position: int) -> None:
        """Start a new segment at ``position`` (a new source, or after a reset)."""
        self._base = position
        self._last_start: Optional[float] = None
        self._unstamped_from = position

    def timestamps(self, words: List[Word], received: int) -> None:
        """Place a current-wire ``timestamps`` message; ``received`` = frames received so far."""
        if words:
            first = float(words[0]["start"])
            last = self._last_start
            if last is not None and (first < last or first == last == 0.0):
                self._base = self._unstamped_from
            for word in words:
                self._add(self._base + self._frames(word["start"]), word)
            self._last_start = float(words[-1]["start"])
        self._unstamped_from = received

    def durations(self, words: List[Word], frame_start: int) -> None:
        """Place legacy ``durations`` that count from the audio starting at ``frame_start``."""
        for word in words:
            self._add(frame_start + self._frames(word["start"]), word)

    def due(self, heard: int) -> List[Word]:
        """Remove and return, in order, the words whose first frame has been heard.

        ``heard`` is the source position of the next frame to be heard, so a
        word fires once the frame at its position has started to play.
        """
        cut = bisect.bisect_left(self._pending, (heard,))
        words = [word for _, _, word in self._pending[:cut]]
        del self._pending[:cut]
        return words

    def take_all(self) -> List[Tuple[int, Word]]:
        """Remove and return every pending word with its source position, in order.

        For players that schedule words elsewhere (the browser player sends
        the positions to the page, which times them against its own clock).
        """
        placed = [(position, word) for position, _, word in self._pending]
        self._pending.clear()
        return placed

    def clear(self, position: int) -> None:
        """Forget every pending word and restart at ``position`` (interrupt)."""
        self._pending.clear()
        self.restart(position)

    def _frames(self, seconds: float) -> int:
        return max(0, int(round(float(seconds) * self.sample_rate)))

    def _add(self, position: int, word: Word) -> None:
        self._count += 1
        # The arrival count is unique, so tuples never compare the word dicts.
        bisect.insort(self._pending, (position, self._count, word.copy()))


class PlayClock:
    """Maps device frames to source frames for one run of the output stream.

    The player records each block it writes; the device position heard is
    the frames written minus the device's output latency.
    """

    def __init__(self) -> None:
        self.written = 0
        self._blocks: Deque[Tuple[int, int, int]] = collections.deque()  # (device, source, audio)
        self._heard_source = 0
        self._audio_end = 0  # device frame where the last audio written ends

    def start(self) -> None:
        """Begin a new stream run (after every start, also one that reopened a stream the
        player closed while idle); blocks of an earlier run are gone, what was heard stays."""
        self.written = 0
        self._audio_end = 0
        self._blocks.clear()

    def wrote(self, block_frames: int, source_start: int, audio_frames: int) -> None:
        """Record a block written to the device: ``audio_frames`` audio, then silence."""
        if audio_frames:
            self._blocks.append((self.written, source_start, audio_frames))
            self._audio_end = self.written + audio_frames
        self.written += block_frames

    def heard(self, latency_frames: int) -> int:
        """Return the source position heard so far (frames before it have played)."""
        return self._advance(self.written - latency_frames)

    def silence_written(self) -> int:
        """Frames of silence written after the last audio of this run."""
        return self.written - self._audio_end

    def drained(self) -> int:
        """Return the source position heard once everything written has played."""
        return self._advance(self.written)

    def _advance(self, device: int) -> int:
        while self._blocks:
            dev_start, src_start, audio = self._blocks[0]
            if device < dev_start:
                break
            self._heard_source = max(self._heard_source, src_start + min(device - dev_start, audio))
            if device < dev_start + audio:
                break
            self._blocks.popleft()
        return self._heard_source
