"""Piper's model cut into stages, so that one sentence can use several cores.

A Piper voice is a VITS model, and its graph computes a sentence in three
stages, one after the other:

1. the text encoder and the duration predictor, over phonemes. Its
   self-attention lets every phoneme see every other one, so this stage
   runs in one piece;
2. the flow, over frames (256 samples each);
3. the HiFi-GAN decoder, from frames to samples.

Stages 2 and 3 are convolutions and operations sample by sample along
time, nothing else: each output frame depends only on the input frames
within a fixed reach (:data:`FLOW_REACH`, :data:`DECODER_REACH`). So a
sentence's frames can be cut into overlapping parts that run at the same
time, each on its own thread with one intra-op thread, and the parts'
outputs, trimmed of the overlap, join into exactly what the one-piece run
gives (``tests/test_piper_stages.py`` checks the samples and the reaches).

Why parts rather than more intra-op threads: onnxruntime's two-thread run
of this model is only 1.04-1.14x faster than its one-thread run (it
converts tensors into and out of its blocked layout around every
convolution, see ``conv1d_rewrite.py``), while two parts keep both cores on
one-thread kernels. Measured on this 2-core machine, one ~3 s sentence
alone: 0.80-0.83x the time of piper's own two-thread session in-process
(1.2x with our two-thread session); over REST, 0.89x the time piper's own
HTTP server takes (1.03x with our two-thread session; BENCHMARKS.md).

The stages are found through the scopes ``/flow/`` and ``/dec/`` that the
PyTorch export gives node names (VITS's module names); a model without
them is refused.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

__all__ = ["StagedModel", "PartedSession", "FLOW_REACH", "DECODER_REACH"]

#: Frames on each side of an output frame that the flow reads: 4 coupling
#: layers, each a WaveNet of 4 convolutions of kernel 5 (2 frames each side).
FLOW_REACH = 32

#: Frames on each side that the decoder reads, rounded up from the sum of
#: its convolutions' radii at their sample rates (~13.4 frames; its
#: 7-frame first convolution and its resblocks at 8 samples per frame
#: account for most of it).
DECODER_REACH = 16

#: A stage is cut only into parts of at least this many reaches of frames:
#: shorter parts would be mostly overlap and gain nothing.
MIN_PART_REACHES = 3


class StagedModel:
    """Piper's ONNX model as three one-thread onnxruntime sessions, one per stage.

    ``make_session(model)`` turns an ``onnx.ModelProto`` into an onnxruntime
    session (the caller chooses its options). :meth:`run` is thread-safe.
    The stages' sessions are ``encoder``, ``flow`` and ``decoder``; the
    tensors between them ``flow_inputs`` and ``decoder_inputs`` (time on
    their last axis). ``splits`` counts the runs by the most parts a run
    was cut into.

    Raises:
        ValueError: the model has no ``/flow/`` or ``/dec/`` scope.
    """

    def __init__(self, model: Any, make_session: Callable[[Any], Any]) -> None:
        from onnx.utils import Extractor

        inputs = [i.name for i in model.graph.input]
        self._audio, *self._extras = [o.name for o in model.graph.output]
        self.flow_inputs = _scope_inputs(model, "/flow/")
        self.decoder_inputs = _scope_inputs(model, "/dec/")
        extractor = Extractor(model)
        self.encoder = make_session(extractor.extract_model(inputs, self.flow_inputs + self._extras))
        self.flow = make_session(extractor.extract_model(self.flow_inputs, self.decoder_inputs))
        self.decoder = make_session(extractor.extract_model(self.decoder_inputs, [self._audio]))
        self._lock = threading.Lock()
        self.splits: Counter[int] = Counter()

    def run(self, feed: Dict[str, np.ndarray], parts: int = 1) -> List[np.ndarray]:
        """Return the model's outputs for ``feed``, the audio first.

        The flow and the decoder run in up to ``parts`` parts at once: this
        thread runs the first, a helper thread each other one. Blocks until
        every part is done. Raises what onnxruntime raises (from whichever
        part failed first).
        """
        encoded = dict(zip(self.flow_inputs + self._extras, self.encoder.run(None, feed)))
        flow_feed = {name: encoded[name] for name in self.flow_inputs}
        flow_parts = _part_count(flow_feed, FLOW_REACH, parts)
        latent = _run_in_parts(self.flow, flow_feed, FLOW_REACH, flow_parts)
        decoder_feed = dict(zip(self.decoder_inputs, [latent]))
        decoder_parts = _part_count(decoder_feed, DECODER_REACH, parts)
        audio = _run_in_parts(self.decoder, decoder_feed, DECODER_REACH, decoder_parts)
        with self._lock:
            self.splits[max(flow_parts, decoder_parts)] += 1
        return [audio] + [encoded[name] for name in self._extras]


class PartedSession:
    """What a ``piper.PiperVoice`` takes as its ``session``: the staged model in ``parts`` parts."""

    def __init__(self, model: StagedModel, parts: int) -> None:
        if parts < 1:
            raise ValueError(f"parts must be at least 1, not {parts!r}")
        self.model = model
        self.parts = parts

    def run(self, output_names: Any, feed: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """Every output of the model, as ``InferenceSession.run(None, feed)`` returns; blocks.

        Raises:
            ValueError: ``output_names`` is not None (only all outputs are offered).
        """
        if output_names is not None:
            raise ValueError(f"a parted session returns every output; output_names must be None, "
                             f"not {output_names!r}")
        return self.model.run(feed, self.parts)


def _scope_inputs(model: Any, scope: str) -> List[str]:
    """Tensors computed before the stage whose nodes are named ``scope...``, that those nodes read.

    The stage's nodes are not all named (TorchScript helpers inside the
    flow's WaveNets are not), so "before the stage" means not computed from
    any output of a named node of the scope; constants do not count.
    """
    inside = [node for node in model.graph.node if node.name.startswith(scope)]
    if not inside:
        raise ValueError(f"the model has no {scope!r} scope: it is not a Piper (VITS) voice")
    after = {name for node in inside for name in node.output}
    for node in model.graph.node:  # in topological order, as ONNX requires
        if any(name in after for name in node.input):
            after.update(node.output)
    computed = {name for node in model.graph.node if node.op_type != "Constant" for name in node.output}
    computed.update(i.name for i in model.graph.input)
    names: List[str] = []
    for node in inside:
        for name in node.input:
            if name in computed and name not in after and name not in names:
                names.append(name)
    return names


def _frames(feed: Dict[str, np.ndarray]) -> int:
    return int(next(iter(feed.values())).shape[-1])


def _part_count(feed: Dict[str, np.ndarray], reach: int, parts: int) -> int:
    return max(1, min(parts, _frames(feed) // (MIN_PART_REACHES * reach)))


def _run_in_parts(session: Any, feed: Dict[str, np.ndarray], reach: int, parts: int) -> np.ndarray:
    """Run ``session`` on ``feed`` (time on the last axis) in ``parts`` overlapping parts; join its output."""
    if parts == 1:
        return np.asarray(session.run(None, feed)[0])
    frames = _frames(feed)
    bounds = [frames * i // parts for i in range(parts + 1)]
    spans = [(max(0, start - reach), min(frames, end + reach)) for start, end in zip(bounds, bounds[1:])]

    def part(span: Sequence[int]) -> Callable[[], np.ndarray]:
        first, last = span
        sliced = {name: np.ascontiguousarray(value[..., first:last]) for name, value in feed.items()}
        return lambda: np.asarray(session.run(None, sliced)[0])

    outputs = _all_at_once([part(span) for span in spans])
    joined = []
    for (start, end), (first, last), output in zip(zip(bounds, bounds[1:]), spans, outputs):
        scale = output.shape[-1] // (last - first)  # output samples per input frame: 1 or the hop
        joined.append(output[..., (start - first) * scale:(end - first) * scale])
    return np.concatenate(joined, axis=-1)


def _all_at_once(jobs: List[Callable[[], np.ndarray]]) -> List[np.ndarray]:
    """Run ``jobs[0]`` in this thread and each other job in a helper thread; return results in order.

    Every helper is joined before this returns or raises (a part is at most
    one stage of one sentence); the first job's error, else the first
    helper's, is raised.
    """
    results: List[Any] = [None] * len(jobs)
    errors: List[BaseException] = []

    def helper(index: int) -> None:
        try:
            results[index] = jobs[index]()
        except BaseException as error:  # handed to the caller, raised there
            errors.append(error)

    started: List[threading.Thread] = []
    try:
        for index in range(1, len(jobs)):
            thread = threading.Thread(target=helper, args=(index,), name="lmnt-sync-piper-part")
            thread.start()  # may raise (no more threads): those started are still joined
            started.append(thread)
        results[0] = jobs[0]()
    finally:
        for thread in started:
            thread.join()
    if errors:
        raise errors[0]
    return results
