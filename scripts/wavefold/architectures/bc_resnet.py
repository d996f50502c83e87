"""BC-ResNet (Kim et al., 2021): broadcasted residual learning."""

from __future__ import annotations

import torch
from torch import nn

from . import register
from .blocks import conv_bn_relu


class SubSpectralNorm(nn.Module):
    """Batch norm per frequency sub-band (Chang et al., 2021), as BC-ResNet uses. Where the band count
    does not divide the frequency axis (an unusual n_mels), it is plain batch norm."""

    def __init__(self, channels: int, sub_bands: int):
        super().__init__()
        self.sub_bands = sub_bands
        self.norm = nn.BatchNorm2d(channels * sub_bands)
        self.plain = nn.BatchNorm2d(channels)

    def forward(self, x):
        batch, channels, freq, time = x.shape
        if freq % self.sub_bands:
            return self.plain(x)
        x = x.reshape(batch, channels * self.sub_bands, freq // self.sub_bands, time)
        return self.norm(x).reshape(batch, channels, freq, time)


class BCBlock(nn.Module):
    """A broadcasted-residual block: frequency-wise 2-D depthwise conv, then a temporal 1-D path on the
    frequency-averaged map, broadcast back over frequency."""

    def __init__(self, c_in: int, c_out: int, stride: int, dilation: int, sub_bands: int, dropout: float):
        super().__init__()
        self.transition = c_in != c_out
        self.project = conv_bn_relu(c_in, c_out, kernel=1) if self.transition else nn.Identity()
        self.freq_dw = nn.Conv2d(c_out, c_out, (3, 1), stride=(stride, 1), padding=(1, 0), groups=c_out, bias=False)
        self.ssn = SubSpectralNorm(c_out, sub_bands)
        self.time_dw = nn.Conv2d(c_out, c_out, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=c_out,
                                 bias=False)  # fmt: skip
        self.time_bn = nn.BatchNorm2d(c_out)
        self.pointwise = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x):
        x = self.project(x)
        f2 = self.ssn(self.freq_dw(x))
        f1 = f2.mean(dim=2, keepdim=True)
        f1 = self.dropout(self.pointwise(nn.functional.silu(self.time_bn(self.time_dw(f1)))))
        out = f2 + f1 if self.transition or self.freq_dw.stride[0] != 1 else x + f2 + f1
        return torch.relu(out)


@register("bc_resnet")
class BCResNet(nn.Module):
    """BC-ResNet (Kim et al., 2021); ``width`` is tau: 8 gives BC-ResNet-8 (~320K parameters)."""

    input_kind = "logmel"

    def __init__(self, n_classes: int, width: float = 8, sub_bands: int = 5, dropout: float = 0.1):
        super().__init__()
        c = [int(round(k * width)) for k in (16, 8, 12, 16, 20, 32)]
        self.stem = nn.Sequential(nn.Conv2d(1, c[0], 5, stride=(2, 1), padding=2, bias=False), nn.BatchNorm2d(c[0]),
                                  nn.ReLU(inplace=True))  # fmt: skip
        blocks, c_in = [], c[0]
        for stage, (repeats, stride, dilation) in enumerate(((2, 1, 1), (2, 2, 2), (4, 2, 4), (4, 1, 8))):
            c_out = c[stage + 1]
            for i in range(repeats):
                blocks.append(BCBlock(c_in, c_out, stride if i == 0 else 1, dilation, sub_bands, dropout))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head_dw = nn.Conv2d(c_in, c_in, 5, padding=2, groups=c_in, bias=False)
        self.head_pw = conv_bn_relu(c_in, c[5], kernel=1)
        self.classifier = nn.Conv2d(c[5], n_classes, 1)

    def forward(self, x):
        x = self.head_pw(self.head_dw(self.blocks(self.stem(x))))
        return self.classifier(x.mean(dim=(2, 3), keepdim=True)).flatten(1)
