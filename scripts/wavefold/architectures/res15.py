"""res15 (Tang & Lin, 2018): deep residual learning for small-footprint keyword spotting."""

from __future__ import annotations

import torch
from torch import nn

from . import register
from .blocks import PoolHead


@register("res15")
class Res15(nn.Module):
    """res15 (Tang & Lin, 2018): 13 dilated 3x3 conv layers of 45 channels, ~238K parameters."""

    input_kind = "mfcc"

    def __init__(self, n_classes: int, channels: int = 45, blocks: int = 6, dropout: float = 0.0):
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.layers = nn.ModuleList()
        for i in range(2 * blocks):
            dilation = 2 ** (i // 3)
            self.layers.append(nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False))
        # As in the paper: ReLU, then batch norm without affine parameters.
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels, affine=False) for _ in range(2 * blocks))
        self.head = PoolHead(channels, n_classes, dropout)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        residual = x
        for i, (conv, norm) in enumerate(zip(self.layers, self.norms)):
            x = torch.relu(conv(x))
            if i % 2 == 1:
                x = x + residual
                residual = x
            x = norm(x)
        return self.head(x)
