"""Training one model on one fold: the hot loop, checkpoints and resume, out-of-fold predictions.

Data never passes through per-clip Python: an epoch is a few numpy arrays of row numbers (and
noise windows for silence); a background thread gathers each batch from the memory-mapped int16
cache into pinned memory while the device works on the previous one; on the device the batch
becomes float, is augmented (:mod:`wavefold.augment`), turned into features
(:mod:`wavefold.features`) and fed to the model, under autocast on CUDA.

Every epoch draws its randomness from seeds derived from (job seed, epoch), and a checkpoint is
written after every epoch, so a job killed at any point and started again ends with the same
result as one that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .augment import AugmentSettings, augment_waveforms, mixup, spec_augment
from .features import FeatureSettings, FrontEnd, int16_to_float
from .labels import LABELS, WORDS, label_of
from .models import create_model, input_kind
from .settings import from_section

log = logging.getLogger(__name__)

#: The label spaces a model can be trained in. ``words31`` learns every word (+ silence) and folds
#: the 20 auxiliary words into ``unknown`` when it writes probabilities.
LABEL_SPACES = {"labels12": list(LABELS), "words31": list(WORDS) + ["silence"]}


@dataclass(frozen=True)
class TrainSettings:
    architecture: str
    params: dict = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 0.003
    weight_decay: float = 0.01
    scheduler: str = "onecycle"  # onecycle | cosine | constant
    patience: int = 0  # stop after this many epochs without a better fold accuracy; 0: never
    unknown_share: float | None = None  # share of unknown clips per epoch; None: as in the data
    silence_share: float = 0.09  # share of silence examples per epoch, cut from training-side noise
    balanced: bool = False  # draw every class equally often (without replacement within an epoch)
    offline_share: float = 0.25  # offline variants (speed/pitch/stretch) per epoch, as a share of the clips
    label_space: str = "labels12"  # labels12 | words31
    pseudo_share: float = 0.0  # pseudo-labelled test clips per epoch, as a share of the labelled clips (rounds > 1)
    pseudo_noise: bool = False  # pseudo-labelled silence clips also join the background noise for mixing
    features: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, settings: dict) -> "TrainSettings":
        return from_section(cls, settings, "training")

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def job_seed(global_seed: int, round_: int, model: str, fold: int) -> int:
    """A job's seed from (global seed, round, model, fold): every job is reproducible on its own."""
    digest = hashlib.sha256(f"{global_seed}/{round_}/{model}/{fold}".encode()).hexdigest()
    return int(digest[:8], 16)


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


# ---------------------------------------------------------------- data -------------------------------


@dataclass
class FoldData:
    """What one fold's job trains and validates on; clip sources are cache rows, silence is noise windows."""

    clips: np.ndarray  # memory-mapped (n, samples) int16
    variants: np.ndarray  # memory-mapped offline variants; epoch plans address them as n_clips + index
    variant_index: np.ndarray  # the variants of training-side clips
    variant_targets: np.ndarray
    noise: np.ndarray  # (samples,) int16, whole noise cache (small)
    train_rows: np.ndarray
    train_targets: np.ndarray  # class index in the label space
    train_noise: np.ndarray  # (k, 2) start, length of the training-side noise stretches
    val_rows: np.ndarray
    val_targets: np.ndarray
    val_ids: list[str]
    val_silence: pd.DataFrame  # start, gain, id of this fold's silence examples
    label_space: list[str]
    samples: int
    pseudo_clips: np.ndarray | None = None  # the memory-mapped test cache; plans address it after the variants
    pseudo_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # test-cache rows of pseudo-labelled clips
    pseudo_targets: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    extra_noise: np.ndarray | None = None  # (k, samples) int16: pseudo-labelled silence, mixed in as noise

    def fingerprint(self) -> str:
        """What the job trains and validates on: a checkpoint made on other data is not resumed."""
        digest = hashlib.sha256()
        for part in (self.train_rows, self.train_targets, self.val_rows, self.variant_index, self.pseudo_rows,
                     self.pseudo_targets, self.train_noise):  # fmt: skip
            digest.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]


