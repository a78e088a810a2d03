"""What a session yields is what lmnt_sync's message types say, on both wires, against the real server.

The TypedDicts in lmnt_sync/messages.py are read at run time (keys, required keys, value types)
and every message of real sessions is checked against the one its "type" names: a message
with a key the types do not declare, or a value of another type, fails here.
"""
import typing

import lmnt_sync
from lmnt_sync import messages

KINDS = {
    "audio": messages.AudioMessage,
    "timestamps": messages.TimestampsMessage,
    "flush_complete": messages.FlushCompleteMessage,
    "reset_complete": messages.ResetCompleteMessage,
}


def conforms(value, annotation, where):
    """Assert that ``value`` is of the type ``annotation`` (the types messages.py uses)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        assert value in typing.get_args(annotation), f"{where}: {value!r} is not one of {typing.get_args(annotation)}"
    elif origin is list:
        assert isinstance(value, list), f"{where}: {type(value).__name__}, not a list"
        (item,) = typing.get_args(annotation)
        for index, element in enumerate(value):
            conforms(element, item, f"{where}[{index}]")
    elif typing.is_typeddict(annotation):
        assert isinstance(value, dict), f"{where}: {type(value).__name__}, not a dict"
        hints = typing.get_type_hints(annotation)
        assert set(value) <= set(hints), f"{where}: undeclared keys {sorted(set(value) - set(hints))}"
        missing = annotation.__required_keys__ - set(value)
        assert not missing, f"{where}: required keys missing {sorted(missing)}"
        for key, item in value.items():
            conforms(item, hints[key], f"{where}[{key!r}]")
    elif annotation is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: {value!r} is not a number"
    else:
        assert isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)), (
            f"{where}: {value!r} is not {annotation.__name__}"
        )


def check_all(received):
    """Check every message; return the kinds seen."""
    for index, message in enumerate(received):
        kind = message.get("type")
        assert kind in KINDS, f"message {index} has an undeclared type {kind!r}"
        conforms(message, KINDS[kind], f"message {index}")
    return {message["type"] for message in received}


def test_current_wire_messages_are_the_declared_types(speech):
    """Audio, timestamps, flush_complete and reset_complete, as the types describe them."""
    with speech.synthesize_streaming("lily", format="pcm_s16le", return_extras=True) as conn:
        conn.append_text("Hello there, typed world. ")
        conn.flush()
        received = [conn.recv(timeout=30)]
        while received[-1]["type"] != "flush_complete":  # read it before the reset drops what is queued
            received.append(conn.recv(timeout=30))
        conn.append_text("This part is dropped by a reset ")
        conn.reset(wait=True)
        conn.append_text("And a last sentence.")
        conn.finish()
        received.extend(conn)
    assert check_all(received) == set(KINDS)
    words = [word for message in received if message["type"] == "timestamps" for word in message["timestamps"]]
    assert [word["text"] for word in words][:4] == ["Hello", "there,", "typed", "world."]


def test_legacy_wire_messages_are_the_declared_types(speech):
    """Legacy audio messages carry durations and buffer_empty, both declared."""
    with speech.synthesize_streaming("lily", protocol="legacy", format="raw", return_extras=True) as conn:
        conn.append_text("Hello legacy world.")
        conn.finish()
        received = list(conn)
    assert check_all(received) == {"audio"}
    assert any("durations" in message and "buffer_empty" in message for message in received)


def test_without_extras_only_audio(speech):
    """Without return_extras a session yields audio messages only."""
    with speech.synthesize_streaming("lily", format="mp3") as conn:
        conn.append_text("Just audio.")
        conn.finish()
        assert check_all(list(conn)) == {"audio"}


def test_the_types_are_public():
    """The message types are importable from lmnt_sync itself."""
    for name in ("Message", "AudioMessage", "TimestampsMessage", "FlushCompleteMessage", "ResetCompleteMessage",
                 "WordTiming"):
        assert getattr(lmnt_sync, name) is getattr(messages, name)
        assert name in lmnt_sync.__all__
