"""reset is a barge-in: it cancels synthesis in flight, flushed text included.

Against the real default voice over loopback: a long paragraph is flushed,
the client resets once its first audio arrives, and from ``reset_complete``
on only the text sent after the reset is heard. (BENCHMARKS.md "## Reset
latency" measures how soon ``reset_complete`` comes.)
"""
import pytest

from server_kit import close, connect, current_init, legacy_init, read, send

SENTENCE = ("The little boat drifted slowly along the quiet river while the children "
            "watched the herons fishing in the reeds. ")
PARAGRAPH = SENTENCE * 40  # minutes of speech: far more than can be made before the reset lands


def _after(transcript, kind):
    """Return the events after the first JSON message of type ``kind``."""
    for i, (what, message) in enumerate(transcript.events):
        if what == "json" and message.get("type") == kind:
            return transcript.events[i + 1:]
    raise AssertionError(f"no {kind} in {transcript.kinds()}")


@pytest.mark.parametrize("fmt", ["pcm_s16le", "mp3"])
def test_reset_mid_paragraph_stops_the_flushed_text(speaking_server, fmt):
    """A reset during a flushed paragraph drops the rest of it; only later text follows the ack."""
    ws = connect(speaking_server, current_init(speaking_server, format=fmt))
    try:
        send(ws, {"type": "text", "text": PARAGRAPH}, {"type": "flush", "nonce": 1})
        before = read(ws, until="timestamps")  # the paragraph is being spoken
        send(ws, {"type": "reset", "nonce": 2}, {"type": "text", "text": "Kept words."},
             {"type": "flush", "nonce": 3})
        while before.messages("type", "flush_complete")[-1:] != [{"type": "flush_complete", "nonce": 3}]:
            read(ws, until="flush_complete", transcript=before)
        acks = [m for m in before.kinds() if m.endswith("_complete")]
        assert acks == ["flush_complete", "reset_complete", "flush_complete"]
        spoken = before.words()
        assert spoken[-2:] == ["Kept", "words."]
        assert len(spoken) - 2 < len(PARAGRAPH.split()) // 2, "the paragraph was not cut short"
        later = [m for what, m in _after(before, "reset_complete") if what == "json"]
        words_after = [w["text"] for m in later if m.get("type") == "timestamps" for w in m["timestamps"]]
        assert words_after == ["Kept", "words."]
    finally:
        close(ws)


def test_reset_mid_paragraph_on_the_command_wire(speaking_server):
    """protocol_version 2: the same barge-in, acknowledged with complete + nonce."""
    ws = connect(speaking_server, legacy_init(speaking_server, protocol_version=2))
    try:
        send(ws, {"text": PARAGRAPH}, {"command": "flush", "nonce": 1})
        first = ws.recv()  # the paragraph's first frame: it is being spoken
        assert first
        send(ws, {"command": "reset", "nonce": 2}, {"text": "Kept words."},
             {"command": "eof"})
        rest = read(ws)
        acks = rest.messages("complete")
        assert acks[-1] == {"complete": "reset", "nonce": 2}
        assert rest.words("durations")[-2:] == ["Kept", "words."]
        assert len(rest.words("durations")) < len(PARAGRAPH.split()) // 2
        assert rest.close_code == 1000
    finally:
        close(ws)