def load_fold(clips: np.ndarray, noise: np.ndarray, folds: pd.DataFrame, silence: pd.DataFrame,
              segments: pd.DataFrame, fold: int, label_space: str, variants: np.ndarray | None = None,
              variant_sources: np.ndarray | None = None, test_clips: np.ndarray | None = None,
              pseudo: pd.DataFrame | None = None, pseudo_noise: bool = False) -> FoldData:  # fmt: skip
    """One fold's data; offline variants (and their source rows) and pseudo-labelled test clips
    (``pseudo``: test-cache row and 12-class label) are optional; both only ever train."""
    classes = LABEL_SPACES[label_space]
    index = {name: i for i, name in enumerate(classes)}
    key = folds["word"] if label_space == "words31" else folds["label"]
    targets = key.map(index).to_numpy()
    is_val = (folds["fold"] == fold).to_numpy()
    own_silence = silence[silence["fold"] == fold].reset_index(drop=True)
    train_noise = segments[segments["fold"] != fold][["start", "length"]].to_numpy()
    if variants is None:
        variants, variant_sources = np.zeros((0, clips.shape[1]), np.int16), np.zeros(0, int)
    # A variant belongs to its source clip's fold: only training-side variants are ever drawn.
    variant_index = np.flatnonzero(~is_val[variant_sources]) if len(variant_sources) else np.zeros(0, int)
    pseudo_rows, pseudo_targets, extra_noise = np.zeros(0, int), np.zeros(0, int), None
    if pseudo is not None and len(pseudo):
        # A words31 model cannot learn "unknown" test clips: it does not know which word they are.
        usable = pseudo["label"].isin(classes)
        if (~usable).any():
            log.info("pseudo-labels: %d '%s' clips left out: not a class of the %s label space",
                     int((~usable).sum()), "unknown", label_space)  # fmt: skip
        pseudo_rows = pseudo.loc[usable, "row"].to_numpy()
        pseudo_targets = pseudo.loc[usable, "label"].map(index).to_numpy()
        if pseudo_noise:
            silent = np.sort(pseudo.loc[pseudo["label"] == "silence", "row"].to_numpy())
            extra_noise = np.asarray(test_clips[silent]) if len(silent) else None
    return FoldData(
        clips=clips, variants=variants, variant_index=variant_index,
        variant_targets=targets[variant_sources[variant_index]] if len(variant_index) else np.zeros(0, int),
        noise=noise, train_rows=np.flatnonzero(~is_val), train_targets=targets[~is_val],
        train_noise=train_noise, val_rows=np.flatnonzero(is_val), val_targets=targets[is_val],
        val_ids=folds.loc[is_val, "id"].tolist(), val_silence=own_silence, label_space=classes,
        samples=clips.shape[1], pseudo_clips=test_clips, pseudo_rows=pseudo_rows, pseudo_targets=pseudo_targets,
        extra_noise=extra_noise,
    )  # fmt: skip


