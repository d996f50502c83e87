"""Fold models as ONNX graphs for the notebook: float waveforms in, the submission labels' probabilities out.

The whole model is in the graph — the front end (STFT, mel or MFCC, PCEN, per-clip normalisation),
the network, the softmax (or a multi-label model's sigmoids) and the folding of a finer label space
into the submission's labels — so the notebook needs no feature code of its own, and what it runs is
what trained. ``torch.onnx.export`` with the dynamo exporter (torch's supported path), the batch
dimension dynamic. Each graph is checked against torch on cached test clips and timed beside it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..training import classifier

log = logging.getLogger(__name__)

#: Largest difference of a probability between the ONNX graph and torch that the export accepts.
TOLERANCE = 1e-4
#: The opset: ONNX's STFT operator (the front end) needs 17 or later.
OPSET = 18


class ExportError(RuntimeError):
    """A model that cannot go into the notebook as it is; the message names it and the fix."""


class Probabilities(nn.Module):
    """A trained classifier as the notebook runs it: (batch, samples) float waveforms in [-1, 1) ->
    (batch, labels) probabilities of the submission's labels."""

    def __init__(self, model: classifier.Classifier, fold_matrix: np.ndarray):
        super().__init__()
        self.model = model
        self.register_buffer("fold", torch.as_tensor(fold_matrix, dtype=torch.float32))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        logits = self.model(wave)
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
    return Probabilities(model, fold_matrix(space)).eval(), {"architecture": settings.architecture}


def to_onnx(module: Probabilities, example: torch.Tensor, path: Path) -> None:
    """``module`` as an ONNX graph at ``path``, its batch dimension dynamic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    quiet = io.StringIO()  # the exporter prints its progress; the rule's log says what matters
    with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        batch = torch.export.Dim("batch", min=1, max=4096)
        try:
            torch.onnx.export(module, (example,), str(path), dynamo=True, opset_version=OPSET, input_names=["wave"],
                              output_names=["probabilities"], dynamic_shapes=({0: batch},), external_data=False)  # fmt: skip
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
    """The graph's probabilities against torch's on ``clips`` (int16 cache rows), and both timed on
    the CPU with ``threads`` threads (the notebook's runtime and the workflow's). The torch side is the
    model as the workflow predicts with it (its front end not in the exportable form)."""
    wave = clips.astype(np.float32) / np.float32(32768.0)
    graph = session(path, threads)

    def run_onnx(x):
        return graph.run(None, {"wave": x})[0]

    def run_torch(x):
        return module(torch.from_numpy(x)).numpy()

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
