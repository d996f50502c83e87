"""Fold models as ONNX graphs for the notebook: the submission labels' probabilities out.

A graph holds the model from where numpy takes over poorly: a spectral model's graph starts from the
power spectrum (:mod:`.portable.spectrum` computes it with an FFT, once for all the graphs that share
it: onnxruntime's STFT operator was half of each graph's time) and holds the rest of the front end
(mel bands, MFCC, PCEN, per-clip normalisation), the network, the softmax (or a multi-label model's
sigmoids) and the folding of a finer label space into the submission's labels; a waveform model's
graph starts from the waveform. So the notebook needs no feature code but the FFT, and what it runs
is what trained. ``torch.onnx.export`` with the dynamo exporter (torch's supported path), the batch
dimension dynamic. Each graph, fed by the numpy spectrum, is checked against the whole torch model
(its own STFT included) on cached test clips, and timed beside it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..training import classifier
from .portable.spectrum import inputs_of

log = logging.getLogger(__name__)

#: Largest difference of a probability between the ONNX graph and torch that the export accepts.
TOLERANCE = 1e-4
#: The opset: torch's dynamo exporter's own (18).
OPSET = 18


class ExportError(RuntimeError):
    """A model that cannot go into the notebook as it is; the message names it and the fix."""


class Probabilities(nn.Module):
    """A trained classifier as the notebook runs it: its graph's input (:attr:`input`: a spectral
    model's power spectrum, (batch, n_fft // 2 + 1, frames), or a waveform model's (batch, samples)
    float waveform in [-1, 1)) -> (batch, labels) probabilities of the submission's labels."""

    def __init__(self, model: classifier.Classifier, fold_matrix: np.ndarray):
        super().__init__()
        self.model = model
        self.register_buffer("fold", torch.as_tensor(fold_matrix, dtype=torch.float32))
        spectrum = model.front.spectrum
        #: The recipe's ``input`` of this model's graphs (what portable.spectrum.inputs_of makes).
        self.input = {"kind": "power", **spectrum} if spectrum else {"kind": "wave"}
        self.input_json = json.dumps(self.input, sort_keys=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        front = self.model.front
        return self._labels(self.model.net(front.from_power(x) if self.input["kind"] == "power" else front(x)))

    def from_wave(self, wave: torch.Tensor) -> torch.Tensor:
        """The same probabilities from waveforms, the whole model in torch (its own STFT): the reference."""
        return self._labels(self.model(wave))

    def input_of(self, wave: np.ndarray) -> np.ndarray:
        """The graph's input for (batch, samples) float32 waveforms, made as the notebook makes it."""
        return inputs_of(wave, [self.input])[0]

    def _labels(self, logits: torch.Tensor) -> torch.Tensor:
        probabilities = torch.sigmoid(logits) if self.model.multi_label else torch.softmax(logits, dim=1)
        return probabilities @ self.fold


def fold_matrix(space) -> np.ndarray:
    """(classes, labels): 1 where a class is scored as a label (:meth:`LabelSpace.fold` as a matrix)."""
    return space.fold(np.eye(len(space.class_labels)))


def load_for_export(model_path: Path, competition) -> tuple[Probabilities, dict]:
    """A fold model on the CPU, in eval mode, its front end in its exportable form; and its settings."""
    model, label_space, settings = classifier.load(model_path, torch.device("cpu"))
    if settings.adapt_batch_norm:
        raise ExportError(
            f"{model_path}: trained with adapt_batch_norm, which re-estimates BatchNorm statistics on the test "
            "audio at prediction time; an ONNX graph in a notebook cannot. Turn training.adapt_batch_norm off "
            "for the models of a code competition (or for this model: training.models.<name>.adapt_batch_norm)"
        )
    model.eval()
    model.front.exportable = True
    space = competition.label_space_of(label_space)
    module = Probabilities(model, fold_matrix(space)).eval()
    return module, {"architecture": settings.architecture, "input": module.input_json}


def to_onnx(module: Probabilities, wave: np.ndarray, path: Path) -> None:
    """``module`` as an ONNX graph at ``path``, its batch dimension dynamic; ``wave``: example
    (batch, samples) float32 waveforms."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(module.input_of(wave))
    quiet = io.StringIO()  # the exporter prints its progress; the rule's log says what matters
    with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        batch = torch.export.Dim("batch", min=1, max=4096)
        try:
            torch.onnx.export(module, (example,), str(path), dynamo=True, opset_version=OPSET,
                              input_names=[module.input["kind"]], output_names=["probabilities"],
                              dynamic_shapes=({0: batch},), external_data=False)  # fmt: skip
        except Exception as error:
            raise ExportError(f"{path.name}: torch.onnx.export failed ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:300]})") from error  # fmt: skip


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class Check:
    """An exported graph against torch on the same clips."""

    max_difference: float
    onnx_ms_per_clip: float
    torch_ms_per_clip: float
    bytes: int


def _ms_per_clip(run, wave: np.ndarray, batch: int) -> float:
    run(wave[:batch])  # warm-up: the first call allocates
    started = time.perf_counter()
    for begin in range(0, len(wave), batch):
        run(wave[begin : begin + batch])
    return 1000 * (time.perf_counter() - started) / len(wave)


@torch.no_grad()
def check(module: Probabilities, path: Path, clips: np.ndarray, threads: int, batch: int = 64) -> Check:
    """The graph's probabilities, fed as the notebook feeds it (the numpy spectrum), against the whole
    torch model's on ``clips`` (int16 cache rows); both timed on the CPU with ``threads`` threads (the
    onnxruntime side with its input made, as in the notebook). The torch side is the model as the
    workflow predicts with it (its front end not in the exportable form)."""
    wave = clips.astype(np.float32) / np.float32(32768.0)
    graph = session(path, threads)

    def run_onnx(x):
        return graph.run(None, {module.input["kind"]: module.input_of(x)})[0]

    def run_torch(x):
        return module.from_wave(torch.from_numpy(x)).numpy()

    torch.set_num_threads(threads)
    module.model.front.exportable = False
    try:
        expected = np.concatenate([run_torch(wave[b : b + batch]) for b in range(0, len(wave), batch)])
        torch_ms = _ms_per_clip(run_torch, wave, batch)
    finally:
        module.model.front.exportable = True
    got = np.concatenate([run_onnx(wave[b : b + batch]) for b in range(0, len(wave), batch)])
    return Check(float(np.abs(got - expected).max()), _ms_per_clip(run_onnx, wave, batch), torch_ms,
                 path.stat().st_size)  # fmt: skip