def epoch_plan(data: FoldData, settings: TrainSettings, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's examples, shuffled: (cache row or -1 for silence, noise start for silence, target)."""
    classes = data.label_space
    silence_class = classes.index("silence")
    rows, targets = data.train_rows, data.train_targets
    if settings.balanced:
        # Every class as often as the others; a small class is walked through in fresh permutations,
        # so no clip repeats before all of its class has been drawn.
        present = [c for c in range(len(classes)) if c != silence_class and (targets == c).any()]
        per_class = int(np.ceil(len(rows) / max(1, len(present))))
        chosen = []
        for c in present:
            members = np.flatnonzero(targets == c)
            cycles = int(np.ceil(per_class / len(members)))
            chosen.append(np.concatenate([rng.permutation(members) for _ in range(cycles)])[:per_class])
        keep = np.concatenate(chosen)
    elif settings.unknown_share is not None:
        # In the words31 space, "unknown" is the 20 auxiliary words.
        unknown_class = np.array([name != "silence" and label_of(name) == "unknown" for name in classes])
        is_unknown = unknown_class[targets]
        known = np.flatnonzero(~is_unknown)
        wanted = int(round(len(known) * settings.unknown_share / max(1e-9, 1 - settings.unknown_share)))
        pool = np.flatnonzero(is_unknown)
        extra = rng.choice(pool, size=min(wanted, len(pool)), replace=False) if len(pool) else np.zeros(0, int)
        keep = np.concatenate([known, extra])
    else:
        keep = np.arange(len(rows))
    clip_rows, clip_targets = rows[keep], targets[keep]
    n_pseudo = min(len(data.pseudo_rows), int(round(len(clip_rows) * settings.pseudo_share)))
    n_variants = min(len(data.variant_index), int(round(len(clip_rows) * settings.offline_share)))
    if n_variants:
        pick = rng.choice(len(data.variant_index), size=n_variants, replace=False)
        clip_rows = np.concatenate([clip_rows, len(data.clips) + data.variant_index[pick]])
        clip_targets = np.concatenate([clip_targets, data.variant_targets[pick]])
    if n_pseudo:
        pick = rng.choice(len(data.pseudo_rows), size=n_pseudo, replace=False)
        clip_rows = np.concatenate([clip_rows, len(data.clips) + len(data.variants) + data.pseudo_rows[pick]])
        clip_targets = np.concatenate([clip_targets, data.pseudo_targets[pick]])
    n_silence = int(round(len(clip_rows) * settings.silence_share / max(1e-9, 1 - settings.silence_share)))
    starts = np.zeros(n_silence, dtype=np.int64)
    if n_silence and len(data.train_noise):
        lengths = data.train_noise[:, 1] - data.samples + 1
        stretch = rng.choice(len(data.train_noise), size=n_silence, p=lengths / lengths.sum())
        starts = data.train_noise[stretch, 0] + (rng.random(n_silence) * lengths[stretch]).astype(np.int64)
    source = np.concatenate([clip_rows, np.full(n_silence, -1)])
    start = np.concatenate([np.zeros(len(clip_rows), np.int64), starts])
    target = np.concatenate([clip_targets, np.full(n_silence, silence_class)])
    order = rng.permutation(len(source))
    return source[order], start[order], target[order]


def _rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]``, read in ascending row order (the memory map's fast path), returned in ``rows`` order."""
    order = np.argsort(rows, kind="stable")
    placed = np.empty((len(rows), array.shape[1]), dtype=array.dtype)
    placed[order] = array[rows[order]]
    return placed


def gather(clips: np.ndarray, noise: np.ndarray, source: np.ndarray, start: np.ndarray, gain: np.ndarray,
           samples: int, variants: np.ndarray | None = None, test_clips: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """A batch of int16 clips: cache rows (``source`` in [0, n)), offline variants (``source`` - n, up to
    n + v), pseudo-labelled test clips (``source`` - n - v) and noise windows scaled by ``gain`` (``source`` -1)."""
    batch = np.empty((len(source), samples), dtype=np.int16)
    n, v = len(clips), 0 if variants is None else len(variants)
    is_clip = (source >= 0) & (source < n)
    if is_clip.any():
        batch[is_clip] = _rows(clips, source[is_clip])
    is_variant = (source >= n) & (source < n + v)
    if is_variant.any():
        batch[is_variant] = _rows(variants, source[is_variant] - n)
    is_test = source >= n + v
    if is_test.any():
        batch[is_test] = _rows(test_clips, source[is_test] - n - v)
    is_noise = source < 0
    if is_noise.any():
        windows = noise[start[is_noise, None] + np.arange(samples)]
        batch[is_noise] = (windows * gain[is_noise, None]).astype(np.int16)
    return batch


class Prefetcher:
    """Gathers the next batches on a background thread (numpy releases the GIL while copying)."""

    def __init__(self, make_batch, count: int, pin: bool, depth: int = 3):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.count = count

        def work():
            try:
                for i in range(count):
                    tensor = torch.from_numpy(make_batch(i))
                    self.queue.put(tensor.pin_memory() if pin else tensor)
            except BaseException as error:  # surfaced in the training thread
                self.queue.put(error)

        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def __iter__(self):
        for _ in range(self.count):
            item = self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item


# ---------------------------------------------------------------- the model --------------------------


class Classifier(nn.Module):
    """Front end (features) + architecture: takes float waveforms (batch, samples)."""

    def __init__(self, settings: TrainSettings, n_classes: int):
        super().__init__()
        features = FeatureSettings.from_config(settings.features)
        params = dict(settings.params)
        if settings.architecture == "matchboxnet":
            params.setdefault("n_features", features.n_mfcc)
        self.front = FrontEnd(input_kind(settings.architecture), features)
        self.net = create_model(settings.architecture, n_classes, **params)

    def forward(self, wave):
        return self.net(self.front(wave))


def to_labels12(probabilities: np.ndarray, label_space: list[str]) -> np.ndarray:
    """Probabilities over a label space -> the 12 competition labels (auxiliary words sum into unknown)."""
    out = np.zeros((len(probabilities), len(LABELS)), dtype=np.float64)
    for i, name in enumerate(label_space):
        target = name if name in LABELS else label_of(name)
        out[:, LABELS.index(target)] += probabilities[:, i]
    return out


def probability_table(ids: list[str], probabilities: np.ndarray, id_column: str, fold: int | None = None) -> pd.DataFrame:
    """The one probability format of the workflow (DESIGN.md, Contracts)."""
    table = pd.DataFrame(probabilities, columns=list(LABELS))
    table.insert(0, id_column, ids)
    if fold is not None:
        table.insert(1, "fold", fold)
    return table


# ---------------------------------------------------------------- the loop ---------------------------


@dataclass
class JobPaths:
    model: Path
    oof: Path
    curve: Path
    metrics: Path
    checkpoint: Path


def _optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay,
                               nesterov=True)  # fmt: skip
    raise ValueError(f"unknown optimizer {settings.optimizer!r} (adamw | sgd)")


def _scheduler(optimizer, settings: TrainSettings, steps_per_epoch: int):
    total = settings.epochs * steps_per_epoch
    if settings.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=max(1, total), pct_start=0.2)
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total))
    if settings.scheduler == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"unknown scheduler {settings.scheduler!r} (onecycle | cosine | constant)")


