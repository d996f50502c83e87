"""M5 (Dai et al., 2017): a 1-D CNN on the raw waveform."""

from __future__ import annotations

from torch import nn

from . import register
from .blocks import PoolHead, conv_bn_relu


@register("m5")
class M5(nn.Module):
    """A 1-D CNN on the raw waveform (M5 of Dai et al., 2017): a wide strided first layer, then small kernels."""

    input_kind = "waveform"

    def __init__(self, n_classes: int, channels: int = 128, dropout: float = 0.2):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, channels, kernel=81, stride=4, dims=1), nn.MaxPool1d(4),
            conv_bn_relu(channels, channels, kernel=3, dims=1), nn.MaxPool1d(4),
            conv_bn_relu(channels, 2 * channels, kernel=3, dims=1), nn.MaxPool1d(4),
            conv_bn_relu(2 * channels, 4 * channels, kernel=3, dims=1), nn.MaxPool1d(4),
        )  # fmt: skip
        self.head = PoolHead(4 * channels, n_classes, dropout)

    def forward(self, x):
        return self.head(self.features(x))
