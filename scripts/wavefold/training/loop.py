"""The hot loop: one model trained on one fold.

Per batch, on the device: int16 -> float, waveform augmentation (:mod:`wavefold.augment`),
features (:mod:`wavefold.features`), SpecAugment and mixup, forward and backward under autocast
on CUDA. The next batches are gathered from the memory-mapped caches on a background thread
(:mod:`.batches`); running loss and accuracy stay on the device, so no step waits for the GPU.

Which weights the job keeps is ``epoch_selection`` (:data:`.settings.EPOCH_SELECTIONS`): by
default the last epoch of the fixed schedule; the fold the job is scored on is never used to
choose unless the user asks for it (``fold``, logged as optimistic). The out-of-fold
probabilities are then made with the same test-time augmentation as the test predictions.

Every epoch draws its randomness from seeds derived from (job seed, epoch), and a checkpoint is
written after every epoch, so a job killed at any point and started again ends with the same
result as one that was never interrupted (:mod:`.checkpoint`).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import metrics
from ..augment import augment_waveforms, mixup, spec_augment
from ..features import int16_to_float
from . import optim, outputs
from .batches import Prefetcher, gather, silence_windows
from .checkpoint import Checkpoint
from .classifier import Classifier
from .data import FoldData, epoch_plan, training_mix
from .inference import adapt_batch_norm, predict_clips
from ..settings.training import AugmentSettings, TrainSettings

log = logging.getLogger(__name__)


def _epoch_generators(seed: int, epoch: int, device: torch.device):
    rng = np.random.default_rng([seed, epoch])
    generator = torch.Generator(device=device).manual_seed(seed * 1000 + epoch)
    torch.manual_seed(seed * 1000 + epoch + 1)  # dropout draws from the global generator
    return rng, generator


def _scores(probabilities: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(log-loss, accuracy) of class numbers ``targets``; of multi-hot ones (a multi-label
    competition's), (binary cross-entropy, label-weighted label-ranking average precision)."""
    if not len(targets):
        return float("nan"), float("nan")
    if targets.ndim == 2:
        return metrics.binary_cross_entropy(probabilities, targets), metrics.lwlrap(probabilities, targets)
    return metrics.log_loss(probabilities, targets), float((probabilities.argmax(1) == targets).mean())


class MultiLabelLoss(nn.Module):
    """Binary cross-entropy of every label (a multi-label competition's), on logits; label smoothing
    pulls each target toward 1/2 by ``smoothing`` (as cross-entropy's pulls toward the uniform)."""

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets * (1 - self.smoothing) + self.smoothing / 2
        return nn.functional.binary_cross_entropy_with_logits(logits, targets)


