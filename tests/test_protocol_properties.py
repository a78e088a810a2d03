"""Property tests: the client's protocol decoder never raises on any server input."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lmnt_sync import protocol as p

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
typed_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["ready", "timestamps", "flush_complete", "reset_complete", "error", "audio", "other"])},
    optional={"nonce": json_values, "timestamps": json_values, "error": json_values, "request_id": json_values},
)
legacy_messages = st.fixed_dictionaries(
    {}, optional={"durations": json_values, "buffer_empty": json_values, "error": json_values, "warning": json_values}
)
frames = st.one_of(
    st.text(max_size=200).map(lambda t: ("text", t)),
    st.binary(max_size=64).map(lambda b: ("binary", b)),
    json_values.map(lambda v: ("text", json.dumps(v))),
    typed_messages.map(lambda v: ("text", json.dumps(v))),
    legacy_messages.map(lambda v: ("text", json.dumps(v))),
)


def feed(proto, sequence):
    events = []
    for kind, data in sequence:
        events += proto.receive_text(data) if kind == "text" else proto.receive_binary(data)
    return events


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([p.CURRENT, p.LEGACY]), st.booleans(), st.lists(frames, max_size=12))
def test_decoder_never_raises_and_only_returns_events(generation, extras, sequence):
    """Any sequence of frames decodes to events; a Violation always leaves the state FAILED."""
    proto = p.ClientProtocol(generation, extras)
    events = feed(proto, sequence)
    allowed = (p.Ready, p.Audio, p.Timestamps, p.FlushComplete, p.ResetComplete, p.ServerError, p.Violation)
    assert all(isinstance(event, allowed) for event in events)
    if any(isinstance(event, p.Violation) for event in events):
        assert proto.state == "FAILED"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ts", "audio", "flush"]), st.integers(0, 5)), max_size=20))
def test_well_formed_current_streams_never_violate(steps):
    """Any well-formed sequence of typed messages after ready decodes without a Violation."""
    proto = p.ClientProtocol(p.CURRENT, True)
    sequence = [("text", '{"type": "ready", "request_id": "r"}')]
    for kind, n in steps:
        if kind == "ts":
            stamps = [{"text": "w", "start": n, "duration": 0.1}]
            sequence.append(("text", json.dumps({"type": "timestamps", "timestamps": stamps})))
        elif kind == "audio":
            sequence.append(("binary", bytes(n)))
        else:
            sequence.append(("text", json.dumps({"type": "flush_complete", "nonce": n})))
    assert not any(isinstance(event, p.Violation) for event in feed(proto, sequence))
