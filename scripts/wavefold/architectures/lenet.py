"""The baseline: a small LeNet/VGG-like CNN on the log-mel spectrogram."""

from __future__ import annotations

from torch import nn

from . import register
from .blocks import PoolHead, conv_bn_relu


@register("lenet")
class LeNet(nn.Module):
    """The baseline: a small VGG/LeNet-like CNN on the log-mel spectrogram."""

    input_kind = "logmel"

    def __init__(self, n_classes: int, channels: tuple[int, ...] = (16, 32, 64), dropout: float = 0.3):
        super().__init__()
        layers, c_in = [], 1
        for c_out in channels:
            layers += [conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = PoolHead(c_in, n_classes, dropout)

    def forward(self, x):
        return self.head(self.features(x))