def train_fold(
    data: FoldData,
    settings: TrainSettings,
    seed: int,
    paths: outputs.JobPaths,
    device: torch.device,
    fold: int,
    identity: str,
    shifts: tuple[int, ...] = (0,),
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train, choose the epoch (``settings.epoch_selection``), write the outputs, remove the checkpoint.

    ``identity`` names this job's inputs, code and settings (:func:`.checkpoint.job_identity`): only
    a checkpoint of the same identity is resumed. ``shifts`` are the TTA shifts of the OOF pass.
    ``on_epoch`` is given each learning-curve row once the epoch's checkpoint is written (live
    tracking), the rows of a resumed checkpoint first.
    """
    on_epoch = on_epoch or (lambda row: None)
    augment_settings = AugmentSettings.from_config(settings.augment)
    selection = settings.epoch_selection
    if selection == "fold":
        log.warning(
            "epoch_selection: fold — the epoch is chosen on the fold this model is scored on, so its CV "
            "(and every blend fitted on it) is optimistic. Use 'last' or 'inner' for an honest CV."
        )
    if selection == "inner" and not len(data.inner_rows):
        raise ValueError("epoch_selection: inner needs an inner split (inner_share > 0 and at least two speakers)")
    torch.manual_seed(seed)
    n_classes = len(data.label_space)
    multi_label = data.space.multi_label
    score_name = "lwlrap" if multi_label else "acc"  # the curve's columns: val_acc or val_lwlrap, ...
    model = Classifier(settings, n_classes, multi_label).to(device)
    if multi_label and not model.start_at_prior(data.label_sets[data.train_rows].mean(0)):
        log.info("%s: no output layer of one bias per label found; its logits start at 0", settings.architecture)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optim.optimizer(model, settings)
    batches = int(np.ceil(len(epoch_plan(data, settings, np.random.default_rng([seed, 0]))[0]) / settings.batch_size))
    scheduler = optim.scheduler(optimizer, settings, optim.steps_per_epoch(batches, settings.accumulate))
    if settings.freeze_epochs or settings.backbone_lr_ratio != 1 or settings.accumulate > 1:
        log.info("fine-tuning: backbone frozen for %d epochs, at lr x %g; one step per %d batches (%d clips)",
                 settings.freeze_epochs, settings.backbone_lr_ratio, settings.accumulate,
                 settings.accumulate * settings.batch_size)  # fmt: skip
    scaler = torch.amp.GradScaler(enabled=cuda)
    noise_device = torch.from_numpy(data.noise.astype(np.float32) / 32768.0).to(device)
    val_silence = silence_windows(data.noise, data.val_silence["start"], data.val_silence["gain"], data.samples)
    silence_class = -1 if data.silence_class is None else data.silence_class  # no silence class: no silence rows
    val_targets = np.concatenate([data.val_targets, np.full(len(data.val_silence), silence_class)])
    if multi_label:  # every label of the fold's clips (no silence: a multi-label competition cuts none)
        val_targets = data.label_sets[data.val_rows]
    # Noise for mixing comes from the training side only: the stretches of the other folds.
    noise_parts = [noise_device[s : s + n] for s, n in data.train_noise]
    if settings.pseudo_noise and data.extra_noise is not None:
        noise_parts.append(torch.from_numpy(data.extra_noise.astype(np.float32).ravel() / 32768.0).to(device))
    train_noise = torch.cat(noise_parts) if noise_parts else None

    # With ema_decay, the moving average is what is scored, chosen and kept; else the weights themselves.
    ema = optim.averaged(model, settings)
    kept = ema.module if ema is not None else model
    stepper = optim.Stepper(optimizer, scheduler, scaler, settings.accumulate, ema, model)

    checkpoint = Checkpoint(paths.checkpoint, identity)
    start_epoch, best, curve, best_state, stale = 0, -1.0, [], None, 0
    state = checkpoint.load(device)
    if state is not None:
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best, curve, best_state, stale = (
            state[k] for k in ("epoch", "best", "curve", "best_state", "stale")
        )
        for row in curve:
            on_epoch(row)

    if multi_label:
        loss_function = MultiLabelLoss(settings.label_smoothing)
    else:
        loss_function = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    batch_size = settings.batch_size
    for epoch in range(start_epoch, settings.epochs):
        if selection != "last" and settings.patience and stale >= settings.patience:
            log.info("early stop: no better %s %s for %d epochs", selection, score_name, stale)
            break
        started = time.perf_counter()
        rng, generator = _epoch_generators(seed, epoch, device)
        source, noise_start, target = epoch_plan(data, settings, rng)
        # Each clip one of its cache rows (a random crop of a long clip); its own stream, so that
        # competitions of one row per clip draw exactly as before.
        rows = data.cache_rows(source, np.random.default_rng([seed, epoch, 3]))
        gain = np.where(rng.random(len(source)) < 0.1, 0.0, 10 ** (rng.uniform(-40, 0, len(source)) / 20))
        batches = int(np.ceil(len(source) / batch_size))

        def make_batch(i):
            part = slice(i * batch_size, (i + 1) * batch_size)
            return gather(
                data.clips,
                data.noise,
                rows[part],
                noise_start[part],
                gain[part],
                data.samples,
                data.variants,
                data.pseudo_clips,
            )

        model.train()
        optim.freeze_backbone(model, frozen=epoch < settings.freeze_epochs)
        stepper.start_epoch(batches)
        # Running sums stay on the device: reading them every step would make the GPU wait each time.
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        prefetched = Prefetcher(make_batch, batches, pin=cuda)
        for i, batch in enumerate(tqdm(prefetched, total=batches, desc=f"epoch {epoch + 1}", mininterval=10)):
            wave = int16_to_float(batch.to(device, non_blocking=True))
            part = slice(i * batch_size, (i + 1) * batch_size)
            labels = torch.from_numpy(target[part]).to(device)
            wave = augment_waveforms(wave, train_noise, augment_settings, model.front.settings.sample_rate, generator)
            onehot = nn.functional.one_hot(labels, n_classes).float()
            # Soft pseudo-labels (those clips get the blend's probabilities) and label sets: from the plan.
            if data.pseudo_probabilities is not None or data.label_sets is not None:
                onehot = torch.from_numpy(data.batch_targets(source[part], target[part])).to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=cuda):
                features = spec_augment(model.front(wave), augment_settings, generator)
                features, soft_targets = mixup(features, onehot, augment_settings.mixup_alpha, generator)
                if cuda and features.dim() == 4:
                    features = features.contiguous(memory_format=torch.channels_last)
                logits = model.net(features)
                loss = loss_function(logits.float(), soft_targets)
            stepper.backward(loss, i)
            total_loss += loss.detach() * len(labels)
            if multi_label:  # the top label is one of the clip's
                correct += onehot.gather(1, logits.argmax(1, keepdim=True)).gt(0.5).sum()
            else:
                correct += (logits.argmax(1) == labels).sum()
            seen += len(labels)

        # The fold's scores are in the curve for reading; they choose the epoch only under "fold".
        val_loss, val_acc = _scores(
            predict_clips(kept, data.clips, data.windows, data.val_rows, device, batch_size * 2, val_silence),
            val_targets,
        )
        row = {
            "epoch": epoch + 1,
            "train_loss": total_loss.item() / max(1, seen),
            "train_acc": correct.item() / max(1, seen),  # multi-label: the share whose top label is right
            "val_loss": val_loss,
            f"val_{score_name}": val_acc,
        }
        if selection == "inner":
            inner = predict_clips(kept, data.clips, data.windows, data.inner_rows, device, batch_size * 2)
            inner_targets = data.label_sets[data.inner_rows] if multi_label else data.inner_targets
            row["inner_loss"], row[f"inner_{score_name}"] = _scores(inner, inner_targets)
        row.update(lr=scheduler.get_last_lr()[0], seconds=time.perf_counter() - started)
        curve.append(row)
        score = {"inner": row.get(f"inner_{score_name}"), "fold": val_acc}.get(selection)
        if score is not None and score > best:
            best, stale = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in kept.state_dict().items()}
        elif score is not None:
            stale += 1
        log.info(
            "epoch %d/%d: train loss %.4f acc %.4f | fold %d loss %.4f %s %.4f%s | %.1f s",
            epoch + 1,
            settings.epochs,
            row["train_loss"],
            row["train_acc"],
            fold,
            val_loss,
            score_name,
            val_acc,
            f" | inner {score_name} {row[f'inner_{score_name}']:.4f}" if selection == "inner" else "",
            row["seconds"],
        )
        checkpoint.save(
            {
                "epoch": epoch + 1,
                "best": best,
                "curve": curve,
                "stale": stale,
                "best_state": best_state,
                "model": model.state_dict(),
                **({"ema": ema.state_dict()} if ema is not None else {}),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
            }
        )
        on_epoch(row)

    if ema is not None:  # from here on, the model is its moving average
        model.load_state_dict(kept.state_dict())
        log.info("kept the exponential moving average of the weights (ema_decay %g)", settings.ema_decay)
    if best_state is not None:
        model.load_state_dict(best_state)
        column = f"{'inner' if selection == 'inner' else 'val'}_{score_name}"
        chosen = 1 + max(range(len(curve)), key=lambda i: curve[i][column])
        log.info("kept epoch %d of %d (best %s %s %.4f)", chosen, len(curve), selection, score_name, best)
    else:
        log.info("kept the last epoch, %d (epoch_selection: last)", len(curve))
    # Out-of-fold probabilities with the test predictions' TTA and AdaBN, so that the two are made alike.
    if settings.adapt_batch_norm:
        val_rows = data.windows.all_rows(data.val_rows)[0]
        layers = adapt_batch_norm(model, data.clips, val_rows, device, batch_size * 2, val_silence, seed)
        log.info("AdaBN: %d BatchNorm layers re-estimated on the fold's %d clips", layers, len(val_targets))
    probabilities = predict_clips(model, data.clips, data.windows, data.val_rows, device, batch_size * 2, val_silence,
                                  shifts)  # fmt: skip
    prior = data.space.fold(training_mix(data, settings, seed)[None])[0]  # in the submission's labels
    result = outputs.write(model, settings, data, probabilities, val_targets, curve, prior, paths, fold)
    checkpoint.clear()  # the job is complete: a later run of it trains afresh
    return result
