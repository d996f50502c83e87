"""Building blocks shared by several architectures."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(c_in: int, c_out: int, kernel=3, stride=1, groups=1, dims=2) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    padding = kernel // 2 if isinstance(kernel, int) else tuple(k // 2 for k in kernel)
    return nn.Sequential(
        conv(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=False),
        norm(c_out),
        nn.ReLU(inplace=True),
    )




class PoolHead(nn.Module):
    """Global average pooling, dropout, linear classifier."""

    def __init__(self, channels: int, n_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x.flatten(2).mean(-1)))
