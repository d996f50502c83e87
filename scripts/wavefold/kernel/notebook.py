"""wavefold's inference notebook for a Kaggle code competition: the final ensemble on the hidden test audio.

This file is the notebook's code (``kernel-metadata.json``'s ``code_file``), copied as it is by
``rule package``. It imports nothing of wavefold: the standard library, what Kaggle's Python image
has (numpy, pandas, soundfile, soxr), ``portable/`` from the attached Dataset (the arithmetic the
workflow itself runs: :mod:`wavefold.kernel.portable`), and onnxruntime, which it installs from the
wheels in the Dataset when the image lacks it (no internet). Everything else is data in the Dataset:
``recipe.json`` (labels, audio policy, TTA shifts, the members and their ONNX fold models, the blend,
the submission format) and ``models/*.onnx``.

It does what the workflow's rules do, in their order: decode each test clip as the audio cache does
(an unreadable clip is silence), make each member's input (the waveform, or its power spectrum with
numpy's FFT, once for all the members that share it), predict with every fold model of every member
(probabilities of the submission's labels, the mean over folds, TTA shifts and a clip's windows), blend as the
final round's blend did (EM and label-mix matching use the test set itself: here the hidden one),
and write ``submission.csv``. Its last line of output is a JSON summary of its time (rule rehearse
reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: What the notebook installs from the Dataset's wheels when Kaggle's image lacks it.
RUNTIME_PACKAGE = "onnxruntime"
#: The Dataset's files the notebook reads.
RECIPE, PORTABLE, WHEELS = "recipe.json", "portable", "wheels"


def ensure_runtime(dataset: Path, package: str = RUNTIME_PACKAGE) -> None:
    """``package`` (onnxruntime), installed from the Dataset's wheels when Kaggle's image lacks it: pip
    with --no-index, so nothing is looked for on the internet."""
    try:
        __import__(package)
        return
    except ImportError:
        pass
    wheels = dataset / WHEELS
    print(f"installing {package} from {wheels} (no internet)", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "--quiet",
                    package], check=True)  # fmt: skip
    __import__(package)


class Member:
    """One model of the blend: its fold models as ONNX sessions (the member's ``input`` in — a
    waveform or its power spectrum —, the submission labels' probabilities out)."""

    def __init__(self, dataset: Path, spec: dict, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.name, self.input = spec["name"], spec["input"]
        self.sessions = [ort.InferenceSession(str(dataset / path), options, providers=["CPUExecutionProvider"])
                         for path in spec["folds"]]  # fmt: skip

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(rows, labels): the mean over fold models."""
        return sum(session.run(None, {self.input["kind"]: x})[0] for session in self.sessions) / len(self.sessions)


def predict_members(members: list[Member], paths: list[Path], recipe: dict, audio, spectrum,
                    report=print) -> np.ndarray:  # fmt: skip
    """(members, clips, labels): every member's probabilities of every test clip, the mean over TTA
    shifts and over a clip's windows; the clips are read a batch at a time (the test set never stays
    in memory), and a spectrum is made once a batch and shift for all the members that take it."""
    out = np.zeros((len(members), len(paths), len(recipe["labels"])))
    started, batch, shifts = time.perf_counter(), recipe["batch_clips"], recipe["tta_shifts"]
    for begin in range(0, len(paths), batch):
        rows = [audio.clip_rows(path, recipe["audio"]) for path in paths[begin : begin + batch]]
        owner = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        wave = np.concatenate(rows).astype(np.float32) / np.float32(32768.0)
        counts = np.bincount(owner, minlength=len(rows))[:, None]
        per_row = np.zeros((len(members), len(wave), out.shape[2]))
        for shift in shifts:
            inputs = spectrum.inputs_of(audio.shifted(wave, shift), [member.input for member in members])
            for m, (member, x) in enumerate(zip(members, inputs)):
                per_row[m] += member.probabilities(x) / len(shifts)
        for m in range(len(members)):
            sums = np.zeros((len(rows), out.shape[2]))
            np.add.at(sums, owner, per_row[m])
            out[m, begin : begin + len(rows)] = sums / counts
        done = begin + len(rows)
        report(f"{done}/{len(paths)} clips, {(time.perf_counter() - started) / done * 1000:.1f} ms a clip")
    return out


def find_dataset(inputs: Path) -> Path:
    """The attached Dataset: the folder under /kaggle/input holding recipe.json."""
    found = sorted(inputs.glob(f"*/{RECIPE}")) + sorted(inputs.glob(f"*/*/{RECIPE}"))
    if not found:
        raise SystemExit(f"no {RECIPE} under {inputs}: attach the wavefold Dataset to the notebook (dataset_sources)")
    return found[0].parent


def test_files(competition_root: Path, recipe: dict) -> list[Path]:
    folder = competition_root / recipe["test_folder"]
    suffix = recipe["audio_suffix"]
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == suffix) if folder.is_dir() else []


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="/kaggle/input", help="where Kaggle mounts the competition and the Dataset")
    parser.add_argument("--output", default="/kaggle/working/submission.csv")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args, _ = parser.parse_known_args(argv)  # a notebook's kernel passes arguments of its own
    inputs = Path(args.inputs)
    dataset = find_dataset(inputs)
    recipe = json.loads((dataset / RECIPE).read_text())
    sys.path.insert(0, str(dataset))
    import pandas as pd
    from portable import audio, blend, spectrum, submission

    ensure_runtime(dataset)
    competition_root = inputs / recipe["competition"]
    paths = test_files(competition_root, recipe)
    print(f"{len(paths)} test clips under {competition_root / recipe['test_folder']}; "
          f"{len(recipe['members'])} models; {args.threads} threads", flush=True)  # fmt: skip
    started, cpu_started = time.perf_counter(), time.process_time()  # the models' loading counts too
    members = [Member(dataset, spec, args.threads) for spec in recipe["members"]]
    P = predict_members(members, paths, recipe, audio, spectrum, lambda line: print(line, flush=True))
    probabilities = blend.apply_blend(recipe["blend"], P)
    ids = [path.name for path in paths]
    table = pd.DataFrame(submission.submission_rows(ids, probabilities, recipe["labels"], recipe["submission"]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"clips": len(paths), "threads": args.threads, "seconds": round(seconds, 3),
                      "cpu_seconds": round(cpu_seconds, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
