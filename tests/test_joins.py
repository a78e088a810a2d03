"""lmnt_sync.server.joins: engine padding trimmed at mid-sentence joins only."""
import numpy as np
import pytest

from lmnt_sync.server.engines.base import SpeechChunk, WordTiming
from lmnt_sync.server.joins import ONSET_LEAD, PAUSES, join_chunks, pause_after

RATE = 24000
LEAD, VOICED, TAIL = 0.3, 0.5, 0.45  # hibari-like padding around a voiced span


def _chunk(*words, lead=LEAD):
    """A chunk: ``lead`` s silence, VOICED s of tone shared by ``words``, TAIL s silence."""
    t = np.arange(int(VOICED * RATE)) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    pcm = np.concatenate([np.zeros(int(lead * RATE), "<i2"), tone, np.zeros(int(TAIL * RATE), "<i2")])
    share = VOICED / len(words)
    return SpeechChunk(pcm.tobytes(), [WordTiming(w, lead + i * share, share) for i, w in enumerate(words)])


def _seconds(chunk):
    return len(chunk.pcm) / 2 / RATE


# (words of each chunk, continues, expected (lead trimmed?, tail kept) per chunk)
TABLE = [
    pytest.param([("Hello", "there.")], False, [(False, TAIL)], id="whole-sentence-untouched"),
    pytest.param([("Well,", "you", "see,")], False, [(False, PAUSES["hibari"]["clause"])],
                 id="clause-cut-keeps-the-clause-pause"),
    pytest.param([("children", "all")], False, [(False, PAUSES["hibari"]["word"])],
                 id="word-cut-keeps-a-word-gap"),
    pytest.param([("the", "way", "home.")], True, [(True, TAIL)], id="continuation-loses-its-lead"),
    pytest.param([("one", "two"), ("three.",), ("Four.",)], False,
                 [(False, PAUSES["hibari"]["word"]), (True, TAIL), (False, TAIL)],
                 id="run-on-cut-inside-one-piece"),
    pytest.param([("Ask", "Dr.")], False, [(False, TAIL)], id="any-mark-is-spoken-as-an-end"),
]


@pytest.mark.parametrize("words, continues, expected", TABLE)
def test_join_chunks_trims_only_mid_sentence_joins(words, continues, expected):
    """Leading silence goes where a sentence continues; trailing silence shrinks where it stops mid-way."""
    out = list(join_chunks([_chunk(*w) for w in words], "hibari", RATE, continues))
    assert [tuple(t.text for t in c.words) for c in out] == [tuple(w) for w in words]
    for chunk, (lead_trimmed, tail) in zip(out, expected):
        lead = 0.01 if lead_trimmed else LEAD
        assert _seconds(chunk) == pytest.approx(lead + VOICED + tail, abs=0.011)
        assert chunk.words[0].start == pytest.approx(lead, abs=0.011), "timings move with the audio"
        end = chunk.words[-1].start + chunk.words[-1].duration
        assert end <= _seconds(chunk)


def test_unknown_engines_pass_through():
    """The synthetic test tone (no PAUSES entry) is not touched."""
    chunk = _chunk("no", "end")
    assert list(join_chunks([chunk], "synthetic", RATE, True)) == [chunk]


def test_pause_after_depends_on_the_punctuation():
    """A clause mark calls for a longer pause than a bare word, per engine."""
    assert pause_after("piper", "well,") == PAUSES["piper"]["clause"] > pause_after("piper", "well")
    assert pause_after("hibari", '"so;"') == PAUSES["hibari"]["clause"]


@pytest.mark.parametrize("lead", [LEAD, 0.0], ids=["engine-pads", "engine-starts-sounding"])
@pytest.mark.parametrize("engine", list(PAUSES))
def test_a_turn_starts_just_before_its_first_sound(engine, lead):
    """The first chunk of a turn keeps (or gets) ONSET_LEAD of silence before its sound; later ones keep theirs."""
    first, second = _chunk("Hello", "there.", lead=lead), _chunk("Next.")
    out = list(join_chunks([first, second], engine, RATE, opens_turn=True))
    samples = np.frombuffer(out[0].pcm, "<i2")
    assert not samples[: int(ONSET_LEAD * RATE) - 1].any() and samples[int(ONSET_LEAD * RATE) + 1]
    assert _seconds(out[0]) == pytest.approx(ONSET_LEAD + VOICED + TAIL, abs=0.006)
    assert out[0].words[0].start == pytest.approx(ONSET_LEAD, abs=0.006), "timings move with the audio"
    assert out[1] == second, "only the turn's first chunk is touched"
