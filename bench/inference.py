#!/usr/bin/env python
"""The notebook's model time per clip: torch, onnxruntime and OpenVINO side by side, same clips, same threads.

Reads a finished run's export (results/kernel/export.csv and models/*.onnx: run the workflow with
submit.kind: notebook first) and its cached test clips, and times the final ensemble — every fold
model of every member, over the TTA shifts — on the first --clips test clips with each runtime:
  torch        the workflow's own model (classifier.load), as predict_test runs it on a CPU
  onnxruntime  the exported graphs, as the notebook runs them (the package's default runtime): fed
               by numpy's power spectrum, made once a batch and shift for all the graphs that share it
               (its time counts once, in this row and the next)
  openvino     the same graphs compiled by OpenVINO (pip install openvino; its ONNX reader wants a
               static batch, so each graph is exported again at --batch)
Each runtime's probabilities are compared with torch's (max difference), and its time is given as a
ratio to torch's measured in the same run. Model loading is not timed; clip decoding is the same for
all and left out.

    .venv/bin/python bench/inference.py --workdir <run> [--clips 512] [--threads 4] [--batch 32]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from wavefold import competitions  # noqa: E402
from wavefold.cache import RowReader  # noqa: E402
from wavefold.kernel import export  # noqa: E402


def timed(run, batches: list[list[np.ndarray]]) -> tuple[np.ndarray, float]:
    """(probabilities averaged over the shifts, seconds) of ``run`` over ``batches`` (each batch's input
    at every TTA shift)."""
    run(batches[0][0])  # warm-up
    out, started = [], time.perf_counter()
    for shifted_inputs in batches:
        out.append(sum(run(x) for x in shifted_inputs) / len(shifted_inputs))
    return np.concatenate(out), time.perf_counter() - started


def graph_inputs(kind: dict, waves: list[list[np.ndarray]]) -> tuple[list[list[np.ndarray]], float]:
    """A graph's inputs for every batch and shift (the waveform, or its numpy power spectrum), and the
    seconds that took: the notebook makes each once for all the graphs that take it."""
    from wavefold.kernel.portable.spectrum import inputs_of

    started = time.perf_counter()
    made = [[inputs_of(x, [kind])[0] for x in shifted] for shifted in waves]
    return made, (time.perf_counter() - started) if kind["kind"] != "wave" else 0.0


def openvino_runner(module, scratch: Path, name: str, batch: int, threads: int, samples: int):
    """The graph exported again (into ``scratch``, not the run's folder) at a static batch of ``batch``
    (OpenVINO's ONNX reader wants static shapes), compiled for the CPU; a last short batch is padded."""
    import openvino

    static = scratch / f"{name}.batch{batch}.onnx"
    example = torch.from_numpy(module.input_of(np.zeros((batch, samples), np.float32)))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(static), dynamo=True, opset_version=export.OPSET,
                          input_names=[module.input["kind"]], output_names=["probabilities"])  # fmt: skip
    compiled = openvino.Core().compile_model(str(static), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                 "INFERENCE_PRECISION_HINT": "f32"})

    def run(x):
        padded = np.pad(x, ((0, batch - len(x)),) + ((0, 0),) * (x.ndim - 1)) if len(x) < batch else x
        return compiled(padded)[0][: len(x)]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runtimes", nargs="*", default=["torch", "onnxruntime", "openvino"])
    parser.add_argument("--fold-models", type=int, default=None, help="only the first N fold models (a smoke test)")
    args = parser.parse_args()
    results = args.workdir / "results"
    table_path = results / "kernel/export.csv"
    if not table_path.is_file():
        sys.exit(f"{table_path} is missing: run the workflow with submit.kind: notebook in {args.workdir} first")
    exported = pd.read_csv(table_path).head(args.fold_models)
    recipe = pd.read_json(results / "kernel/dataset/recipe.json", typ="series")
    competition = competitions.get(recipe["competition"])
    reader = RowReader(results / "cache/test.npy")
    wave = np.asarray(reader[np.arange(min(args.clips, len(reader)))]).astype(np.float32) / np.float32(32768)
    shifts = recipe["tta_shifts"]
    torch.set_num_threads(args.threads)
    totals = {name: 0.0 for name in args.runtimes}
    worst = {name: 0.0 for name in args.runtimes}
    skipped = {}
    scratch = Path(tempfile.mkdtemp(prefix="wavefold-bench-"))
    from wavefold.kernel.portable.audio import shifted

    waves = [[shifted(wave[b : b + args.batch], s) for s in shifts] for b in range(0, len(wave), args.batch)]
    made: dict[str, tuple[list, float]] = {}  # a graph input -> its batches and the seconds to make them, once
    for row in exported.itertuples():
        model_file = results / f"train/round{row.round}/{row.model}/fold{row.fold}/model.pt"
        module, _ = export.load_for_export(model_file, competition)
        module.model.front.exportable = False  # torch as the workflow runs it
        reference = None
        if module.input_json not in made:
            made[module.input_json] = graph_inputs(module.input, waves)
        inputs = made[module.input_json][0]
        for name in args.runtimes:
            if name in skipped:
                continue
            if name == "torch":
                def run(x):
                    with torch.no_grad():
                        return module.from_wave(torch.from_numpy(x)).numpy()
            elif name == "onnxruntime":
                session = export.session(results / "kernel/models" / row.file, args.threads)

                def run(x, session=session, kind=module.input["kind"]):
                    return session.run(None, {kind: x})[0]
            else:
                try:
                    module.model.front.exportable = True
                    run = openvino_runner(module, scratch, Path(row.file).stem, args.batch, args.threads,
                                          wave.shape[1])  # fmt: skip
                except Exception as error:  # noqa: BLE001 - reported in the table
                    skipped[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
                    continue
                finally:
                    module.model.front.exportable = False
            probabilities, seconds = timed(run, waves if name == "torch" else inputs)
            reference = probabilities if reference is None else reference
            totals[name] += seconds
            worst[name] = max(worst[name], float(np.abs(probabilities - reference).max()))
    shutil.rmtree(scratch, ignore_errors=True)
    spectra = sum(seconds for _, seconds in made.values())  # the exported graphs' inputs, made once
    for name in totals:
        totals[name] += spectra if name != "torch" else 0.0
    base = totals.get("torch") or next(iter(totals.values()))
    rows = [{"runtime": name, "ms per clip": 1000 * totals[name] / len(wave), "x torch": totals[name] / base,
             "max difference": worst[name]} for name in args.runtimes if name not in skipped]  # fmt: skip
    print(f"the final ensemble ({len(exported)} fold models, TTA shifts {list(shifts)}) on {len(wave)} cached test "
          f"clips, {args.threads} threads, batches of {args.batch}")  # fmt: skip
    print(pd.DataFrame(rows).set_index("runtime").to_string(
        formatters={"ms per clip": "{:.2f}".format, "x torch": "{:.2f}".format, "max difference": "{:.1e}".format}))
    print(f"of which numpy's power spectra, made once a batch for the graphs that share them: "
          f"{1000 * spectra / len(wave):.2f} ms per clip ({len([k for k in made if 'power' in k])} kinds)")
    for name, why in skipped.items():
        print(f"{name}: not measured ({why})")
    measured = [r for r in rows if r["runtime"] != "torch"]
    if measured:
        fastest = min(measured, key=lambda r: r["ms per clip"])
        print(f"fastest runtime for the notebook: {fastest['runtime']}")


if __name__ == "__main__":
    main()
