"""Rewrite an ONNX model's 1-D convolutions as 2-D convolutions of height one.

onnxruntime's CPU provider runs a 1-D ``Conv`` as im2col plus a matrix
product, but a 2-D one (at optimization level ``ORT_ENABLE_ALL``, on x86)
in its blocked NCHWc layout with direct convolution kernels. A Conv1d over
``[N, C, L]`` is exactly a Conv2d over ``[N, C, 1, L]`` with a ``1 x k``
kernel, so the rewrite changes the speed, not the arithmetic (up to
summation order):

* Piper's ``joe`` (132 convolutions, all of its decoder): one sentence takes
  1.28-1.32x less time on one intra-op thread, 1.04-1.14x on two (the
  tensors are converted into and out of the blocked layout around each
  convolution, 11% of the kernel time); the audio with the noise off
  differs by under 1e-4 of its peak (BENCHMARKS.md, issue 17).
* Hibari's model is not rewritten: it gained 7%, and its depthwise
  convolutions come out up to ~2% different in the blocked layout.

Each rewritten node becomes ``Unsqueeze(axis 2) -> Conv (4-D weight) ->
Squeeze(axis 2)``; names and shapes seen outside the node do not change.
"""
from __future__ import annotations

from typing import Any, Dict, List, Set

import numpy as np

__all__ = ["conv1d_as_conv2d"]

_AXIS = 2  # the height axis inserted: [N, C, L] -> [N, C, 1, L]


def conv1d_as_conv2d(model: Any) -> int:
    """Rewrite, in place, every ``Conv``/``ConvTranspose`` of ``model`` whose weight is a 3-D initializer.

    ``model`` is an ``onnx.ModelProto``; only the main graph is rewritten
    (nodes inside subgraphs are left alone). Returns how many nodes were
    rewritten.

    Raises:
        ImportError: the ``onnx`` package is missing.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    names: Set[str] = {name for node in graph.node for name in (*node.input, *node.output)}
    names.update(weights)

    def fresh(base: str) -> str:
        name, n = base, 0
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.add(name)
        return name

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    axes_input = opset >= 13  # Unsqueeze/Squeeze take their axes as an input from opset 13 on
    axes = fresh("conv1d_as_conv2d_axes")  # the initializer holding [_AXIS], added if used

    def reshape(op: str, inputs: List[str], output: str, node_name: str) -> Any:
        if axes_input:
            return helper.make_node(op, [*inputs, axes], [output], name=fresh(node_name))
        return helper.make_node(op, inputs, [output], name=fresh(node_name), axes=[_AXIS])

    planar: Dict[str, str] = {}  # 3-D weight name -> its 4-D copy
    nodes: List[Any] = []
    rewritten = 0
    for node in graph.node:
        weight = node.input[1] if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 else ""
        if weight not in weights or len(weights[weight].dims) != 3:
            nodes.append(node)
            continue
        if weight not in planar:
            array = numpy_helper.to_array(weights[weight])
            planar[weight] = fresh(f"{weight}_2d")
            graph.initializer.append(numpy_helper.from_array(array[:, :, np.newaxis, :], planar[weight]))
        base = node.name or node.output[0]
        wide_in, wide_out = fresh(f"{base}_2d_in"), fresh(f"{base}_2d_out")
        conv = helper.make_node(node.op_type, [wide_in, planar[weight], *node.input[2:]], [wide_out],
                                name=node.name, **{a.name: _planar_attribute(a.name, helper.get_attribute_value(a))
                                                   for a in node.attribute})
        nodes += [reshape("Unsqueeze", [node.input[0]], wide_in, f"{base}_unsqueeze"), conv,
                  reshape("Squeeze", [wide_out], node.output[0], f"{base}_squeeze")]
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    still_used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name in planar and init.name not in still_used]
    for init in unused:
        graph.initializer.remove(init)
    if rewritten and axes_input:
        graph.initializer.append(numpy_helper.from_array(np.array([_AXIS], np.int64), axes))
    return rewritten


def _planar_attribute(name: str, value: Any) -> Any:
    """A 1-D convolution attribute's value for the same convolution in 2-D (height 1)."""
    if name in ("kernel_shape", "strides", "dilations", "output_shape"):
        return [1, *value]
    if name == "pads":  # [begin, end] -> [top, left, bottom, right]
        return [0, value[0], 0, value[1]]
    if name == "output_padding":
        return [0, *value]
    return value  # group, auto_pad (height 1 needs no padding either way)
