"""What a training job is told: its settings, with their defaults (the only place they are set).

``config/config.yaml`` shows the same values (a test keeps the two equal); ``training.defaults``
and each model under ``training.models`` are checked against :class:`TrainSettings` when the
workflow is parsed. Nothing here imports torch, so that check costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from .. import architectures
from . import bounded, from_section, nested


def architecture_names() -> set[str]:
    """The registered architectures, read from their modules without importing them (no torch)."""
    return set(architectures.declared())


@dataclass(frozen=True)
class FeatureSettings:
    sample_rate: int = bounded(16000, minimum=1000)
    n_mels: int = bounded(40, minimum=8)
    n_mfcc: int = bounded(40, minimum=4)
    window_ms: float = bounded(30.0, above=0)
    hop_ms: float = bounded(10.0, above=0)
    f_min: float = bounded(20.0, minimum=0)
    f_max: float | None = 7600.0
    # band: each band's mean over the clip removed first (cepstral mean normalisation: a device's EQ
    # drops out), then unit variance | instance: zero mean, unit variance per clip | none
    normalise: Literal["instance", "band", "none"] = "band"
    # How log-mel front ends compress the mel power: log | pcen (per-channel energy normalisation, Wang
    # et al. 2017: an automatic gain control per band, with librosa's constants). MFCC and waveform
    # front ends take the log / nothing whatever this says.
    compression: Literal["log", "pcen"] = "log"

    @classmethod
    def from_config(cls, settings: dict) -> "FeatureSettings":
        return from_section(cls, settings, "features")


@dataclass(frozen=True)
class AugmentSettings:
    time_shift_ms: float = bounded(100.0, minimum=0)  # shift by up to this much either way, zero-filled
    gain_db: float = bounded(6.0, minimum=0)  # random gain in [-gain_db, +gain_db]
    noise_probability: float = bounded(0.8, minimum=0, maximum=1)  # share of clips that get background noise
    snr_db_min: float = 0.0
    snr_db_max: float = 25.0
    freq_masks: int = bounded(2, minimum=0)  # SpecAugment
    freq_mask_width: int = bounded(7, minimum=0)
    time_masks: int = bounded(2, minimum=0)
    time_mask_width: int = bounded(12, minimum=0)
    mixup_alpha: float = bounded(0.0, minimum=0)  # 0: off; else lambda ~ Beta(alpha, alpha)
    reverb_probability: float = bounded(0.0, minimum=0, maximum=1)  # share of clips in a random room
    reverb_seconds_max: float = bounded(0.8, above=0)  # its RT60 drawn in [0.1 s, this]
    channel_probability: float = bounded(0.0, minimum=0, maximum=1)  # share through a random device
    lowpass_hz_min: float = bounded(2000.0, above=0)  # the device's low-pass cutoff in [this, Nyquist]
    highpass_hz_max: float = bounded(500.0, above=0)  # its high-pass cutoff in [20 Hz, this]
    eq_bands: int = bounded(2, minimum=0)  # peaking EQ bands per device
    eq_db: float = bounded(12.0, minimum=0)  # each band's gain in [-eq_db, +eq_db]

    @classmethod
    def from_config(cls, settings: dict) -> "AugmentSettings":
        return from_section(cls, settings, "augment")


#: How a job chooses the weights it keeps (and so its out-of-fold probabilities):
#: ``last``   the last epoch of a fixed schedule (the fold is never looked at);
#: ``inner``  the best epoch on an inner, speaker-grouped split of the training side (``inner_share``
#:            of its speakers, held out of training), ``patience`` stopping on it;
#: ``fold``   the best epoch on the validation fold itself: optimistic CV, an explicit choice only.
EPOCH_SELECTIONS = ("last", "inner", "fold")


@dataclass(frozen=True)
class TrainSettings:
    """One model's training settings. The defaults are sized for the demo on a CPU (docs/figures.md);
    config/kaggle-gpu.yaml has the real competition's."""

    architecture: str = field(metadata={"choices": architecture_names})
    params: dict = field(default_factory=dict)  # the architecture's own hyper-parameters
    epochs: int = bounded(3, minimum=1)
    batch_size: int = bounded(64, minimum=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = bounded(0.003, above=0)
    weight_decay: float = bounded(0.01, minimum=0)
    scheduler: Literal["onecycle", "cosine", "constant"] = "onecycle"
    epoch_selection: Literal["last", "inner", "fold"] = "last"
    patience: int = bounded(
        0, minimum=0
    )  # with inner/fold: stop after this many epochs without a better score; 0: never
    inner_share: float = bounded(0.15, above=0, below=0.5)  # with inner: share of the training side's speakers held out
    unknown_share: float | None = bounded(
        None, minimum=0, below=1
    )  # share of unknown clips per epoch; None: as in the data
    silence_share: float = bounded(
        0.09, minimum=0, below=1
    )  # share of silence examples per epoch, cut from training-side noise
    balanced: bool = True  # draw every class equally often (short CPU runs learn the commands only so)
    offline_share: float = bounded(0.25, minimum=0)  # offline variants per epoch, as a share of the clips
    # The classes the model learns: "labels" (the submission's), or one of the competition's finer
    # spaces (the speech challenge's words31: 30 words and silence, folded into its 12 labels when written).
    label_space: str = "labels"
    pseudo_share: float = bounded(
        0.0, minimum=0
    )  # pseudo-labelled test clips per epoch, share of the labelled (rounds > 1)
    pseudo_noise: bool = False  # pseudo-labelled silence clips also join the background noise for mixing
    pseudo_soft: bool = False  # pseudo-labelled clips train toward the blend's probabilities, not its label
    # Cross-entropy against targets smoothed toward the uniform mix by this much (Szegedy et al., 2016): 0 off.
    label_smoothing: float = bounded(0.0, minimum=0, below=1)
    # Keep an exponential moving average of the weights (and BatchNorm statistics), updated after every
    # step with this decay, and score, choose and keep it instead of the raw weights: 0 off.
    ema_decay: float = bounded(0.0, minimum=0, below=1)
    # AdaBN: BatchNorm statistics re-estimated on the audio being predicted (the validation fold for the
    # out-of-fold probabilities, the test set for the test's), so the two are made alike.
    adapt_batch_norm: bool = False
    # Fine-tuning (training/optim.py), for a pretrained backbone above all: the backbone (all but the
    # head) learns at lr x this ratio; it is frozen, weights and BatchNorm statistics, for the first
    # freeze_epochs (the head learns alone); one optimizer step per `accumulate` batches (an effective
    # batch of batch_size x accumulate, for big models on a small GPU).
    backbone_lr_ratio: float = bounded(1.0, above=0)
    freeze_epochs: int = bounded(0, minimum=0)
    accumulate: int = bounded(1, minimum=1)
    features: dict = nested(FeatureSettings)
    augment: dict = nested(AugmentSettings)

    @classmethod
    def from_config(cls, settings: dict) -> "TrainSettings":
        return from_section(cls, settings, "training")

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def resolved(settings: dict) -> dict:
    """``settings`` with every default filled in, as plain values (a job's params)."""
    full = asdict(TrainSettings.from_config(settings))
    full["features"] = asdict(FeatureSettings.from_config(full["features"]))
    full["augment"] = asdict(AugmentSettings.from_config(full["augment"]))
    return full


def job_seed(global_seed: int, round_: int, model: str, fold: int) -> int:
    """A job's seed from (global seed, round, model, fold): every job is reproducible on its own."""
    digest = hashlib.sha256(f"{global_seed}/{round_}/{model}/{fold}".encode()).hexdigest()
    return int(digest[:8], 16)


def training_problems(settings: dict, path: str, own: dict | None = None) -> list[str]:
    """What :func:`..settings.check` cannot see: the architecture's own parameters, and settings that
    only make sense together (checked under ``path`` only when ``own``, the keys set there, has one)."""
    problems = []
    architecture = settings.get("architecture")
    if architecture in architecture_names():
        known = architectures.parameters(architecture)
        unknown = set(settings.get("params") or {}) - (known if known is not None else set(settings.get("params")))
        if architecture == "matchboxnet":
            unknown -= {"n_features"}
        for key in sorted(unknown):
            problems.append(
                f"{path}.params.{key}: {architecture} takes no such parameter; it takes "
                f"{', '.join(sorted(known)) or 'none'}"
            )
    sets_sampling = own is None or {"balanced", "unknown_share"} & set(own)
    if sets_sampling and settings.get("balanced", True) and settings.get("unknown_share") is not None:
        problems.append(
            f"{path}.unknown_share: {settings['unknown_share']} is ignored while balanced is true "
            f"(every class is drawn equally often): set balanced: false, or unknown_share: null"
        )
    sets_freeze = own is None or {"freeze_epochs", "epochs"} & set(own)
    epochs = settings.get("epochs", TrainSettings.epochs)
    if sets_freeze and settings.get("freeze_epochs", 0) >= epochs:
        problems.append(
            f"{path}.freeze_epochs: {settings['freeze_epochs']} freezes the backbone for all {epochs} "
            f"epochs, so it would never learn: set it below epochs"
        )
    sets_selection = own is None or {"patience", "epoch_selection"} & set(own)
    if sets_selection and settings.get("patience", 0) and settings.get("epoch_selection", "last") == "last":
        problems.append(
            f"{path}.patience: {settings['patience']} needs a score to stop on: set epoch_selection "
            f"to inner (an inner split of the training side) or set patience to 0"
        )
    return problems
