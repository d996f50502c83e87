"""wavefold's inference script for a Kaggle code competition: the final ensemble on the hidden test audio.

This file is the notebook's code (``kernel-metadata.json``'s ``code_file``), copied as it is by
``rule package``. It stands alone: it imports nothing of wavefold, only the standard library and
what Kaggle's Python image has (numpy, pandas, soundfile, soxr), and onnxruntime, which it
installs from the wheels in the Dataset when the image lacks it (no internet). Everything it needs
is data in the Dataset: ``recipe.json`` (labels, audio policy, TTA shifts, the members and their
ONNX fold models, the blend and the submission format) and ``models/*.onnx``.

It does what the workflow's rules do, in their order: decode each test clip as the audio cache does
(16-bit mono at the cache's rate, padded, trimmed to its loudest window or cut into windows; an
unreadable clip is silence), predict with every fold model of every member (probabilities of the
submission's labels, averaged over TTA shifts and a clip's windows, then over folds), blend as the
final round's blend did (temperatures, weights or stacker, EM prior correction, label-mix matching:
the last two use the test set itself, here the hidden one), and write ``submission.csv``.

The blend's arithmetic below is the workflow's own: ``wavefold.blend`` and ``wavefold.audio`` import
these functions from here, so the notebook cannot drift from the DAG (``rule rehearse`` checks the
rest, end to end, on the demo's test audio).
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

#: Probabilities are clipped to [EPS, 1 - EPS] before a logarithm.
EPS = 1e-7
#: What the script installs from the Dataset's wheels when Kaggle's image lacks it.
RUNTIME_PACKAGE = "onnxruntime"

# --------------------------------------------------------------------------- the blend's arithmetic


def normalise(p: np.ndarray) -> np.ndarray:
    return p / np.clip(p.sum(-1, keepdims=True), EPS, None)


def scale_temperature(p: np.ndarray, temperature: float, logs: bool = False) -> np.ndarray:
    logits = (p if logs else np.log(np.clip(p, EPS, None))) / temperature
    logits = logits - logits.max(-1, keepdims=True)
    return normalise(np.exp(logits))


def apply_bias_corrected_temperature(p: np.ndarray, temperature: float, bias: np.ndarray) -> np.ndarray:
    return scale_temperature(np.log(np.clip(p, EPS, None)) / temperature + bias, 1.0, logs=True)


def weighted_average(weights: np.ndarray, P: np.ndarray, single_label: bool = True) -> np.ndarray:
    """The models' probabilities (models, clips, labels) averaged with ``weights``; rows renormalised
    where they are one label's distribution (a multi-label table's weights sum to 1 already)."""
    blended = np.tensordot(weights, P, axes=1)
    return normalise(blended) if single_label else blended


def stack_features(P: np.ndarray) -> np.ndarray:
    """The stacker's inputs: every model's log-probabilities side by side, a row per clip."""
    return np.log(np.clip(P, EPS, None)).transpose(1, 0, 2).reshape(P.shape[1], -1)


def stacker_probabilities(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, P: np.ndarray) -> np.ndarray:
    """A fitted multinomial logistic regression (scikit-learn's coef_, intercept_, classes_) on P: the
    classes it never saw get EPS."""
    scores = stack_features(P) @ np.asarray(coef).T + np.asarray(intercept)
    if scores.shape[1] == 1:  # two classes: scikit-learn's binary form, one score for the second
        scores = np.hstack([-scores, scores]) / 2
    out = np.full(P.shape[1:], EPS)
    out[:, np.asarray(classes, dtype=int)] = scale_temperature(scores, 1.0, logs=True)
    return normalise(out)


def bound_prior(prior: np.ndarray, reference: np.ndarray, max_ratio: float) -> np.ndarray:
    """``prior`` with every class held within [1/max_ratio, max_ratio] x ``reference``, summing to 1:
    clip(scale x prior) to those bounds, with the one scale that makes it sum to 1 (found by bisection;
    the sum grows with the scale)."""
    low, high = reference / max_ratio, np.minimum(reference * max_ratio, 1.0)
    if low.sum() >= 1.0:  # max_ratio 1: nothing may move
        return reference / reference.sum()
    prior = np.clip(prior, EPS, None)
    lo, hi = np.log(EPS), np.log(1 / EPS)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(np.exp(mid) * prior, low, high).sum() < 1.0 else (lo, mid)
    bounded = np.clip(np.exp((lo + hi) / 2) * prior, low, high)
    return bounded / bounded.sum()


def em_prior(probabilities: np.ndarray, train_prior: np.ndarray, iterations: int = 100, tol: float = 1e-6,
             max_ratio: float | None = None):  # fmt: skip
    """Saerens et al. (2002): re-estimate the class prior of unlabelled data and adjust its posteriors.

    ``max_ratio``: each class's estimate is held within [1/max_ratio, max_ratio] x ``train_prior`` at
    every step (bounded EM; None: unbounded)."""
    train_prior = np.clip(train_prior, EPS, None)
    train_prior = train_prior / train_prior.sum()
    prior = train_prior.copy()
    for _ in range(iterations):
        new_prior = normalise(probabilities * (prior / train_prior)).mean(0)
        if max_ratio is not None:
            new_prior = bound_prior(new_prior, train_prior, max_ratio)
        converged = np.abs(new_prior - prior).max() < tol
        prior = new_prior
        if converged:
            break
    return normalise(probabilities * (prior / train_prior)), prior


def match_label_mix(probabilities: np.ndarray, target: np.ndarray | None = None,
                    iterations: int = 300) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Re-weight the classes so that the argmax labels come in the mix ``target`` (default: the mean
    probability of each class, the "probabilistic classify and count" estimate of the mix).

    Why: under a shift of voices and recording, posteriors go flat, and the class that covers
    everything unfamiliar ("unknown") wins the argmax of clips whose probability for it is small:
    the argmax counts then send far more clips to it than the probabilities themselves expect (the
    hard-shift demo: mean p(unknown) 0.29 against 76% argmax-unknown, truth 23%). Matching the counts
    to the probabilities' own mix removes that distortion and changes nothing where the two agree.
    It uses the test probabilities only (no labels). Returns (re-weighted probabilities, weights).

    The weights are found by multiplicative updates toward the target with a decaying step; the best
    iterate (smallest total variation between the label shares and the target) is kept."""
    n, classes = probabilities.shape
    target = probabilities.mean(0) if target is None else np.asarray(target, float)
    log_p = np.log(np.clip(probabilities, EPS, None))
    bias, best, best_gap = np.zeros(classes), np.zeros(classes), np.inf
    for step in range(iterations):
        shares = np.bincount((log_p + bias).argmax(1), minlength=classes) / n
        gap = 0.5 * np.abs(shares - target).sum()
        if gap < best_gap:
            best, best_gap = bias.copy(), gap
        if gap <= 0.5 / n:
            break
        bias += 0.5 * 0.98**step * (np.log(target + 1e-6) - np.log(shares + 1e-6))
    weights = np.exp(best - best.max())
    return normalise(probabilities * weights), weights


def apply_blend(recipe: dict, P: np.ndarray) -> np.ndarray:
    """The final blend (``recipe``, as ``wavefold.blend`` wrote it) on the members' test probabilities
    P (members, clips, labels), in the workflow's order: temperatures, the combiner, EM, matching."""
    single_label = not recipe["multi_label"]
    combine = recipe["combine"]
    if combine["kind"] == "member":
        out = P[combine["member"]]
    else:
        if recipe.get("temperatures") is not None:
            P = np.stack([scale_temperature(p, t) for p, t in zip(P, recipe["temperatures"])])
        if combine["kind"] == "weights":
            out = weighted_average(np.asarray(combine["weights"]), P, single_label)
        elif combine["kind"] == "stacking":
            out = stacker_probabilities(combine["coef"], combine["intercept"], combine["classes"], P)
        else:
            raise ValueError(f"recipe.json: unknown combiner {combine['kind']!r}")
    em = recipe.get("em")
    if em:
        if em.get("calibration"):
            out = apply_bias_corrected_temperature(out, em["calibration"]["temperature"],
                                                   np.asarray(em["calibration"]["bias"]))  # fmt: skip
        out = em_prior(out, np.asarray(em["reference"]), max_ratio=em["max_ratio"])[0]
    if recipe.get("match_mix"):
        out = match_label_mix(out)[0]
    return out


def submission_rows(ids, probabilities: np.ndarray, labels, submission: dict) -> dict[str, list]:
    """The submission's columns: ``top`` — the k most probable labels, space-separated, best first
    (ties: the earlier label); ``scores`` — a column per label."""
    labels = np.asarray(list(labels))
    if submission["kind"] == "top":
        top = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")[:, : submission["k"]]
        return {submission["id_column"]: list(ids), submission["column"]: [" ".join(row) for row in labels[top]]}
    if submission["kind"] == "scores":
        values = np.asarray(probabilities, dtype=np.float64)
        return {submission["id_column"]: list(ids), **{name: values[:, i] for i, name in enumerate(labels)}}
    raise ValueError(f"recipe.json: unknown submission kind {submission['kind']!r}")


# --------------------------------------------------------------------------- audio, as the cache holds it


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) to int16; exact for audio that was 16-bit to begin with."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def loudest_window(samples: np.ndarray, length: int) -> int:
    """Start of the window of ``length`` samples with the most energy (a word in a long recording)."""
    energy = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    window_energy = energy[length:] - energy[:-length]
    return int(np.argmax(window_energy))


