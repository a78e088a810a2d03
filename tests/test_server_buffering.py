"""Table tests for lmnt_sync.server.buffering: when buffered text becomes a segment."""
import pytest

from lmnt_sync.server.buffering import BufferRules, TextBuffer

# (pieces pushed one by one, segments expected after each push)
PUSH_TABLE = [
    pytest.param(["Hello world."], [[]], id="sentence-end-needs-following-whitespace"),
    pytest.param(["Hello world. "], [["Hello world."]], id="sentence-released-at-whitespace"),
    pytest.param(["Hel", "lo wor", "ld. "], [[], [], ["Hello world."]], id="mid-word-pieces-join-without-separator"),
    pytest.param(["Yes! No? Maybe. "], [["Yes!", "No?", "Maybe."]], id="every-complete-sentence-released"),
    pytest.param(['He said "stop." Then '], [['He said "stop."']], id="closing-quote-after-sentence-mark"),
    pytest.param(["Pi is 3.14 roughly"], [[]], id="decimal-point-is-not-a-sentence-end"),
    pytest.param(["Well, you see, I think "], [["Well, you see,"]], id="first-segment-starts-at-clause-boundary"),
    pytest.param(["Hi, there "], [[]], id="clause-too-short-for-early-start"),
    pytest.param(["one two three four five six seven eight nine ten "], [[]],
                 id="first-segment-never-cut-mid-phrase-while-text-flows"),
    pytest.param(["The museum opens at nine on weekdays and closes "],
                 [["The museum opens at nine on weekdays"]], id="first-segment-before-a-phrase-start"),
    pytest.param(["I think we should go and "], [[]], id="phrase-start-too-early"),
    pytest.param(["It was android phones "], [[]], id="phrase-start-is-a-whole-word"),
    pytest.param(["I met Dr. ", "Patel today. "], [[], ["I met Dr. Patel today."]], id="title-abbreviation"),
    pytest.param(["Ask Mr. Lee. Now "], [["Ask Mr. Lee."]], id="abbreviation-then-sentence-end"),
    pytest.param(["Go. ", "Use a type, e.g. ", "type C please. "], [["Go."], [], ["Use a type, e.g. type C please."]],
                 id="eg-is-not-a-sentence-end"),
    pytest.param(["We meet at 5 p.m. ", "if it is dry. "], [[], ["We meet at 5 p.m. if it is dry."]],
                 id="pm-then-lowercase-continues"),
    pytest.param(["We meet at 5 p.m. ", "The rest "], [[], ["We meet at 5 p.m."]],
                 id="pm-then-capital-ends-the-sentence"),
    pytest.param(["It costs 3.50 dollars. "], [["It costs 3.50 dollars."]], id="decimal-inside-sentence"),
    pytest.param(["J. R. R. Tolkien wrote it. "], [["J. R. R. Tolkien wrote it."]], id="initials"),
    pytest.param(["Well... ", "maybe not. "], [[], ["Well... maybe not."]], id="ellipsis-waits-for-next-word"),
    pytest.param(["Wait for it! Done. "], [["Wait for it!", "Done."]], id="exclamation-is-certain"),
    pytest.param(["one two three four five six seven eight"], [[]], id="last-word-may-continue"),
    pytest.param(["First one. and then, after that, more words "], [["First one."]],
                 id="later-segments-wait-for-sentence-end"),
]


@pytest.mark.parametrize("pieces, expected", PUSH_TABLE)
def test_push_releases_segments(pieces, expected):
    """Pushing pieces releases exactly the expected segments after each push."""
    buffer = TextBuffer()
    assert [buffer.push(piece) for piece in pieces] == expected


def test_run_on_text_is_cut_at_max_words_preferring_a_clause():
    """A later run-on segment is cut at max_words, at the last clause boundary before it."""
    buffer = TextBuffer(BufferRules(max_words=6))
    assert buffer.push("Start. ") == ["Start."]
    assert buffer.push("a b c, d e f g h ") == ["a b c,"]
    assert buffer.flush() == ["d e f g h"]


def test_flush_releases_everything_and_starts_a_new_turn():
    """flush() returns the rest as one segment; an empty buffer flushes nothing."""
    buffer = TextBuffer()
    assert buffer.push("First sentence. and the rest") == ["First sentence."]
    assert buffer.flush() == ["and the rest"]
    assert buffer.flush() == []
    assert buffer.push("Well, you see, ") == ["Well, you see,"]


def test_early_start_applies_once_per_turn():
    """Only the first segment of a turn starts at a clause; later ones wait for a sentence end."""
    buffer = TextBuffer()
    assert buffer.push("Well, you see, I think ") == ["Well, you see,"]
    assert buffer.push("that, as they say, ") == []
    buffer.flush()
    assert buffer.push("Again, as they say, ") == ["Again, as they say,"]


IDLE_TABLE = [
    pytest.param("one two three four five", ["one two three four"], id="complete-words-released"),
    pytest.param("one two three ", [], id="too-few-words-wait"),
    pytest.param("one two three four ", ["one two three four"], id="exactly-idle-words"),
]


@pytest.mark.parametrize("text, expected", IDLE_TABLE)
def test_idle_releases_the_first_segment_of_a_quiet_turn(text, expected):
    """idle() releases the complete words of an unstarted turn once there are idle_words of them."""
    buffer = TextBuffer(BufferRules(idle_words=4))
    buffer.push(text)
    assert buffer.waiting_for_start
    assert buffer.idle() == expected


def test_idle_does_nothing_once_the_turn_started():
    """After the first segment of a turn, idle() never cuts mid-sentence."""
    buffer = TextBuffer()
    assert buffer.push("Well, you see, I think that we should ") == ["Well, you see,"]
    assert not buffer.waiting_for_start
    assert buffer.idle() == []
    assert buffer.flush() == ["I think that we should"]


def test_reset_drops_text_and_starts_a_new_turn():
    """reset() forgets buffered text; the next first segment starts early."""
    buffer = TextBuffer()
    assert buffer.push("Start. Hello, this will be") == ["Start."]
    buffer.reset()
    assert buffer.is_empty and buffer.pending_chars == 0
    assert buffer.push("Fresh start, three words, ") == ["Fresh start, three words,"]
    assert buffer.flush() == []


def test_whitespace_only_is_empty_and_never_a_segment():
    """Whitespace is buffered but never spoken as a segment."""
    buffer = TextBuffer()
    assert buffer.push("   \n ") == []
    assert buffer.is_empty
    assert buffer.flush() == []
