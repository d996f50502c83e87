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
cache: set ``HF_HUB_OFFLINE=1`` where there is no internet), or a weights file (``.pth``, ``.pt``,
``.bin`` or ``.safetensors``: a timm model's state dict).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import register

WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
HEADS = ("pool", "sed")


def backbone(name: str, pretrained: str | None = None, drop_path_rate: float = 0.0) -> nn.Module:
    """timm's ``name`` for one-channel input, without its classifier or pooling: (B, C, F', T') out."""
    import timm  # here: it takes seconds to import, and every training job imports every architecture

    if pretrained in (None, "", "none"):
        source = {"pretrained": False}
    elif pretrained == "timm":
        source = {"pretrained": True}
    else:
        path = Path(pretrained)
        if path.suffix not in WEIGHTS_SUFFIXES or not path.is_file():
            raise ValueError(f"pretrained: {pretrained!r} is neither 'timm', 'none' nor a weights file "
                             f"({', '.join(WEIGHTS_SUFFIXES)}) that exists")  # fmt: skip
        source = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    return timm.create_model(name, **source, in_chans=1, num_classes=0, global_pool="", drop_path_rate=drop_path_rate)


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
                 drop_path_rate: float = 0.0, head: str = "pool", dropout: float = 0.2):  # fmt: skip
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head: {head!r} is not one of {HEADS}")
        self.backbone = backbone(name, pretrained, drop_path_rate)
        channels = self.backbone.num_features
        self.head_kind = head
        self.dropout = nn.Dropout(dropout)
        if head == "sed":
            self.head = AttentionPool(channels, n_classes)
        else:
            self.head = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        if features.dim() != 4:
            raise ValueError(f"the backbone gave a {features.dim()}-d output: only CNN-like backbones, whose "
                             f"features are (batch, channels, frequency, time), are supported")  # fmt: skip
        over_time = self.dropout(features.mean(2))  # (B, C, T')
        if self.head_kind == "sed":
            return self.head(over_time)
        return self.head(over_time.mean(-1) + over_time.amax(-1))