def window_rows(samples: np.ndarray, clip: int, hop: int) -> np.ndarray:
    """A clip as (windows, clip) rows ``hop`` apart, the last ending at its end; one padded row if short."""
    if len(samples) <= clip:
        return np.pad(samples, (0, clip - len(samples)))[None]
    count = 1 + -(-(len(samples) - clip) // hop)
    starts = np.minimum(np.arange(count) * hop, len(samples) - clip)
    return samples[starts[:, None] + np.arange(clip)]


def clip_rows(path, audio: dict) -> np.ndarray:
    """A test clip as the audio cache holds it: int16 rows of ``audio['clip_samples']``; a clip the
    audio policy rejects, or that cannot be read, is one row of silence (the submission needs every clip)."""
    import soundfile as sf

    clip = audio["clip_samples"]
    silence = np.zeros((1, clip), np.int16)
    try:
        info = sf.info(str(path))
        samples, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception:  # undecodable: whatever the library raises
        return silence
    if info.format != "WAV" or len(samples) == 0:
        return silence
    if (info.channels != 1 and audio["multichannel"] == "reject") or (
        rate != audio["sample_rate"] and audio["other_rates"] == "reject"):  # fmt: skip
        return silence
    mono = samples.mean(axis=1)
    if rate != audio["sample_rate"]:
        import soxr

        mono = soxr.resample(mono, rate, audio["sample_rate"], quality="HQ")
    if len(mono) < clip:
        if audio["short"] == "reject":
            return silence
        mono = np.pad(mono, (0, clip - len(mono)))
    elif len(mono) > clip and audio["long"] != "windows":
        if audio["long"] == "reject":
            return silence
        start = loudest_window(mono, clip)
        mono = mono[start : start + clip]
    return window_rows(to_int16(mono), clip, audio["hop_samples"])


def shifted(wave: np.ndarray, shift: int) -> np.ndarray:
    """``wave`` (batch, samples) moved by ``shift`` samples along time, zero-filled (not wrapped round)."""
    out = np.roll(wave, shift, axis=1)
    if shift > 0:
        out[:, :shift] = 0
    elif shift < 0:
        out[:, shift:] = 0
    return out


# --------------------------------------------------------------------------- the models


def ensure_runtime(dataset: Path) -> None:
    """onnxruntime, installed from the Dataset's wheels when Kaggle's image lacks it (no internet)."""
    try:
        __import__(RUNTIME_PACKAGE)
        return
    except ImportError:
        pass
    wheels = dataset / "wheels"
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "--quiet", RUNTIME_PACKAGE]
    print(f"installing {RUNTIME_PACKAGE} from {wheels} (no internet)", flush=True)
    subprocess.run(command, check=True)


