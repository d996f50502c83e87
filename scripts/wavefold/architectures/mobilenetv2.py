"""A MobileNetV2-style backbone (Sandler et al., 2018) for log-mel spectrograms."""

from __future__ import annotations

from torch import nn

from . import register
from .blocks import PoolHead, conv_bn_relu


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        self.use_residual = stride == 1 and c_in == c_out
        self.body = nn.Sequential(
            conv_bn_relu(c_in, hidden, kernel=1) if expansion != 1 else nn.Identity(),
            conv_bn_relu(hidden, hidden, kernel=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x):
        return x + self.body(x) if self.use_residual else self.body(x)


@register("mobilenetv2")
class MobileNetV2(nn.Module):
    """A MobileNetV2-style 2-D backbone (Sandler et al., 2018) sized for log-mel spectrograms."""

    input_kind = "logmel"

    def __init__(self, n_classes: int, width: float = 1.0, expansion: int = 6, dropout: float = 0.2):
        super().__init__()

        def ch(c: int) -> int:
            return max(8, int(round(c * width / 8)) * 8)

        # (channels, repeats, stride, expansion): the first bottleneck does not expand, as in the paper
        plan = ((16, 1, 1, 1), (24, 2, 2, expansion), (32, 3, 2, expansion), (64, 3, 2, expansion), (96, 2, 1, expansion))
        layers, c_in = [conv_bn_relu(1, ch(32), stride=1)], ch(32)
        for channels, repeats, stride, expand in plan:
            for i in range(repeats):
                layers.append(_InvertedResidual(c_in, ch(channels), stride if i == 0 else 1, expand))
                c_in = ch(channels)
        layers.append(conv_bn_relu(c_in, ch(320), kernel=1))
        self.features = nn.Sequential(*layers)
        self.head = PoolHead(ch(320), n_classes, dropout)

    def forward(self, x):
        return self.head(self.features(x))
