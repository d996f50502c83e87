"""Any timm CNN backbone, by name, on the log-mel spectrogram: the image models Kaggle's audio winners
fine-tune (BirdCLEF 2023-2025: eca_nfnet_l0, efficientnet_b0, tf_efficientnetv2_s, regnety_008, ...).

The spectrogram is a one-channel image: timm builds the backbone with ``in_chans=1`` and, when it
loads pretrained weights, folds the first convolution's three colour channels into one (its
``adapt_input_conv``). Its classifier is left out (``num_classes=0``) and ours put on its feature map:
- ``head: pool``: mean over frequency, then the mean and the maximum over time, dropout, linear;
- ``head: sed``: sound event detection, as in PANNs and the BirdCLEF solutions: a logit per frame and
  label, and an attention over time per label that weighs the frames into the clip's logit (so a
  short call in a long window is not averaged away).
Both give logits, as every architecture does: softmax or sigmoids come from the competition.

``pretrained``: none (random weights), ``timm`` (timm's own weights for ``name``, from the Hugging Face
cache: set ``HF_HUB_OFFLINE=1`` where there is no internet; in the DAG, rule fetch_weights saves them
to a file first), a weights file (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``: a timm model's state
dict), or a wavefold model of the same backbone (transfer: its backbone taken, the head new). What the
workflow does with the setting: :mod:`wavefold.weights`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..weights import NONE, SUFFIXES
from . import register

HEADS = ("pool", "sed")
#: Where a wavefold model (training/classifier.py's file) keeps this architecture's backbone.
SAVED_BACKBONE = "net.backbone."


def backbone(name: str, pretrained: str | None = None, drop_path_rate: float = 0.0) -> nn.Module:
    """timm's ``name`` for one-channel input, without its classifier or pooling: (B, C, F', T') out."""
    import timm  # here: it takes seconds to import, and every training job imports every architecture

    build = {"in_chans": 1, "num_classes": 0, "global_pool": "", "drop_path_rate": drop_path_rate}
    if pretrained in NONE:
        return timm.create_model(name, pretrained=False, **build)
    if pretrained == "timm":
        return timm.create_model(name, pretrained=True, **build)
    path = Path(pretrained)
    if path.suffix not in SUFFIXES or not path.is_file():
        raise ValueError(f"pretrained: {pretrained!r} is neither 'timm', 'none' nor a weights file "
                         f"({', '.join(SUFFIXES)}) that exists")  # fmt: skip
    transferred = wavefold_backbone(path, name)
    if transferred is None:  # a timm state dict: timm loads it (the stem folded to one channel, no classifier)
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **build)
    model = timm.create_model(name, pretrained=False, **build)
    model.load_state_dict(transferred)
    return model


def wavefold_backbone(path: Path, name: str) -> dict[str, torch.Tensor] | None:
    """The backbone's weights in a wavefold model file (None: the file is not one)."""
    if path.suffix not in (".pt", ".pth"):
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(saved, dict) and {"state_dict", "settings", "label_space"} <= set(saved)):
        return None
    source = saved["settings"]
    if source.get("architecture") != "timm" or (source.get("params") or {}).get("name") != name:
        raise ValueError(f"{path} is a wavefold model of {source.get('architecture')} "
                         f"{(source.get('params') or {}).get('name', '')}, not of timm backbone {name}")  # fmt: skip
    return {k.removeprefix(SAVED_BACKBONE): v for k, v in saved["state_dict"].items() if k.startswith(SAVED_BACKBONE)}


def load_check(path: str, name: str) -> str:
    """Why the weights file does not load into backbone ``name`` ('' if it does): the parse-time check
    (:func:`wavefold.weights.fit` runs it in a Python of its own)."""
    try:
        backbone(name, path)
    except Exception as error:  # noqa: BLE001 — any failure to load is the verdict, said in a line or two
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return f"{type(error).__name__}: {' '.join(lines[:3])}"[:500] + _holding(Path(path))
    return ""


def _holding(path: Path) -> str:
    """What the file holds, to tell which model it is of: its first tensors' names."""
    try:
        if path.suffix == ".safetensors":
            import safetensors

            with safetensors.safe_open(str(path), "pt") as file:
                names = list(file.keys())
        else:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            names = list(saved.get("state_dict", saved)) if isinstance(saved, dict) else []
    except Exception as error:  # noqa: BLE001
        return f" (the file cannot be read as weights: {type(error).__name__})"
    return f" (the file holds {len(names)} tensors: {', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"


class AttentionPool(nn.Module):
    """Frame-wise logits weighed over time by a learned attention per label (PANNs' decision-level
    attention, on logits): (B, C, T) -> (B, n_classes)."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.frame = nn.Conv1d(channels, n_classes, 1)
        self.attention = nn.Conv1d(channels, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(torch.tanh(self.attention(x)), dim=-1)
        return (weights * self.frame(x)).sum(-1)


@register("timm")
class TimmBackbone(nn.Module):
    """A timm backbone (``name``) with a pooled or SED head (module docstring)."""

    input_kind = "logmel"

    def __init__(self, n_classes: int, name: str = "efficientnet_b0", pretrained: str | None = None,
                 drop_path_rate: float = 0.0, head: str = "pool", dropout: float = 0.2,
                 image_size: list[int] | None = None):  # fmt: skip
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head: {head!r} is not one of {HEADS}")
        if image_size is not None and (len(image_size) != 2 or min(image_size) < 8):
            raise ValueError(f"image_size: {image_size!r} is not [height, width] of at least 8 pixels each")
        # The spectrogram resized (bilinear) to [mel rows, frames] before the backbone, as BirdCLEF
        # solutions enlarge it for ImageNet backbones, which downsample 32x: 40 mels would leave 1-2 rows.
        self.image_size = tuple(image_size) if image_size is not None else None
        self.backbone = backbone(name, pretrained, drop_path_rate)
        channels = self.backbone.num_features
        self.head_kind = head
        self.dropout = nn.Dropout(dropout)
        if head == "sed":
            self.head = AttentionPool(channels, n_classes)
        else:
            self.head = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_size is not None:
            x = nn.functional.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        features = self.backbone.forward_features(x)  # before any layer of timm's head (MobileNetV3's conv_head)
        if features.dim() != 4:
            raise ValueError(f"the backbone gave a {features.dim()}-d output: only CNN-like backbones, whose "
                             f"features are (batch, channels, frequency, time), are supported")  # fmt: skip
        over_time = self.dropout(features.mean(2))  # (B, C, T')
        if self.head_kind == "sed":
            return self.head(over_time)
        return self.head(over_time.mean(-1) + over_time.amax(-1))