class Member:
    """One model of the blend: its fold models as ONNX sessions (float waveforms in, the submission
    labels' probabilities out)."""

    def __init__(self, dataset: Path, spec: dict, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.name = spec["name"]
        self.sessions = [ort.InferenceSession(str(dataset / path), options, providers=["CPUExecutionProvider"])
                         for path in spec["folds"]]  # fmt: skip

    def probabilities(self, wave: np.ndarray, shifts) -> np.ndarray:
        """(rows, labels): the mean over fold models of each one's mean over the TTA ``shifts``."""
        total = 0.0
        for session in self.sessions:
            name = session.get_inputs()[0].name
            total = total + sum(session.run(None, {name: shifted(wave, s)})[0] for s in shifts) / len(shifts)
        return total / len(self.sessions)


def predict_members(members: list[Member], paths: list[Path], recipe: dict, batch_clips: int,
                    report=print) -> np.ndarray:  # fmt: skip
    """(members, clips, labels): every member's probabilities of every test clip, the mean over a
    clip's windows; the clips are read a batch at a time (the test set never stays in memory)."""
    out = np.zeros((len(members), len(paths), len(recipe["labels"])))
    started = time.perf_counter()
    for begin in range(0, len(paths), batch_clips):
        rows = [clip_rows(path, recipe["audio"]) for path in paths[begin : begin + batch_clips]]
        owner = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        wave = (np.concatenate(rows).astype(np.float32) / 32768.0).astype(np.float32)
        counts = np.bincount(owner, minlength=len(rows))[:, None]
        for m, member in enumerate(members):
            per_row = member.probabilities(wave, recipe["tta_shifts"])
            sums = np.zeros((len(rows), per_row.shape[1]))
            np.add.at(sums, owner, per_row)
            out[m, begin : begin + len(rows)] = sums / counts
        done = begin + len(rows)
        report(f"{done}/{len(paths)} clips, {(time.perf_counter() - started) / done * 1000:.1f} ms a clip")
    return out


# --------------------------------------------------------------------------- the notebook


def find_dataset(inputs: Path) -> Path:
    """The attached Dataset: the folder under /kaggle/input holding recipe.json."""
    found = sorted(inputs.glob("*/recipe.json")) + sorted(inputs.glob("*/*/recipe.json"))
    if not found:
        raise SystemExit(f"no recipe.json under {inputs}: attach the wavefold Dataset to the notebook (dataset_sources)")
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
    args = parser.parse_args(argv)
    inputs = Path(args.inputs)
    dataset = find_dataset(inputs)
    recipe = json.loads((dataset / "recipe.json").read_text())
    competition_root = inputs / recipe["competition"]
    ensure_runtime(dataset)
    import pandas as pd

    paths = test_files(competition_root, recipe)
    print(f"{len(paths)} test clips under {competition_root / recipe['test_folder']}; "
          f"{len(recipe['members'])} models; {args.threads} threads", flush=True)  # fmt: skip
    started, cpu_started = time.perf_counter(), time.process_time()  # the model loading counts too
    members = [Member(dataset, spec, args.threads) for spec in recipe["members"]]
    P = predict_members(members, paths, recipe, recipe["batch_clips"], lambda line: print(line, flush=True))
    probabilities = apply_blend(recipe["blend"], P)
    ids = [path.name for path in paths]
    table = pd.DataFrame(submission_rows(ids, probabilities, recipe["labels"], recipe["submission"]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    # The last line: what rule rehearse projects to the hidden test (wall: the notebook's time limit).
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"clips": len(paths), "threads": args.threads, "seconds": round(seconds, 3),
                      "cpu_seconds": round(cpu_seconds, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