def _epoch_generators(seed: int, epoch: int, device: torch.device):
    rng = np.random.default_rng([seed, epoch])
    generator = torch.Generator(device=device).manual_seed(seed * 1000 + epoch)
    torch.manual_seed(seed * 1000 + epoch + 1)  # dropout draws from the global generator
    return rng, generator


@torch.no_grad()
def predict(model: Classifier, clips: np.ndarray, rows: np.ndarray | None, device: torch.device, batch_size: int,
            extra: np.ndarray | None = None, shifts: tuple[int, ...] = (0,)) -> np.ndarray:  # fmt: skip
    """Softmax probabilities of cache ``rows`` (all rows when None) followed by ``extra`` int16 clips;
    averaged over the time ``shifts`` (samples) for test-time augmentation."""
    model.eval()
    n_rows = len(clips) if rows is None else len(rows)
    total = n_rows + (0 if extra is None else len(extra))
    out = []
    for begin in range(0, total, batch_size):
        index = np.arange(begin, min(total, begin + batch_size))
        in_rows = index[index < n_rows]
        parts = []
        if len(in_rows):
            parts.append(np.asarray(clips[in_rows if rows is None else rows[in_rows]]))
        if extra is not None and (index >= n_rows).any():
            parts.append(extra[index[index >= n_rows] - n_rows])
        wave = int16_to_float(torch.from_numpy(np.concatenate(parts)).to(device))
        probabilities = 0
        for shift in shifts:
            shifted = torch.roll(wave, shift, dims=1)
            if shift > 0:
                shifted[:, :shift] = 0
            elif shift < 0:
                shifted[:, shift:] = 0
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                probabilities = probabilities + torch.softmax(model(shifted).float(), dim=1)
        out.append((probabilities / len(shifts)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def train_fold(data: FoldData, settings: TrainSettings, seed: int, paths: JobPaths, device: torch.device,
               fold: int) -> dict:  # fmt: skip
    """Train, validate every epoch, keep the best; resumes from ``paths.checkpoint`` when it matches."""
    augment_settings = AugmentSettings.from_config(settings.augment)
    torch.manual_seed(seed)
    n_classes = len(data.label_space)
    model = Classifier(settings, n_classes).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, settings)
    steps = int(np.ceil(len(epoch_plan(data, settings, np.random.default_rng([seed, 0]))[0]) / settings.batch_size))
    scheduler = _scheduler(optimizer, settings, steps)
    scaler = torch.amp.GradScaler(enabled=cuda)
    noise_device = torch.from_numpy(data.noise.astype(np.float32) / 32768.0).to(device)
    val_extra = gather(data.clips, data.noise, np.full(len(data.val_silence), -1), data.val_silence["start"].to_numpy(),
                       data.val_silence["gain"].to_numpy(), data.samples)  # fmt: skip
    val_targets = np.concatenate([data.val_targets, np.full(len(data.val_silence), data.label_space.index("silence"))])
    # Noise for mixing comes from the training side only: the stretches of the other folds.
    noise_parts = [noise_device[s : s + n] for s, n in data.train_noise]
    if settings.pseudo_noise and data.extra_noise is not None:
        noise_parts.append(torch.from_numpy(data.extra_noise.astype(np.float32).ravel() / 32768.0).to(device))
    train_noise = torch.cat(noise_parts) if noise_parts else None

    start_epoch, best, curve, best_state, best_probabilities, stale = 0, -1.0, [], None, None, 0
    fingerprint = f"{settings.fingerprint()}/{data.fingerprint()}/{seed}"
    if paths.checkpoint.is_file():
        state = torch.load(paths.checkpoint, map_location=device, weights_only=False)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            start_epoch, best, curve, best_state, best_probabilities, stale = (
                state[k] for k in ("epoch", "best", "curve", "best_state", "best_probabilities", "stale"))  # fmt: skip
            log.info("resuming from %s after epoch %d", paths.checkpoint, start_epoch)
        else:
            log.info("ignoring %s: it was written with other settings", paths.checkpoint)

    loss_function = nn.CrossEntropyLoss()
    for epoch in range(start_epoch, settings.epochs):
        if settings.patience and stale >= settings.patience:
            log.info("early stop: no better fold accuracy for %d epochs", stale)
            break
        started = time.perf_counter()
        rng, generator = _epoch_generators(seed, epoch, device)
        source, noise_start, target = epoch_plan(data, settings, rng)
        gain = np.where(rng.random(len(source)) < 0.1, 0.0, 10 ** (rng.uniform(-40, 0, len(source)) / 20))
        batches = int(np.ceil(len(source) / settings.batch_size))

        def make_batch(i, bs=settings.batch_size):
            part = slice(i * bs, (i + 1) * bs)
            return gather(data.clips, data.noise, source[part], noise_start[part], gain[part], data.samples,
                          data.variants, data.pseudo_clips)  # fmt: skip

        model.train()
        # Running sums stay on the device: reading them every step would make the GPU wait each time.
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        progress = tqdm(Prefetcher(make_batch, batches, pin=cuda), total=batches, desc=f"epoch {epoch + 1}", mininterval=10)
        for i, batch in enumerate(progress):
            wave = int16_to_float(batch.to(device, non_blocking=True))
            labels = torch.from_numpy(target[i * settings.batch_size : (i + 1) * settings.batch_size]).to(device)
            wave = augment_waveforms(wave, train_noise, augment_settings, model.front.settings.sample_rate, generator)
            onehot = nn.functional.one_hot(labels, n_classes).float()
            with torch.autocast(device.type, enabled=cuda):
                features = spec_augment(model.front(wave), augment_settings, generator)
                features, soft_targets = mixup(features, onehot, augment_settings.mixup_alpha, generator)
                if cuda and features.dim() == 4:
                    features = features.contiguous(memory_format=torch.channels_last)
                logits = model.net(features)
                loss = loss_function(logits.float(), soft_targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total_loss += loss.detach() * len(labels)
            correct += (logits.argmax(1) == labels).sum()
            seen += len(labels)

        val_probabilities = predict(model, data.clips, data.val_rows, device, settings.batch_size * 2, val_extra)
        val_loss = float(-np.log(val_probabilities[np.arange(len(val_targets)), val_targets] + 1e-9).mean())
        val_acc = float((val_probabilities.argmax(1) == val_targets).mean())
        curve.append({"epoch": epoch + 1, "train_loss": total_loss.item() / max(1, seen),
                      "train_acc": correct.item() / max(1, seen),
                      "val_loss": val_loss, "val_acc": val_acc, "lr": scheduler.get_last_lr()[0],
                      "seconds": time.perf_counter() - started})  # fmt: skip
        if val_acc > best:
            best, stale = val_acc, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best_probabilities = val_probabilities  # kept: no second validation pass at the end
        else:
            stale += 1
        log.info("epoch %d/%d: train loss %.4f acc %.4f | fold %d loss %.4f acc %.4f | %.1f s", epoch + 1, settings.epochs,
                 curve[-1]["train_loss"], curve[-1]["train_acc"], fold, val_loss, val_acc, curve[-1]["seconds"])  # fmt: skip
        paths.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        partial = paths.checkpoint.with_suffix(".partial")
        torch.save({"fingerprint": fingerprint, "epoch": epoch + 1, "best": best, "curve": curve, "stale": stale,
                    "best_state": best_state, "best_probabilities": best_probabilities, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict()}, partial)  # fmt: skip
        partial.replace(paths.checkpoint)

    model.load_state_dict(best_state)
    return _write_outputs(model, settings, data, best_probabilities, val_targets, curve, paths, fold)


def _write_outputs(model, settings, data, probabilities, val_targets, curve, paths: JobPaths, fold: int) -> dict:
    ids = data.val_ids + data.val_silence["id"].tolist()
    labels12 = to_labels12(probabilities, data.label_space)
    truth = np.array([LABELS.index(n if n in LABELS else label_of(n)) for n in np.array(data.label_space)[val_targets]])
    for path in (paths.model, paths.oof, paths.curve, paths.metrics):
        path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "settings": asdict(settings),
                "label_space": data.label_space}, paths.model)  # fmt: skip
    probability_table(ids, labels12, "id", fold).to_csv(paths.oof, index=False, float_format="%.6g")
    pd.DataFrame(curve).to_csv(paths.curve, index=False)
    predicted = labels12.argmax(1)
    rows = []
    for c, name in enumerate(LABELS):
        is_true, is_pred = truth == c, predicted == c
        rows.append({"label": name, "clips": int(is_true.sum()),
                     "recall": float((is_pred & is_true).sum() / max(1, is_true.sum())),
                     "precision": float((is_pred & is_true).sum() / max(1, is_pred.sum()))})  # fmt: skip
    metrics = pd.DataFrame(rows)
    metrics.loc[len(metrics)] = {"label": "all", "clips": len(truth), "recall": float((predicted == truth).mean()),
                                 "precision": float((predicted == truth).mean())}  # fmt: skip
    metrics.to_csv(paths.metrics, index=False)
    return {"fold_accuracy": float((predicted == truth).mean()), "epochs": len(curve)}
